"""DVC stage `compare`: see emotion_classifier.stages.compare."""

import sys
from pathlib import Path

# This checkout's code, not whichever one is pip-installed: a queued or --temp experiment runs the
# code it was queued with (the code dvc.yaml's deps hashed).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from emotion_classifier.cli import compare_main

if __name__ == "__main__":
    compare_main()
