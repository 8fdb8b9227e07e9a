"""Multilabel emotion classification on GoEmotions."""

import os

# Offline by default: a hub lookup would stall ~30-50 s on a machine without internet.
# Set HF_HUB_OFFLINE=0 (and HF_DATASETS_OFFLINE=0) to use hub ids online.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
# Loading 22M weights takes a blink; its bars would only bury our own progress and one-line errors.
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

__version__ = "0.1.0"


def __getattr__(name):  # lazy: `import emotion_classifier` stays light; torch loads on first use
    if name == "EmotionClassifier":
        from .inference import EmotionClassifier

        return EmotionClassifier
    raise AttributeError(name)
