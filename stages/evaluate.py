"""DVC stage `evaluate`: see emotion_classifier.pipeline.evaluate."""

from emotion_classifier.cli import evaluate_main

if __name__ == "__main__":
    evaluate_main()
