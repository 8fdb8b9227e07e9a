"""Experiments side by side: collect (from `dvc exp show`), stats (seed spread, targets), render (markdown),
charts; `report` (emotion-report) and `compare_all` (emotion-compare-all: every architecture x seeds, then the
report)."""
