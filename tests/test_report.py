import json

import pytest

from emotion_classifier.experiments.collect import collect
from emotion_classifier.experiments.render import COLUMNS, _cells
from emotion_classifier.experiments.report import main

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
    (tmp_path / "ref.yaml").write_text("goemotions:\n  reference_project:\n"
                                       "    transformer_finetune: {micro_f1: 0.599, macro_f1: 0.504}\n"
                                       "    bilstm_maxpool: {micro_f1: 0.548, macro_f1: 0.440}\n"
                                       "ekman:\n  reference_project:\n"
                                       "    transformer_finetune: {micro_f1: 0.7, macro_f1: 0.64}\n")
    main(["--json", str(tmp_path / "exp.json"), "--params", str(tmp_path / "params.yaml"), "--out", str(out),
          "--chart", str(chart), "--reference", str(tmp_path / "ref.yaml")])
    md = out.read_text()
    assert "| ft | transformer_finetune | 0.6000 | 0.5000 |" in md
    assert "| 0.548 / 0.440: met (no interval) / met (no interval) |" in md  # older rows: no interval
    assert "| 0.599 / 0.504: met (no interval) / **not met** (no interval) |" in md  # ft: macro 0.50 < 0.504
    assert "Train time of the 1 single-architecture runs whose time is known (of 2) together: 30.0 min" in md
    assert "`dvc exp run -S model.name=transformer_finetune -S train.epochs=3`" in md
    assert "- **main**: `dvc exp run -S model.name=bilstm_maxpool`" in md  # the defaults: the model named
    assert chart.stat().st_size > 5000


def test_search_runs_get_a_dev_only_table(tmp_path):
    (tmp_path / "exp.json").write_text(json.dumps(EXP_SHOW))
    (tmp_path / "params.yaml").write_text("model:\n  name: bilstm_maxpool\ntrain:\n  epochs: 8\n")
    out = tmp_path / "taxonomies" / "r.md"
    main(["--json", str(tmp_path / "exp.json"), "--params", str(tmp_path / "params.yaml"), "--out", str(out),
          "--reference", str(tmp_path / "none.yaml"), "main", "--search", "ft"])
    # no --chart: the charts go beside --out, never over reports/experiments.png
    assert {"r.png", "r_curves.png"} <= {p.name for p in out.parent.glob("*.png")}
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


def test_a_named_experiment_dvc_no_longer_has_is_read_from_the_rows_kept_beside_the_report(tmp_path, capsys):
    """The experiments' refs do not outlive a machine: the report keeps its rows, curves and per-label scores in
    reports/experiments.json, and a later report naming them renders the same page from there."""
    files = {("abc123", "dvclive/plots/metrics/dev_tuned_macro_f1.tsv"): "step\tdev_tuned_macro_f1\n0\t0.3\n1\t0.4\n",
             ("def456", "plots/eval/per_label.csv"): "label,support,f1\njoy,10,0.8\ngrief,2,0.0\n"}
    (tmp_path / "exp.json").write_text(json.dumps(EXP_SHOW))
    (tmp_path / "params.yaml").write_text("model:\n  name: bilstm_maxpool\n")
    out, args = tmp_path / "r.md", ["--params", str(tmp_path / "params.yaml"), "--chart", str(tmp_path / "r.png"),
                                    "--reference", str(tmp_path / "none.yaml")]
    main(["--json", str(tmp_path / "exp.json"), "--out", str(out), *args],
         reader=lambda rev, path: files.get((rev, path)))
    first = out.read_text()
    kept = json.loads((tmp_path / "r.json").read_text())
    assert [r["name"] for r in kept] == ["main", "ft"] and kept[0]["curves"]["dev_tuned_macro_f1"] == [0.3, 0.4]
    assert kept[1]["per_label"] == [{"label": "joy", "support": 10, "f1": 0.8},
                                    {"label": "grief", "support": 2, "f1": 0.0}]

    (tmp_path / "gone.json").write_text(json.dumps(EXP_SHOW[:1]))  # another machine: only its workspace
    main(["main", "ft", "--json", str(tmp_path / "gone.json"), "--out", str(out), *args], reader=lambda rev, path: None)
    assert out.read_text() == first and "| joy | 10 |" in first
    assert json.loads((tmp_path / "r.json").read_text()) == kept
    (tmp_path / "r.json").write_text("[{\"name\": 1}]")
    for says in ("r.json: not a store of experiment rows", "no experiment named ft"):  # one line each, no traceback
        with pytest.raises(SystemExit):
            main(["ft", "--json", str(tmp_path / "gone.json"), "--out", str(out), *args], reader=lambda rev, path: None)
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1 and says in err, err
        (tmp_path / "r.json").unlink(missing_ok=True)


def test_command_leaves_out_other_architectures_params():
    from emotion_classifier.experiments.collect import command

    row = {"params": {"model.name": "bilstm_lasttoken", "model.transformer_finetune.pooling": "pooler",
                      "model.bilstm_lasttoken.hidden_size": 128, "train.epochs": 3, "model.mask_words.NAME": "john"}}
    defaults = {"model.name": "transformer_finetune", "model.transformer_finetune.pooling": "mean",
                "model.bilstm_lasttoken.hidden_size": 256, "train.epochs": 5, "model.mask_words.NAME": ""}
    assert command(row, defaults) == ("dvc exp run -S model.bilstm_lasttoken.hidden_size=128 "
                                      "-S model.mask_words.NAME=john -S model.name=bilstm_lasttoken -S train.epochs=3")


def test_inference_speed_is_read_from_inference_json_or_from_older_experiments_eval_json():
    col = [c for c in COLUMNS if c[2] == "inference_sentences_per_s"]
    new = {"metrics": {"metrics/inference.json": {"inference_sentences_per_s": 250.4}}}
    old = {"metrics": {"metrics/eval.json": {"test_micro_f1": 0.6, "inference_sentences_per_s": 226.2}}}
    assert [_cells(r, col) for r in (new, old, {"metrics": {}})] == [["250"], ["226"], [""]]


def _exp(name, seed, micro, macro, dev, half=0.01, model="bilstm_maxpool"):
    ev = {"test_micro_f1": micro, "test_micro_f1_lo": micro - half, "test_micro_f1_hi": micro + half,
          "test_macro_f1": macro, "test_macro_f1_lo": macro - half, "test_macro_f1_hi": macro + half,
          "dev_macro_f1": dev}
    return {"rev": f"r-{name}", "name": name, "data": {
        "params": {"params.yaml": {"data": {"seed": seed, "model": {"name": model}}}},
        "metrics": {"metrics/eval.json": {"data": ev}, "metrics/train.json": {"data": {"train_time_s": 100}}}}}


def test_each_taxonomy_is_reported_against_its_own_references_and_never_mixed(tmp_path, capsys):
    """Issue 51: rows of different taxonomies are not put side by side; an Ekman row's target is the Ekman one."""
    def ekman(run):
        run["data"]["params"]["params.yaml"]["data"]["data"] = {"taxonomy": "ekman"}
        return run

    (tmp_path / "params.yaml").write_text("seed: 0\nmodel:\n  name: transformer_finetune\n")
    (tmp_path / "ref.yaml").write_text("goemotions:\n  reference_project:\n"
                                       "    transformer_finetune: {micro_f1: 0.599, macro_f1: 0.504}\n"
                                       "ekman:\n  reference_project:\n"
                                       "    transformer_finetune: {micro_f1: 0.70, macro_f1: 0.66}\n")
    args = ["--json", str(tmp_path / "exp.json"), "--params", str(tmp_path / "params.yaml"), "--out",
            str(tmp_path / "r.md"), "--chart", str(tmp_path / "r.png"), "--reference", str(tmp_path / "ref.yaml")]
    runs = [ekman(_exp("ek", 0, 0.72, 0.65, 0.6, model="transformer_finetune")),
            _exp("ft", 0, 0.62, 0.52, 0.55, model="transformer_finetune")]
    exp = [{"rev": "abc", "name": "main", "data": {}, "experiments": [{"name": r["name"], "revs": [r]} for r in runs]}]
    (tmp_path / "exp.json").write_text(json.dumps(exp))
    with pytest.raises(SystemExit):
        main(args)
    assert "differ in taxonomy (ekman vs goemotions)" in capsys.readouterr().err
    exp[0]["experiments"] = exp[0]["experiments"][:1]
    (tmp_path / "exp.json").write_text(json.dumps(exp))
    main(args, reader=lambda rev, path: None)
    assert "| 0.700 / 0.660: " in (tmp_path / "r.md").read_text()  # Ekman's target, not the 28 labels'


def test_seeds_are_grouped_with_spread_noise_and_honest_target_states(tmp_path):
    runs = [_exp("mp-s0", 0, 0.560, 0.460, 0.50), _exp("mp-s1", 1, 0.556, 0.450, 0.52),
            _exp("mp-s2", 2, 0.552, 0.455, 0.49), _exp("lt", 0, 0.53, 0.445, 0.42, model="bilstm_lasttoken"),
            _exp("ft", 0, 0.62, 0.52, 0.55, half=0.012, model="transformer_finetune")]
    exp = [{"rev": "abc", "name": "main", "data": {}, "experiments": [{"name": r["name"], "revs": [r]} for r in runs]}]
    (tmp_path / "exp.json").write_text(json.dumps(exp))
    (tmp_path / "params.yaml").write_text("seed: 42\nmodel:\n  name: transformer_finetune\n")
    (tmp_path / "ref.yaml").write_text("goemotions:\n  reference_project:\n"
                                       "    bilstm_maxpool: {micro_f1: 0.548, macro_f1: 0.440}\n"
                                       "    transformer_finetune: {micro_f1: 0.599, macro_f1: 0.504}\n")
    out = tmp_path / "r.md"
    files = {(f"r-{n}", "plots/eval/per_label.csv"): f"label,support,f1\njoy,10,{f}\n"
             for n, f in (("mp-s0", 0.1), ("mp-s1", 0.2), ("mp-s2", 0.3), ("lt", 0.4), ("ft", 0.5))}
    main(["--json", str(tmp_path / "exp.json"), "--params", str(tmp_path / "params.yaml"), "--out", str(out),
          "--chart", str(tmp_path / "r.png"), "--reference", str(tmp_path / "ref.yaml")],
         reader=lambda rev, path: files.get((rev, path)))
    md = out.read_text()
    # three seeds of max-pool: mean 0.556, std 0.004, over n = 3
    assert "| `dvc exp run -S model.name=bilstm_maxpool` | 3 | 0.5560 ± 0.0040 (0.5520–0.5600) |" in md
    # micro: hypot(0.01, t(2) * 0.004 / sqrt 3 = 0.0099) = 0.014 around 0.556 holds 0.548; macro: 0.455 ± 0.016
    # holds 0.440, though every seed's point estimate is above it (and mp-s0's own interval clears it)
    mp_row = next(line for line in md.splitlines() if line.startswith("| `dvc exp run -S model.name=bilstm_maxpool`"))
    assert mp_row.endswith("| 0.548 / 0.440: within noise / within noise |")
    assert "| mp-s0 | bilstm_maxpool | 0.5600 [0.550, 0.570] |" in md and "| 0.548 / 0.440: met / met |" in md
    assert "| 0.599 / 0.504: met / met |" in md  # ft: 0.62 - 0.012 > 0.599 and 0.52 - 0.012 > 0.504
    assert "0.5200 (1 seed)" in md
    assert "- transformer_finetune over bilstm_maxpool: +0.0650" in md and "beyond noise" in md
    assert "- bilstm_maxpool over bilstm_lasttoken: +0.0100" in md and "**within noise**" in md
    assert "`dvc exp run --queue -S model.name=bilstm_maxpool -S seed=0,1,2`, then `dvc queue start`" in md
    per_label = md.split("## Per-label test F1")[1]
    assert "mp-s1" in per_label and "mp-s0" not in per_label  # the group's best seed on dev, not on test


def test_a_single_model_experiment_says_so_when_main_is_an_ensemble():
    from emotion_classifier.experiments.collect import command

    defaults = {"model.name": "x", "seed": 0, "ensemble.members": [{"model.name": "y"}]}
    one_model = "dvc exp run -S ensemble.members=[] -S model.name=x -S seed=1"  # the model is always named
    assert command({"params": {"model.name": "x", "seed": 1}}, defaults) == one_model
    assert command({"params": {"model.name": "x", "seed": 1}}, {**defaults, "ensemble.members": []}) == (
        "dvc exp run -S model.name=x -S seed=1")


def test_an_older_run_without_a_later_param_gets_the_value_it_trained_with():
    from emotion_classifier.experiments.collect import command

    defaults = {"model.name": "x", "seed": 0, "train.epochs": 3, "train.rdrop_alpha": 1.0}
    assert command({"params": {"model.name": "x", "seed": 0, "train.epochs": 5}}, defaults) == (
        "dvc exp run -S model.name=x -S train.epochs=5 -S train.rdrop_alpha=0.0")
    assert command({"params": {"model.name": "x", "seed": 0, "train.epochs": 3, "train.rdrop_alpha": 1.0}},
                   defaults) == "dvc exp run -S model.name=x"


def test_ranking_names_the_settings_of_one_architecture_seen_twice():
    from emotion_classifier.experiments.render import EVAL_METRICS, ranking

    def rows(macro):
        ev = {"test_macro_f1": macro, "test_macro_f1_lo": macro - 0.01, "test_macro_f1_hi": macro + 0.01}
        return [{"params": {"model.name": "ft"}, "metrics": {EVAL_METRICS: ev}}]
    lines = ranking({"dvc exp run": rows(0.53), "dvc exp run -S train.epochs=5": rows(0.52)})
    assert "- ft (main's settings) over ft (`train.epochs=5`): +0.0100" in "\n".join(lines)
