"""DVC stage `check_params`: validate params.yaml before any stage runs, so a rejected param fails here,
before DVC removes another stage's outputs (see emotion_classifier.cli.check_params_main)."""

from emotion_classifier.cli import check_params_main

if __name__ == "__main__":
    check_params_main()
