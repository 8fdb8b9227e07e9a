"""DVC stage `check_params`: validate params.yaml before any stage runs, so a rejected param fails here,
before DVC removes another stage's outputs (see emotion_classifier.stages.check_params)."""

import sys
from pathlib import Path

# This checkout's code, not whichever one is pip-installed: a queued or --temp experiment runs the
# code it was queued with (the code dvc.yaml's deps hashed).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from emotion_classifier.cli import check_params_main

if __name__ == "__main__":
    check_params_main()
