"""DVC stage `tune_thresholds`: see emotion_classifier.pipeline.tune_thresholds."""

from emotion_classifier.cli import tune_thresholds_main

if __name__ == "__main__":
    tune_thresholds_main()
