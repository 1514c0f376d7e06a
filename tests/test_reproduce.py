"""reproduce.py end to end, run once: one study folder, made by the paper's protocol (the GAN pretext, both
tasks, two seeds) and then extended twice as a user would extend a study (a MobileNetV2 pretext beside it;
the last and the best generator of the same colorizer, with label efficiency and the probes), each call
reading back every colorizer and run made before it. The tests read what each call wrote."""

import json
import shutil
from types import SimpleNamespace

import numpy as np
import pytest

from tests.conftest import run_script
from tests.figures import png_size, series_colours
from tests.scores import assert_scores_match_predictions

SIZE = ["--image-size", "32", "--base-filters", "4", "--pretext-epochs", "1", "--pretext-steps", "2",
        "--train-size", "16", "--eval-size", "8", "--downstream-scale", "0.25"]
CALLS = {  # in this order, on one OUT
    "protocol": ["--seeds", "2"],  # the paper's pretext alone, both tasks
    "backbones": ["--seeds", "1", "--tasks", "segmentation", "--pretexts", "gan,multitask-mobilenetv2"],
    "checkpoints": ["--seeds", "1", "--tasks", "segmentation", "--pretexts", "gan,gan@best",
                    "--label-fractions", "0.5,1", "--probes", "--probe-train-size", "32"],
    "pretext-seeds": ["--seeds", "2", "--tasks", "classification", "--pretext-seeds", "2"],  # two gan runs
}
MEASURES = {"classification": ("mAP", "exact_match_accuracy", "per_label_accuracy", "sample_f1"),
            "segmentation": ("mIoU", "pixel_accuracy")}


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """(OUT, {call: its stdout, the report it wrote, a copy of OUT/figures after it, and {run: modification
    time} of every metrics.json then in OUT})."""
    root = tmp_path_factory.mktemp("reproduce")
    out, calls = root / "study", {}
    for name, flags in CALLS.items():
        result = run_script("reproduce.py", "--out", str(out), *SIZE, *flags, timeout=900)
        assert result.returncode == 0, result.stderr[-3000:]
        shutil.copytree(out / "figures", root / name)
        runs = {p.relative_to(out).as_posix(): p.stat().st_mtime for p in out.glob("seed*/*/*/metrics.json")}
        calls[name] = SimpleNamespace(stdout=result.stdout, report=(out / "report.md").read_text(),
                                      figures=root / name, runs=runs)
    return out, calls


def _cell(values):
    """A table cell worked out by hand: mean ± standard deviation over seeds, in %."""
    std = np.std(values, ddof=1) if len(values) > 1 else 0.0
    return f"{100 * np.mean(values):.2f} ± {100 * std:.2f}"


def _metrics(out, run):
    return json.loads((out / run / "metrics.json").read_text())


@pytest.mark.slow
def test_the_protocol_reports_every_run_as_mean_and_spread_over_seeds_with_its_figures(study):
    out, calls = study
    call = calls["protocol"]
    report = call.report
    inits = ("colorization", "random")
    assert sorted(call.runs) == [f"seed{seed}/{task}/{init}/metrics.json" for seed in (0, 1)
                                 for task in MEASURES for init in inits]
    assert "Table 3" in report and "Table 4" in report and "grey baseline" in report
    assert "made by this study's pretext step" in report  # the fine-tuning runs trained no colorizer
    assert "n = 8 test images per run (too few for these figures to mean much)." in report
    for task, measures in MEASURES.items():
        tests = {init: [assert_scores_match_predictions(out / f"seed{seed}" / task / init) for seed in (0, 1)]
                 for init in inits}
        for init in inits:
            cells = " | ".join(_cell([test[key] for test in tests[init]]) for key in measures)
            assert f"| {init} | {cells} | 2 |" in report, (task, init)
        gains = [a[measures[0]] - b[measures[0]] for a, b in zip(tests["colorization"], tests["random"])]
        assert f"| gain (colorization - random) | {_cell(gains)} |" in report
        row = next(line for line in report.splitlines()
                   if line.startswith(f"| {task} | {measures[0]} | colorization - random |"))
        assert f"| {100 * np.mean(gains):+.2f} |" in row and "| 1 x 2 x 8 |" in row  # its interval: CI table
        # The loss figure: a train and (where logged) a validation curve per init, averaged over the seeds.
        histories = [_metrics(out, f"seed0/{task}/{init}")["history"] for init in inits]
        curves = sum(bool(h.get("loss")) + bool(h.get("val_loss")) for h in histories)
        assert curves >= 2 and series_colours(call.figures / f"{task}_loss.png") == set(range(curves))
    grid = out / "colorizer" / "samples" / "epoch_001.png"  # the colorizer's grid of its transferred epoch
    assert (call.figures / "samples.png").read_bytes() == grid.read_bytes()
    rows = json.loads((out / "colorizer" / "config.json").read_text())["sample_count"]
    assert png_size(grid) == (600, round(100 * (2 * rows + 0.4)))  # one row per sample: grey, colorized, original


@pytest.mark.slow
def test_each_later_call_reads_every_finished_part_back_and_runs_only_what_it_adds(study):
    out, calls = study
    before = calls["protocol"].runs
    for name in ("backbones", "checkpoints"):
        assert "reusing the finished colorizer" in calls[name].stdout
        assert {run: calls[name].runs[run] for run in before} == before  # not one run written again
        before = calls[name].runs
    added = set(calls["backbones"].runs) - set(calls["protocol"].runs)
    assert added == {f"seed0/segmentation/{init}/metrics.json" for init in ("multitask-mobilenetv2",
                                                                             "random-mobilenetv2")}
    added = set(calls["checkpoints"].runs) - set(calls["backbones"].runs)  # only the task asked for
    assert added == {f"seed0/segmentation/{init}/metrics.json" for init in ("random-labels50", "colorization-labels50",
                                                                             "gan@best", "gan@best-labels50")}


@pytest.mark.slow
def test_the_mobilenet_pretext_sits_beside_its_own_random_floor(study):
    out, calls = study
    report = calls["backbones"].report
    for row in ("| random |", "| random (MobileNetV2) |", "| gan pretext |", "| multitask-mobilenetv2 pretext |",
                "| gain (gan pretext - random) |", "| gain (multitask-mobilenetv2 pretext - random (MobileNetV2)) |",
                "| gan colorizer, last (epoch 1) |", "| multitask-mobilenetv2 colorizer, last (epoch 1) |",
                "- `multitask-mobilenetv2`: the multitask source's model: MobileNetV2 U-Net"):
        assert row in report, row
    assert "### Classification" not in report and "classification data" not in report.split("\n")[2]
    runs = [p for p in out.glob("seed0/segmentation/*/metrics.json") if p.relative_to(out).as_posix() in
            calls["backbones"].runs]  # those of this call, not the next one's
    backbones = {p.parent.name: json.loads(p.read_text())["backbone"] for p in runs}
    assert backbones == {"colorization": "unet", "random": "unet", "multitask-mobilenetv2": "mobilenetv2",
                         "random-mobilenetv2": "mobilenetv2"}
    floor = _metrics(out, "seed0/segmentation/random-mobilenetv2")
    assert floor["pretext"] == "random-mobilenetv2" and floor["transfer"] is None
    test = assert_scores_match_predictions(out / "seed0" / "segmentation" / "random-mobilenetv2")
    cells = f"{_cell([test['mIoU']])} | {_cell([test['pixel_accuracy']])} | 1 |"
    assert f"| random (MobileNetV2) | {cells}" in report
    transferred = _metrics(out, "seed0/segmentation/multitask-mobilenetv2")
    assert "mnv2_encoder" in transferred["transfer"]["copied"]
    config = json.loads((out / "colorizer-multitask-mobilenetv2" / "config.json").read_text())
    assert config["backbone"] == "mobilenetv2" and config["objective"] == "multitask"  # the pretext's own values


@pytest.mark.slow
def test_one_colorizer_at_both_checkpoints_with_label_efficiency_and_probes(study):
    out, calls = study
    call = calls["checkpoints"]
    report = call.report
    assert "## Label efficiency" in report and "| 50 % of the labels | 100 % of the labels |" in report
    assert "### Segmentation" in report and "### Classification" not in report  # only the task asked for
    assert "## Linear probes on frozen features" in report and "- `gan`: the paper: pix2pix cGAN" in report
    segmentation = out / "seed0" / "segmentation"
    for folder, label in (("random", "random"), ("colorization", "gan pretext"), ("gan@best", "gan@best pretext")):
        half, full = (assert_scores_match_predictions(segmentation / name)["mIoU"]
                      for name in (f"{folder}-labels50", folder))
        assert f"| {label} | {_cell([half])} | {_cell([full])} |" in report, label
    assert series_colours(call.figures / "segmentation_label_efficiency.png") == {0, 1, 2}  # a line per init
    # One colorizer, transferred at both checkpoints: each run and row says which weights it used.
    run = out / "colorizer"
    half = _metrics(out, "seed0/segmentation/colorization-labels50")
    assert half["label_fraction"] == 0.5 and half["num_train"] == 8 and half["pretext"] == "gan"
    assert half["colorizer"]["file"] == str(run / "generator.weights.h5") and half["colorizer"]["epoch"] == 1
    best = _metrics(out, "seed0/segmentation/gan@best")
    assert best["colorizer"]["file"] == str(run / "generator_best.weights.h5") and best["pretext"] == "gan"
    assert "| gan@best |" in report and "| gan@best pretext |" in report
    assert f"| gan | `{run / 'generator.weights.h5'}` | last (epoch 1) |" in report
    assert "| gan@best colorizer, best val_g_l1 (epoch 1) |" in report
    probed = json.loads((out / "probes" / "probes.json").read_text())["inits"]
    assert set(probed) == {"gan", "gan@best", "random"} and probed["gan@best"][0]["colorizer"]["checkpoint"] == "best"
    # After one epoch the best generator is the last one: the same weights, probed alike, so that gan@best's line
    # (C1) covers gan's (C0) in the probe figures; the random floor's is C2.
    last, best = probed["gan"][0], probed["gan@best"][0]
    assert last["colorizer"]["sha256"] == best["colorizer"]["sha256"] and last["levels"] == best["levels"]
    for figure in ("probes.png", "low_shot.png"):
        assert {1, 2} <= series_colours(call.figures / figure), figure


@pytest.mark.slow
def test_two_pretext_runs_are_named_by_seed_pooled_in_the_tables_and_resampled_in_the_interval(study):
    out, calls = study
    call = calls["pretext-seeds"]
    for seed in (0, 1):
        assert json.loads((out / f"colorizer-pseed{seed}" / "config.json").read_text())["seed"] == seed
    added = set(call.runs) - set(calls["checkpoints"].runs)
    assert added == {f"seed{seed}/classification/colorization-pseed{run}/metrics.json" for seed in (0, 1) for run in (0, 1)}
    assert {run: call.runs[run] for run in calls["protocol"].runs} == calls["protocol"].runs  # the floors read back
    arm = {(run, seed): assert_scores_match_predictions(out / f"seed{seed}" / "classification" / f"colorization-pseed{run}")
           for run in (0, 1) for seed in (0, 1)}
    assert [_metrics(out, f"seed1/classification/colorization-pseed{run}")["pretext_seed"] for run in (0, 1)] == [0, 1]
    floor = {seed: assert_scores_match_predictions(out / f"seed{seed}" / "classification" / "random") for seed in (0, 1)}
    report = call.report
    measures = MEASURES["classification"]
    cells = " | ".join(_cell([test[key] for test in arm.values()]) for key in measures)
    assert f"| colorization | {cells} | 4 |" in report  # pooled: 2 pretext runs x 2 seeds
    gains = [arm[run, seed]["mAP"] - floor[seed]["mAP"] for run, seed in arm]  # paired by downstream seed
    gain_row = next(line for line in report.splitlines() if line.startswith("| gain (colorization - random) |"))
    assert gain_row.startswith(f"| gain (colorization - random) | {_cell(gains)} |") and "| 4 |" in gain_row
    row = next(line for line in report.splitlines() if line.startswith("| classification | mAP | colorization - random |"))
    assert f"| {100 * np.mean(gains):+.2f} |" in row and "| 2 x 2 x 8 |" in row
    low, high = (float(v) for v in row.split("| [")[1].split("] |")[0].split(", "))
    assert low <= 100 * np.mean(gains) <= high
    assert row.rstrip(" |").rsplit("| ", 1)[1] in ("helps", "hurts", "equivalent", "inconclusive",
                                                  "helps (< 1 point)", "hurts (< 1 point)")
    assert "2 runs of each pretext (pretext seeds 0-1)" in report
    assert '"pretext_seeds": 2' in report
