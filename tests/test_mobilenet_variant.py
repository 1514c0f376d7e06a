"""The multitask source's MobileNetV2 variant (Y in, UV out, MSE) from training to both downstream
tasks (its place in the reproduction report: tests/test_reproduce.py), and the colour-space helpers it
rests on."""

import json

import numpy as np
import pytest
import tensorflow as tf

from data.color import join_rgb, split_rgb
from cgan_colorization.engine.config import TrainConfig, check_config
from data import labelled
from data.pipeline import parse_dataset, pretext_dataset
from tests.conftest import run_script as _script
from tests.scores import assert_scores_match_predictions

TINY = ["--train-size", "16", "--val-size", "8", "--test-size", "8", "--batch-size", "8"]


@pytest.mark.parametrize("space", ["lab", "yuv"])
def test_split_and_join_rgb_round_trip(space):
    rgb = tf.random.stateless_uniform([2, 8, 8, 3], seed=[1, 2])
    grey, colour = split_rgb(rgb, space)
    assert grey.shape == (2, 8, 8, 1) and colour.shape == (2, 8, 8, 2)
    np.testing.assert_allclose(join_rgb(grey, colour, space), rgb, atol=1e-4)
    low, high = (-1.0, 1.0) if space == "lab" else (0.0, 1.0)
    assert low - 1e-6 <= float(tf.reduce_min(grey)) and float(tf.reduce_max(grey)) <= high + 1e-6
    with pytest.raises(ValueError, match="color_space"):
        split_rgb(rgb, "hsv")


def test_both_colour_spaces_of_the_pretext_stream_hold_the_same_scenes():
    source = parse_dataset("synthetic")
    common = dict(image_size=32, batch_size=4, with_masks=True)
    lab_grey, lab_targets = next(iter(pretext_dataset(source, "val", **common)))
    y, yuv_targets = next(iter(pretext_dataset(source, "val", color_space="yuv", **common)))
    assert set(yuv_targets) == {"uv", "mask"}
    np.testing.assert_array_equal(lab_targets["mask"], yuv_targets["mask"])
    np.testing.assert_allclose(join_rgb(y, yuv_targets["uv"], "yuv"),
                               join_rgb(lab_grey, lab_targets["ab"], "lab"), atol=2e-3)


@pytest.mark.parametrize("task", ["classification", "segmentation"])
def test_downstream_readers_give_y_for_the_mobilenet_models(task):
    source = labelled.parse_labelled("synthetic", task)
    make = labelled.classification_dataset if task == "classification" else labelled.segmentation_dataset
    lab_x, lab_y = next(iter(make(source, "test", image_size=32, batch_size=4)))
    y_x, y_y = next(iter(make(source, "test", image_size=32, batch_size=4, color_space="yuv")))
    np.testing.assert_array_equal(lab_y, y_y)  # same items, same targets
    assert float(tf.reduce_min(y_x)) >= 0.0 and float(tf.reduce_max(y_x)) <= 1.0
    assert float(tf.reduce_min(lab_x)) < -0.5  # L is in [-1, 1], Y in [0, 1]: they differ ...
    # ... yet both are the scene's lightness.
    assert np.corrcoef(lab_x.numpy().ravel(), y_x.numpy().ravel())[0, 1] > 0.97
    with pytest.raises(ValueError, match="color_space"):
        make(source, "test", image_size=32, batch_size=4, color_space="rgb")


@pytest.mark.parametrize("changes, match", [
    (dict(backbone="resnet"), "--backbone must be one of"),
    (dict(backbone="mobilenetv2", objective="gan"), "--objective multitask"),
    (dict(backbone="mobilenetv2", objective="multitask", image_size=48), "multiple of 32"),
    (dict(backbone_weights="w.h5"), "needs --backbone mobilenetv2"),
])
def test_backbone_choices_are_checked(changes, match):
    import dataclasses

    with pytest.raises(ValueError, match=match):
        check_config(dataclasses.replace(TrainConfig(), **changes))


@pytest.fixture(scope="module")
def mobilenet_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("mnv2") / "run"
    result = _script("train_colorizer.py", "--objective", "multitask", "--backbone", "mobilenetv2",
                     "--image-size", "32", "--epochs", "1", "--steps-per-epoch", "3", "--batch-size", "4",
                     "--val-size", "8", "--sample-count", "2", "--out", str(run))
    assert result.returncode == 0, result.stderr[-3000:]
    return run


@pytest.mark.slow
def test_train_evaluate_and_colorize_the_mobilenet_model(mobilenet_run, tmp_path):
    from PIL import Image

    config = json.load(open(mobilenet_run / "config.json"))
    assert config["backbone"] == "mobilenetv2" and config["objective"] == "multitask"
    assert (mobilenet_run / "generator.weights.h5").is_file()
    assert len(list((mobilenet_run / "samples").glob("*.png"))) == 1
    log = (mobilenet_run / "log.csv").read_text()
    assert "g_mse" in log and "seg_ce" in log  # MSE on UV, cross-entropy on the masks

    result = _script("evaluate_colorizer.py", "--run", str(mobilenet_run), "--max-images", "8")
    assert result.returncode == 0, result.stderr[-3000:]
    scores = json.load(open(next(mobilenet_run.glob("eval_*.json"))))
    assert scores["num_images"] == 8 and scores["bottleneck"] is None  # no 1 x 1 U-Net bottleneck
    assert 5.0 < scores["model"]["psnr"]["mean"] < 60.0

    photo = np.random.default_rng(0).integers(0, 255, (45, 70, 3), dtype=np.uint8)
    Image.fromarray(photo).save(tmp_path / "photo.png")
    result = _script("colorize.py", str(tmp_path / "photo.png"), "--weights", str(mobilenet_run),
                     "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr[-3000:]
    colorized = np.asarray(Image.open(next((tmp_path / "out").glob("photo*"))))
    assert colorized.shape == (45, 70, 3)


@pytest.mark.slow
def test_mobilenet_weights_fine_tune_a_classifier_and_refuse_a_unet_segmenter(mobilenet_run, tmp_path):
    out = tmp_path / "cls"
    result = _script("finetune_classifier.py", "--colorizer", str(mobilenet_run), "--out", str(out),
                     "--frozen-epochs", "1", "--unfrozen-epochs", "1", *TINY)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.load(open(out / "colorization-seed0" / "metrics.json"))
    assert metrics["backbone"] == "mobilenetv2" and metrics["pretext"] == "multitask-mobilenetv2"
    assert "mnv2_encoder" in metrics["transfer"]["copied"] and "mnv2_cls_output" in metrics["transfer"]["kept"]
    test = assert_scores_match_predictions(out / "colorization-seed0")  # the mAP of the predictions it saved
    assert len(test["ap"]) == 6 and test["num_images"] == 8

    # (A MobileNetV2 segmenter from random weights: tests/test_reproduce.py.)
    result = _script("finetune_segmenter.py", "--backbone", "unet", "--colorizer", str(mobilenet_run),
                     "--out", str(tmp_path / "bad"), *TINY)
    assert result.returncode == 2 and "does not match the colorizer's mobilenetv2" in result.stderr


def test_table3_names_the_data_a_pretext_was_scored_on():
    from transfer.report import table3

    summary = {"mean": 1.0, "min": 0.5, "max": 2.0, "std": 0.1}
    result = {"model": {"psnr": summary, "ssim": summary, "colourfulness": summary},
              "grey_baseline": {"psnr": summary, "ssim": summary, "colourfulness": summary},
              "original": {"colourfulness": summary}, "num_images": 4}
    table = table3({"gan": result, "multitask": result}, scored_on={"multitask": "synthetic"})
    assert "| gan colorizer |" in table and "| multitask colorizer (scored on `synthetic`) |" in table
