"""The figures a model is reported on, in one table: evaluate writes them (`test_<key>`, with `_lo`/`_hi` where
`interval`), compare sets them beside the baseline and the references, the experiments report ranks by them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Figure:
    key: str  # metrics.evaluate's name; eval.json holds test_<key>
    label: str  # a table's column header
    interval: bool = False  # evaluate gives it a bootstrap interval
    headline: bool = False  # a column of the experiments report (and compare.json's model figures)
    compared: bool = False  # compare's table sets it beside the baseline and the references
    fmt: str = ".4f"


FIGURES = (
    Figure("micro_f1", "micro F1", interval=True, headline=True, compared=True),
    Figure("macro_f1", "macro F1", interval=True, headline=True, compared=True),
    Figure("micro_precision", "micro precision", headline=True, compared=True),
    Figure("micro_recall", "micro recall", headline=True, compared=True),
    Figure("hamming_loss", "hamming loss", headline=True, compared=True),
    Figure("roc_auc_macro", "ROC-AUC macro", interval=True, headline=True),
    Figure("subset_accuracy", "subset accuracy"),
    Figure("average_precision_macro", "average precision (macro)"),
    Figure("expected_calibration_error", "expected calibration error"),
)
WITH_INTERVAL = tuple(f.key for f in FIGURES if f.interval)
HEADLINE = tuple(f for f in FIGURES if f.headline)
COMPARED = tuple(f for f in FIGURES if f.compared)
SCORED = ("micro_f1", "macro_f1")  # those with a reference figure and a paired test against the baseline
