import json

import pytest

from cgan_colorization.engine.config import TrainConfig
from cgan_colorization.engine.plots import read_csv_log
from cgan_colorization.engine.training import train
from tests.conftest import realdata
from tests.conftest import run_script as _script
from tests.figures import series_colours
from tests.scores import assert_scores_match_predictions

TINY = ["--train-size", "24", "--val-size", "8", "--test-size", "16", "--batch-size", "8"]


@pytest.fixture(scope="module")
def colorizer(tmp_path_factory):
    out = tmp_path_factory.mktemp("colorizer") / "run"
    train(TrainConfig(image_size=32, base_filters=4, batch_size=4, epochs=1, steps_per_epoch=2, val_size=8,
                      sample_count=2, out=str(out)), verbose=0)
    return out


@pytest.mark.slow
def test_finetune_classifier_both_inits_write_metrics_and_one_comparison_plot(colorizer, tmp_path):
    out = tmp_path / "cls"
    for init in ("colorization", "random"):
        result = _script("finetune_classifier.py", "--init", init, "--colorizer", str(colorizer), "--out", str(out),
                         "--dense-units", "16", "--baseline-epochs", "2", "--frozen-epochs", "1",
                         "--unfrozen-epochs", "1", *TINY)
        assert result.returncode == 0, result.stderr[-2000:]
        metrics = json.load(open(out / f"{init}-seed0" / "metrics.json"))
        test = assert_scores_match_predictions(out / f"{init}-seed0")  # the mAP of the predictions it saved
        assert len(test["ap"]) == 6 and test["num_images"] == 16
        assert metrics["image_size"] == 32 and metrics["base_filters"] == 4
        assert len(metrics["history"]["loss"]) == 2
        assert (out / f"{init}-seed0" / "log.csv").read_text().count("\n") == 3
    transferred = json.load(open(out / "colorization-seed0" / "metrics.json"))["transfer"]
    assert "bottleneck_conv" in transferred["copied"] and "cls_output" in transferred["kept"]
    assert json.load(open(out / "random-seed0" / "metrics.json"))["transfer"] is None
    logs = [read_csv_log(out / f"{init}-seed0" / "log.csv") for init in ("colorization", "random")]
    curves = sum(1 + bool(log.get("val_loss")) for log in logs)  # a curve per init, and its validation one
    assert series_colours(out / "loss_curves.png") == set(range(curves))


@pytest.mark.slow
def test_finetune_segmenter_on_camvid_folders(colorizer, tmp_path):
    camvid = realdata("camvid")
    spec = f"seg-folder:{camvid / 'train'},{camvid / 'trainannot'};{camvid / 'val'},{camvid / 'valannot'}"
    result = _script("finetune_segmenter.py", "--colorizer", str(colorizer), "--out", str(tmp_path / "seg"),
                     "--dataset", spec, "--void-index", "11", "--frozen-epochs", "1", "--unfrozen-epochs", "1",
                     *TINY)
    assert result.returncode == 0, result.stderr[-2000:]
    metrics = assert_scores_match_predictions(tmp_path / "seg" / "colorization-seed0")  # mIoU of its confusion
    assert len(metrics["iou"]) == 11 and metrics["num_pixels"] <= 16 * 32 * 32


def test_finetune_refuses_a_missing_dataset_folder(colorizer, tmp_path):
    result = _script("finetune_segmenter.py", "--colorizer", str(colorizer), "--dataset",
                     f"voc:{tmp_path / 'nowhere'}", "--out", str(tmp_path / "x"))
    assert result.returncode == 2 and "nowhere" in result.stderr and "Traceback" not in result.stderr


def test_a_missing_colorizer_is_refused_with_the_command_that_trains_it_and_nothing_is_trained(tmp_path, monkeypatch,
                                                                                               capsys):
    from transfer.cli import classifier_main, features_main, segmenter_main
    from transfer.experiment import check_colorizer

    monkeypatch.chdir(tmp_path)  # a folder without runs/colorizer
    for main, argv in ((classifier_main, ["--init", "colorization"]), (segmenter_main, []),
                       (features_main, ["--colorizer", "runs/colorizer"])):
        with pytest.raises(SystemExit) as stopped:
            main(argv)
        error = capsys.readouterr().err
        assert stopped.value.code == 2 and error.startswith("error: ") and error.count("\n") == 1, error
        assert "`python train_colorizer.py --out runs/colorizer`" in error, error
        assert "--colorizer pretrained:tiny64-gan" in error and "Traceback" not in error
    assert list(tmp_path.iterdir()) == []  # no colorizer trained, no run folder written
    assert check_colorizer("pretrained:tiny64-gan").endswith("tiny64-gan")  # the shipped one needs no training
    with pytest.raises(FileNotFoundError, match="--out nowhere`"):
        check_colorizer("nowhere/generator.weights.h5")


def _reproduce_study(*argv):
    from transfer import options
    from transfer.reproduce import resolve

    return resolve(options.reproduce_parser().parse(list(argv)))


def test_the_probes_test_cap_is_the_studys_own_where_it_gives_one_even_zero_for_all():
    from transfer import options, scaling
    from transfer.config import ProbeConfig

    args = options.scaling_parser().parse(["--tiny", "tiny", "--labelled", "synthetic"])
    assert scaling.size_study(args, (), 5, 200).probes.test_size == 0  # the scaling study: every val photo
    assert _reproduce_study("--eval-size", "100").probes.test_size == 100
    assert _reproduce_study().probes.test_size == ProbeConfig.test_size


def test_reproduce_reads_its_pretexts_once_and_saves_the_study_under_its_option_names():
    study = _reproduce_study("--pretexts", "gan-skipdrop,l1@best,gan-skipdrop@best", "--checkpoint", "best",
                             "--tasks", "segmentation", "--label-fractions", "0.5,1")
    assert [(ref.name, ref.checkpoint) for ref in study.pretexts] == [("gan-skipdrop", "best"), ("l1", "best")]
    assert study.pretexts[0].options == {"skip_dropout": 0.5} and study.downstream.fractions("segmentation") == (0.5, 1)
    record = study.record()
    assert list(record) == [  # OUT/config.json, in the order earlier runs wrote it (pretext_seeds added last)
        "pretext_dataset", "classification_dataset", "segmentation_dataset", "seeds", "preset", "out", "colorizer",
        "pretexts", "checkpoint", "multitask_dataset", "image_size", "pretext_epochs", "pretext_steps", "void_index",
        "downstream_scale", "train_size", "tasks", "label_fractions", "probes", "probe_train_size", "eval_size",
        "base_filters", "pretext_seeds"]
    assert record["pretexts"] == ["gan-skipdrop@best", "l1@best"] and record["tasks"] == ["segmentation"]
    assert record["label_fractions"] == [0.5, 1.0] and record["probes"] is False
    with pytest.raises(ValueError, match="--colorizer reuses one colorizer"):
        _reproduce_study("--pretexts", "gan,l1", "--colorizer", "runs/colorizer")
