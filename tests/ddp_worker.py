"""One rank of a test's data-parallel run: `torchrun --nproc-per-node N tests/ddp_worker.py SPEC.json`.

SPEC holds the params and where to write; `die_after_epoch` makes rank 1 exit mid-run."""

import json
import os
import sys
from pathlib import Path

from emotion_classifier.data import load_prepared
from emotion_classifier.params import from_tree, resolve
from emotion_classifier.training import distributed
from emotion_classifier.training.loop import fit

spec = json.loads(Path(sys.argv[1]).read_text())
out = Path(spec["out"])
if spec.get("die_after_epoch") and distributed.rank() == 1:
    import emotion_classifier.training.loop as T

    real = T.train_epoch

    def dying(run, epoch):
        if epoch > spec["die_after_epoch"]:
            os._exit(3)
        return real(run, epoch)

    T.train_epoch = dying
params = from_tree(spec["params"])
splits, names = load_prepared(params.data.prepared_dir)
try:
    result = fit(resolve(params), splits, names, model_dir=out / "models", metrics_path=out / "train.json",
                 live_dir=None, checkpoint_root=out / "ckpt", feature_cache=out / "feat",
                 stop_after_epochs=spec.get("stop_after_epochs"))
finally:
    distributed.close()
if distributed.is_writer():
    (out / "result.json").write_text(json.dumps(result))
