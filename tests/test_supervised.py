"""The supervised ceiling (`--objective supervised`): the U-Net encoder trained with labels, loaded
and transferred by name like a colorizer, its encoder only."""

import json
import os

import numpy as np
import pytest

from cgan_colorization.apps.inference import load_colorizer
from cgan_colorization.engine.config import TrainConfig
from cgan_colorization.engine.plots import read_csv_log
from cgan_colorization.engine.training import train
from tests.conftest import run_script
from transfer.config import FinetuneConfig
from transfer.experiment import run_finetune
from transfer.probes import encoder_levels

TINY = dict(train_size=16, val_size=8, test_size=8, batch_size=8, frozen_epochs=1, unfrozen_epochs=1)


@pytest.fixture(scope="module")
def ceiling(tmp_path_factory):
    out = tmp_path_factory.mktemp("supervised") / "run"
    train(TrainConfig(objective="supervised", dataset="synthetic", image_size=32, base_filters=4, batch_size=8,
                      epochs=2, steps_per_epoch=4, val_size=16, out=str(out)), verbose=0)
    return out


def test_the_ceiling_learns_the_labels_and_writes_no_colour(ceiling):
    log = read_csv_log(os.path.join(ceiling, "log.csv"))
    assert {"ce", "acc", "val_ce", "val_acc"} <= set(log) and len(log["ce"]) == 2
    assert log["ce"][-1] < log["ce"][0]  # the labels are being learnt
    labels = json.loads((ceiling / "labels.json").read_text())
    assert labels["num_classes"] == 6 and labels["single_label"] is False  # the synthetic scenes: multi-label
    assert not (ceiling / "samples").exists() and not (ceiling / "generator.keras").exists()
    colorizer = load_colorizer(str(ceiling))
    assert colorizer.pretext.name == "supervised" and colorizer.network.get_layer("sup_output").units == 6
    with pytest.raises(ValueError, match="predicts classes, not colour"):
        colorizer.predict_ab(np.zeros((1, 32, 32, 1), np.float32))


@pytest.mark.slow
def test_the_ceiling_transfers_its_encoder_by_name_and_is_probed_like_a_colorizer(ceiling, tmp_path):
    network = load_colorizer(str(ceiling)).network
    result = run_finetune(FinetuneConfig(task="segmentation", init="colorization", colorizer=str(ceiling),
                                         out=str(tmp_path), **TINY), verbose=0, log=lambda *_: None)
    transfer = result["transfer"]
    assert "bottleneck_conv" in transfer["copied"] and "enc1_conv" in transfer["copied"]
    assert any(name.startswith("dec") for name in transfer["kept"])  # it has no decoder to give
    assert "sup_output" in transfer["unused"] and result["pretext"] == "supervised"
    model, names = encoder_levels("unet", 32, 4, network)
    assert names[-1] == "bottleneck"
    for name in ("enc2_conv", "bottleneck_conv"):
        for ours, theirs in zip(model.get_layer(name).weights, network.get_layer(name).weights):
            np.testing.assert_array_equal(ours.numpy(), theirs.numpy())


def test_colorize_refuses_the_ceiling_in_one_sentence(ceiling, tmp_path):
    photo = tmp_path / "photo.png"
    from PIL import Image

    Image.fromarray(np.full((8, 8, 3), 120, np.uint8)).save(photo)
    result = run_script("colorize.py", "--weights", str(ceiling), str(photo), "--out", str(tmp_path / "out"),
                        timeout=120)
    assert result.returncode == 2 and "predicts classes, not colour" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_single_label_set_gets_a_softmax_head_top1_scores_and_a_single_label_ceiling(tmp_path):
    from tests.test_tinyimagenet import make_tiny_imagenet
    from transfer.report import task_metrics

    spec = f"tinyimagenet:{make_tiny_imagenet(tmp_path)}"
    result = run_finetune(FinetuneConfig(task="classification", init="random", dataset=spec, image_size=32,
                                         base_filters=4, colorizer=str(tmp_path / "none"), dense_units=16,
                                         baseline_epochs=1, batch_size=4), verbose=0, log=lambda *_: None)
    test = result["test"]
    assert test["num_images"] == 6 and 0 <= test["top1"] <= test["top5"] == 1.0  # 3 classes: top-5 is all
    assert set(test["per_class_top1"]) == {"cat", "dog", "n0002"} and "mAP" not in test
    assert [label for _, label in task_metrics([result], "classification")][:2] == ["top-1", "top-5"]
    run = tmp_path / "ceiling"
    train(TrainConfig(objective="supervised", dataset=spec, image_size=32, base_filters=4, batch_size=4, epochs=1,
                      steps_per_epoch=2, val_size=6, out=str(run)), verbose=0)
    labels = json.loads((run / "labels.json").read_text())
    assert labels["single_label"] is True and labels["num_classes"] == 3
    scores = load_colorizer(str(run)).network(np.zeros((2, 32, 32, 1), np.float32)).numpy()
    np.testing.assert_allclose(scores.sum(axis=1), 1.0, rtol=1e-5)  # softmax over the classes


def test_the_ceilings_own_schedule_flips_images_by_seed_and_decays_the_rate_to_zero():
    import dataclasses

    from cgan_colorization.pretexts import supervised
    from cgan_colorization.pretexts.pretext import learning_rate

    config = TrainConfig(objective="supervised", dataset="synthetic", image_size=32, batch_size=8, epochs=3,
                         steps_per_epoch=5, lr=1e-3, lr_schedule="cosine")
    plain = [g.numpy() for g, _ in supervised.datasets(config)[0].take(3)]
    flipped = [g.numpy() for g, _ in supervised.datasets(dataclasses.replace(config, flip=True))[0].take(3)]
    again = [g.numpy() for g, _ in supervised.datasets(dataclasses.replace(config, flip=True))[0].take(3)]
    mirrored = [np.array_equal(f, p[:, ::-1]) for fb, pb in zip(flipped, plain) for f, p in zip(fb, pb)]
    kept = [np.array_equal(f, p) for fb, pb in zip(flipped, plain) for f, p in zip(fb, pb)]
    assert all(m or k for m, k in zip(mirrored, kept)) and 0 < sum(mirrored) < len(mirrored)
    assert all(np.array_equal(a, b) for a, b in zip(flipped, again))  # the same draws on every pass
    schedule = learning_rate(config)
    assert float(schedule(0)) == pytest.approx(1e-3) and float(schedule(15)) == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(ValueError, match="--steps-per-epoch"):
        learning_rate(dataclasses.replace(config, steps_per_epoch=None))
