"""DVC stage `analyze_dataset`: see emotion_classifier.pipeline.analyze_dataset."""

from emotion_classifier.cli import analyze_main

if __name__ == "__main__":
    analyze_main()
