"""The verdict study's driver at toy size: pretext runs named by seed with a kept step, frozen-feature
probes whose stored test predictions reproduce their scores, colorizer diagnostics, CamVid fine-tuning
with equal steps per init (and 3x for the scratch control), and every part read back when run again."""

import argparse
import json
import time
import os
import pathlib

import numpy as np
import pytest

from tests.figures import png_size, series_colours
from tests.test_sequence_split import frames_root  # noqa: F401 - a module fixture: frames of three sequences
from tests.test_tinyimagenet import make_tiny_imagenet
from transfer import verdict


pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def study(tmp_path_factory, frames_root):  # noqa: F811
    base = tmp_path_factory.mktemp("verdict")
    patch = pytest.MonkeyPatch()
    for name, value in dict(IMAGE_SIZE=32, BASE_FILTERS=4, BATCH_SIZE=4, LINEAR_PER_CLASS=2, RANDOM_SEEDS=(0,),
                            DOWNSTREAM_SEEDS=(0,), RANDOM_DOWNSTREAM_SEEDS=(0,), LABEL_FRACTIONS=(1.0,),
                            TEST_SEQUENCE="0003CC",
                            ARMS=(verdict.Arm("gan-50k", "gan", 0, 4, (0,), keep_steps=(2,)),
                                  verdict.Arm("l1-50k", "l1", 0, 4, (0,)),
                                  verdict.Arm("supervised", "supervised", 0, 4, (0,), steps_per_epoch=2,
                                              options=(("lr", 2e-4), ("beta_1", 0.9), ("lr_schedule", "cosine"),
                                                       ("flip", True)))),
                            ORDER=(("gan-50k", 0), ("l1-50k", 0), ("supervised", 0))).items():
        patch.setattr(verdict, name, value)
    args = argparse.Namespace(tiny=str(make_tiny_imagenet(base)), out=str(base / "study"), only=(),
                              camvid=str(frames_root), results=str(base / "results"))
    for part in (verdict.run_pretexts, verdict.run_probes, verdict.run_downstream):
        part(args, log=lambda *_: None)
    yield args
    patch.undo()


def test_pretext_runs_carry_their_seed_and_keep_their_step(study):
    names = [name for name, *_ in verdict.networks(study)]
    assert names == ["gan-50k-seed0", "gan-50k@2-seed0", "l1-50k-seed0", "supervised-seed0", "random-seed0"]
    config = json.load(open(f"{study.out}/pretext/gan-50k-seed0/config.json"))
    assert (config["seed"], config["keep_steps"], config["epochs"] * config["steps_per_epoch"]) == (0, "2", 4)


def test_probes_store_test_predictions_that_reproduce_their_scores(study):
    for name in ("gan-50k-seed0", "gan-50k@2-seed0", "l1-50k-seed0", "random-seed0"):
        result = json.load(open(f"{study.results}/probes/{name}/probes.json"))
        stored = np.load(f"{study.results}/probes/{name}/per_image.npz")
        assert result["num_linear_train"] == 6 and result["num_train"] == 12 and result["knn"]["k"] == 12
        for level, scores in result["levels"].items():
            assert np.mean(stored[f"linear_{level}"] == stored["labels"]) == pytest.approx(scores["top1"])
            assert np.mean(stored[f"knn_{level}"] == stored["labels"]) == pytest.approx(scores["knn_top1"])
        assert result["linear_best_level"] == max(result["levels"], key=lambda n: result["levels"][n]["val_top1"])
    kept = json.load(open(f"{study.results}/probes/gan-50k@2-seed0/probes.json"))
    assert kept["checkpoint"]["checkpoint"] == "step2"
    colorized = json.load(open(f"{study.results}/probes/gan-50k-seed0/colorizer.json"))
    assert colorized["num_images"] == 5 and colorized["bottleneck"] is not None  # one held-out photo is grey
    assert not (os.path.exists(f"{study.results}/probes/random-seed0/colorizer.json"))
    assert not (os.path.exists(f"{study.results}/probes/supervised-seed0/colorizer.json"))


def test_the_ceiling_is_scored_by_its_own_head_and_called_a_ceiling_only_above_every_pretext(study):
    own = json.load(open(f"{study.results}/probes/supervised-seed0/ceiling.json"))
    assert own["num_test"] == 6 and own["checkpoint"]["checkpoint"] == "last" and own["checkpoint"]["epoch"] == 2
    assert own["test_top1"] * 6 == pytest.approx(round(own["test_top1"] * 6))  # a count of the 6 test photos
    linear = {}
    for name in ("gan-50k-seed0", "gan-50k@2-seed0", "l1-50k-seed0", "supervised-seed0"):
        stored, probed = np.load(f"{study.results}/probes/{name}/per_image.npz"), \
            json.load(open(f"{study.results}/probes/{name}/probes.json"))
        linear[name] = 100 * np.mean(stored[f"linear_{probed['linear_best_level']}"] == stored["labels"])
    report = open(verdict.write_report(study, n_boot=200, log=lambda *_: None)).read()
    section = report.split("## The supervised ceiling")[1].split("\n## ")[0]
    is_ceiling = linear["supervised-seed0"] > max(v for n, v in linear.items() if n != "supervised-seed0")
    assert ("it is a ceiling" in section) == is_ceiling and ("not called a ceiling" in section) != is_ceiling
    assert f"test top-1 {100 * own['test_top1']:.2f} %" in section
    assert png_size(f"{study.results}/ceiling.png") == (600, 360)  # its validation top-1 after each of 2 epochs


def test_the_report_tables_every_colorizer_and_names_the_runs_still_missing(study):
    report = open(verdict.write_report(study, n_boot=200, log=lambda *_: None)).read()
    table = report.split("## Colorizer diagnostics")[1].split("\n## ")[0]
    networks = [line.split("|")[1].strip() for line in table.splitlines() if line.startswith("| ")][1:]
    assert networks == ["gan-50k-seed0", "gan-50k@2-seed0", "l1-50k-seed0", "grey baseline (ab = 0)", "the photos"]
    psnr = json.load(open(f"{study.results}/probes/l1-50k-seed0/colorizer.json"))["model"]["psnr"]["mean"]
    assert f"| l1-50k-seed0 | last, epoch 1 | {psnr:.2f} (" in table  # 4 steps: one epoch
    assert "without results" not in report  # every run of this toy protocol has its results
    assert "Not yet decidable: H2 on linear top-1" in report  # it has no GAN-5k arm


def test_the_convergence_check_refits_every_level_longer_on_its_two_networks(study):
    for name in ("gan-50k-seed0", "random-seed0"):
        check = json.load(open(f"{study.results}/probes/{name}/convergence.json"))
        probed = json.load(open(f"{study.results}/probes/{name}/probes.json"))
        assert check["val_top1"] == probed["levels"][probed["linear_best_level"]]["val_top1"]
        assert check["epochs_longer"] == 3 * check["epochs"] and set(check["val_top1_longer_by_level"]) == \
            set(probed["levels"])
        assert check["val_top1_longer"] == max(check["val_top1_longer_by_level"].values())
        assert check["rerun_every_probe_longer"] == (check["rise_points"] > 0.5)
    assert not os.path.exists(f"{study.results}/probes/l1-50k-seed0/convergence.json")
    report = open(verdict.write_report(study, n_boot=200, log=lambda *_: None)).read()
    assert "| gan-50k-seed0 | 8 -> 24 |" in report and "| random-seed0 | 8 -> 24 |" in report


def test_every_init_fine_tunes_for_the_same_steps_and_scratch_also_at_three_times(study):
    def epochs(network):
        metrics = json.load(open(f"{study.results}/camvid/{network}/labels100-seed0/metrics.json"))
        assert metrics["test"]["num_images"] == 8 and metrics["label_fraction"] == 1.0  # the whole 0003CC sequence
        return len(metrics["history"]["loss"])

    assert epochs("random") == epochs("gan-50k-seed0") == epochs("l1-50k-seed0") == 6
    assert epochs("random-x3") == 18
    per_image = np.load(f"{study.results}/camvid/gan-50k@2-seed0/labels100-seed0/per_image.npz")
    assert len(per_image["confusion"]) == 8


def test_a_second_call_reads_every_part_back(study):
    finished = {p: p.stat().st_mtime for folder in (study.out, study.results)
                for p in pathlib.Path(folder).rglob("*.json")}
    for part in (verdict.run_pretexts, verdict.run_probes, verdict.run_downstream):
        part(study, log=lambda *_: None)
    assert {p: p.stat().st_mtime for p in finished} == finished


def test_the_report_gives_each_contrast_its_interval_and_verdict_or_says_it_has_not_run(study):
    path = verdict.write_report(study, n_boot=200, log=lambda *_: None)
    report = open(path).read()
    rows = {tuple(cell.strip() for cell in line.split("|")[1:3]): line for line in report.splitlines()
            if line.startswith("| H")}
    for measure in ("linear top-1", "CamVid mIoU, 100 %", "kNN top-1"):
        assert any(word in rows[("H1", measure)] for word in ("helps", "hurts", "equivalent", "inconclusive"))
    assert "not yet run" in rows[("H2", "linear top-1")]  # no GAN-5k run in this toy study
    assert "| gan-50k | " in report and "| random | " in report
    table = report.split("| contrast | measure |")[1].split("\n\n")[0].splitlines()[2:]
    shown = [line for line in table if "not yet run" not in line]
    width, height = png_size(os.path.join(study.results, "forest.png"))  # 1.8 in and 0.45 a row, at 100 dpi
    assert width == 1000 and abs(height - 100 * (1.8 + 0.45 * len(shown))) <= 1 and len(shown) > 1
    assert series_colours(os.path.join(study.results, "forest.png")) == {0}  # the gains and their intervals


def test_results_hold_scores_not_weights_and_a_new_machine_needs_only_them(study, tmp_path):
    """The results folder (kept across machines) holds no weights; with the pretext checkpoints and fine-tuned
    weights gone, 'all' trains nothing again and the report reads the same scores."""
    import shutil

    kept = {p.name for p in pathlib.Path(study.results).rglob("*") if p.is_file()}
    scores = {"probes.json", "per_image.npz", "colorizer.json", "metrics.json", "convergence.json", "ceiling.json",
              "config.json", "log.csv", "train_summary.json"}
    assert scores <= kept <= scores | {"times.json", "report.md", "forest.png", "ceiling.png", "levels.png"}
    before = open(verdict.write_report(study, n_boot=200, log=lambda *_: None)).read()
    moved = argparse.Namespace(**dict(vars(study), out=str(tmp_path / "fresh-machine")))
    said = []
    verdict.run_all(moved, log=said.append)
    assert not os.path.exists(moved.out + "/pretext") and not os.path.exists(moved.out + "/camvid")
    assert any("every result is in" in line for line in said)
    after = open(verdict.write_report(moved, n_boot=200, log=lambda *_: None)).read()
    strip = lambda text: text.split("## Time of each part")[0]  # noqa: E731
    assert strip(after) == strip(before)


def test_a_part_keeps_its_own_time_and_a_read_back_part_leaves_it(tmp_path):
    path, times = str(tmp_path / "times.json"), {"probes gan-50k-seed0": 493.6}
    verdict._record_time(path, times, "convergence check gan-50k-seed0", time.time() - 525.5)
    verdict._record_time(path, times, "probes gan-50k-seed0", time.time())  # read back: under 5 s
    assert json.load(open(path)) == {"probes gan-50k-seed0": 493.6, "convergence check gan-50k-seed0": 525.5}
