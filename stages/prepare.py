"""DVC stage `prepare`: see emotion_classifier.pipeline.prepare."""

from emotion_classifier.cli import prepare_main

if __name__ == "__main__":
    prepare_main()
