"""DVC stage `compare`: see emotion_classifier.pipeline.compare."""

from emotion_classifier.cli import compare_main

if __name__ == "__main__":
    compare_main()
