import json

from emotion_classifier.report import COLUMNS, _cells, collect, main

EXP_SHOW = [
    {"rev": "workspace", "name": None, "data": {"params": {"params.yaml": {"data": {"model": {"name": "x"}}}},
                                                "metrics": {}}, "experiments": None},
    {"rev": "abc123", "name": "main", "data": {
        "params": {"params.yaml": {"data": {"model": {"name": "bilstm_maxpool"}, "train": {"epochs": 8}}}},
        "metrics": {"metrics/eval.json": {"data": {"test_micro_f1": 0.55, "test_macro_f1": 0.45}}}},
     "experiments": [
         {"name": "ft", "revs": [{"rev": "def456", "name": "ft", "data": {
             "params": {"params.yaml": {"data": {"model": {"name": "transformer_finetune"},
                                                 "train": {"epochs": 3}}}},
             "metrics": {"metrics/eval.json": {"data": {"test_micro_f1": 0.6, "test_macro_f1": 0.5}},
                         "metrics/train.json": {"data": {"train_time_s": 1800, "params_total": 22700000}}}}}]}]},
]


def test_collect_finds_commits_and_experiments():
    rows = collect(EXP_SHOW)
    assert [r["name"] for r in rows] == ["main", "ft"]
    assert rows[1]["params"]["model.name"] == "transformer_finetune"
    assert [r["name"] for r in collect(EXP_SHOW, ["ft"])] == ["ft"]
    assert [r["name"] for r in collect(EXP_SHOW, ["ft", "main"])] == ["ft", "main"]  # the order asked for


def test_report_table_chart_and_commands(tmp_path):
    (tmp_path / "exp.json").write_text(json.dumps(EXP_SHOW))
    (tmp_path / "params.yaml").write_text("model:\n  name: bilstm_maxpool\ntrain:\n  epochs: 8\n")
    out, chart = tmp_path / "r.md", tmp_path / "r.png"
    (tmp_path / "ref.yaml").write_text("reference_project:\n"
                                       "  transformer_finetune: {micro_f1: 0.599, macro_f1: 0.504}\n"
                                       "  bilstm_maxpool: {micro_f1: 0.548, macro_f1: 0.440}\n")
    main(["--json", str(tmp_path / "exp.json"), "--params", str(tmp_path / "params.yaml"), "--out", str(out),
          "--chart", str(chart), "--reference", str(tmp_path / "ref.yaml")])
    md = out.read_text()
    assert "| ft | transformer_finetune | 0.6000 | 0.5000 |" in md
    assert "| 0.548 / 0.440 met |" in md
    assert "| 0.599 / 0.504 **not met** |" in md  # ft: macro 0.50 < 0.504
    assert "Train time of these 2 runs together: 30.0 min" in md
    assert "`dvc exp run -S model.name=transformer_finetune -S train.epochs=3`" in md
    assert "- **main**: `dvc exp run`" in md  # the defaults: nothing to set
    assert chart.stat().st_size > 5000


def test_search_runs_get_a_dev_only_table(tmp_path):
    (tmp_path / "exp.json").write_text(json.dumps(EXP_SHOW))
    (tmp_path / "params.yaml").write_text("model:\n  name: bilstm_maxpool\ntrain:\n  epochs: 8\n")
    out = tmp_path / "r.md"
    main(["--json", str(tmp_path / "exp.json"), "--params", str(tmp_path / "params.yaml"), "--out", str(out),
          "--chart", str(tmp_path / "r.png"), "--reference", str(tmp_path / "none.yaml"), "main", "--search", "ft"])
    table, search = out.read_text().split("## Search")
    assert "| ft |" not in table and "| main |" in table
    assert "| ft | transformer_finetune |" in search and "`dvc exp run -S model.name=transformer_finetune" in search
    assert "0.6000" not in search  # test scores stay out of the search table


def test_curves_and_per_label_come_from_each_experiments_commit(tmp_path):
    files = {
        ("abc123", "dvclive/plots/metrics/dev_tuned_macro_f1.tsv"): "step\tdev_tuned_macro_f1\n0\t0.3\n1\t0.4\n",
        ("abc123", "plots/eval/per_label.csv"): "label,support,f1\njoy,10,0.7\ngrief,2,0.1\nfear,5,0.5\n",
        ("def456", "plots/eval/per_label.csv"): "label,support,f1\njoy,10,0.8\ngrief,2,0.0\nfear,5,0.6\n",
    }
    (tmp_path / "exp.json").write_text(json.dumps(EXP_SHOW))
    (tmp_path / "params.yaml").write_text("model:\n  name: bilstm_maxpool\n")
    out = tmp_path / "r.md"
    main(["--json", str(tmp_path / "exp.json"), "--params", str(tmp_path / "params.yaml"), "--out", str(out),
          "--chart", str(tmp_path / "r.png"), "--reference", str(tmp_path / "none.yaml")],
         reader=lambda rev, path: files.get((rev, path)))
    md = out.read_text()
    table = md.split("## Per-label test F1")[1]
    assert "| label | support | main | ft |" in table
    rows = [line for line in table.splitlines() if line.startswith("| ") and not line.startswith(("| label", "| ---"))]
    assert [r.split(" | ")[0] for r in rows] == ["| joy", "| fear", "| grief"]  # by support
    assert "| joy | 10 | **0.70** | **0.80** |" in table  # three labels: all among the five lowest
    for name in ("r_curves.png", "r_per_label.png"):
        assert (tmp_path / name).stat().st_size > 5000


def test_command_leaves_out_other_architectures_params():
    from emotion_classifier.report import command

    row = {"params": {"model.name": "bilstm_lasttoken", "model.transformer_finetune.pooling": "pooler",
                      "model.bilstm_lasttoken.hidden_size": 128, "train.epochs": 3}}
    defaults = {"model.name": "transformer_finetune", "model.transformer_finetune.pooling": "mean",
                "model.bilstm_lasttoken.hidden_size": 256, "train.epochs": 5}
    assert command(row, defaults) == ("dvc exp run -S model.bilstm_lasttoken.hidden_size=128 "
                                      "-S model.name=bilstm_lasttoken -S train.epochs=3")


def test_inference_speed_is_read_from_inference_json_or_from_older_experiments_eval_json():
    col = [c for c in COLUMNS if c[2] == "inference_sentences_per_s"]
    new = {"metrics": {"metrics/inference.json": {"inference_sentences_per_s": 250.4}}}
    old = {"metrics": {"metrics/eval.json": {"test_micro_f1": 0.6, "inference_sentences_per_s": 226.2}}}
    assert [_cells(r, col) for r in (new, old, {"metrics": {}})] == [["250"], ["226"], [""]]
