"""DVC stage `evaluate`: see emotion_classifier.stages.evaluate."""

import sys
from pathlib import Path

# This checkout's code, not whichever one is pip-installed: a queued or --temp experiment runs the
# code it was queued with (the code dvc.yaml's deps hashed).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from emotion_classifier.cli import evaluate_main

if __name__ == "__main__":
    evaluate_main()
