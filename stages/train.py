"""DVC stage `train`: see emotion_classifier.pipeline.train."""

from emotion_classifier.cli import train_main

if __name__ == "__main__":
    train_main()
