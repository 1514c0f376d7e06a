"""The data-scaling study end to end at toy size (one subset; tests/test_tinyimagenet.py checks that
subsets nest): a Tiny ImageNet subset, the supervised ceiling,
random floors, linear top-1, fine-tuning, the report and its figure, and a second call from the study's
own OUT/config.json that reads every finished part back."""

import json

import pytest

from tests.conftest import run_script
from tests.figures import png_size, series_colours
from tests.test_tinyimagenet import make_tiny_imagenet


@pytest.mark.slow
def test_the_scaling_study_runs_every_part_reports_them_and_resumes(tmp_path):
    tiny = make_tiny_imagenet(tmp_path)
    out = tmp_path / "scaling"
    args = ["scaling_study.py", "--tiny", str(tiny), "--labelled", "synthetic", "--out", str(out), "--pretexts", "gan",
            "--per-class", "4", "--seeds", "1", "--pretext-epochs", "1", "--pretext-steps", "2", "--image-size", "32",
            "--base-filters", "4", "--segmentation-train-size", "16", "--downstream-scale", "0.25",
            "--camvid-fractions", "1"]
    result = run_script(*args, timeout=1200)
    assert result.returncode == 0, result.stderr[-3000:]
    report = (out / "report.md").read_text()
    for text in ("| random |", "| gan, 12 photos |", "| supervised |",
                 "blind guess (most frequent test class): top-1 33.33 %", "## Share of the random-to-ceiling gap",
                 "linear top-1 (Tiny ImageNet)", "fine-tuned top-1, 10 % of the labels", "CamVid mIoU, 100 % of the labels"):
        assert text in report, text
    # A panel (4.2 in wide) per measure of the report's table, the gan line in each (the ceiling's is grey).
    assert png_size(out / "scaling.png") == (3 * 420, 410) and series_colours(out / "scaling.png") == {0}
    config = json.loads((out / "4-per-class" / "colorizer" / "config.json").read_text())
    assert config["max_photos_per_class"] == 4 and config["dataset"] == f"tinyimagenet:{tiny}"
    recorded = json.loads((out / "4-per-class" / "probes" / "probes.json").read_text())
    assert recorded["config"]["test_size"] == 0  # the probe, too, tests on every val photo (0: no cap)
    probes = recorded["inits"]
    assert set(probes) == {"gan", "supervised"}  # the random floor is probed once, in its own folder
    outcome = probes["gan"][0]
    level = outcome["levels"]["bottleneck"]
    assert level["top5"] == 1.0 and len(level["grid"]) > 1  # 3 classes: every label is among the top 5
    assert level["top1"] * outcome["num_test"] == pytest.approx(round(level["top1"] * outcome["num_test"]))
    floors = json.loads((out / "random" / "probes" / "probes.json").read_text())["inits"]
    assert list(floors) == ["random"]
    tiny_runs = sorted(p.parent.name for p in (out / "4-per-class").glob("seed0/classification/*/metrics.json"))
    assert tiny_runs == ["colorization-labels10", "supervised-labels10"]  # the ceiling sits at the largest size
    metrics = json.loads((out / "4-per-class" / "seed0" / "classification" / "colorization-labels10"
                          / "metrics.json").read_text())
    assert metrics["test"]["num_images"] == 6 and "top1" in metrics["test"]  # every val photo is a test photo
    times = json.loads((out / "times.json").read_text())
    assert any(key.startswith("pretext gan, 4 a class") for key in times)
    before = {p: p.stat().st_mtime for p in out.rglob("metrics.json")}
    recorded = json.loads((out / "config.json").read_text())
    assert recorded["per_class"] == [4] and recorded["pretext_steps"] == 2 and recorded["tiny"] == str(tiny)
    result = run_script("scaling_study.py", "--config", str(out / "config.json"), timeout=600)  # the same study again
    assert result.returncode == 0, result.stderr[-3000:]
    assert all(p.stat().st_mtime == t for p, t in before.items())  # every finished part read back
