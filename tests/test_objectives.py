import json
import os

import numpy as np
import pytest

from cgan_colorization.apps.inference import load_colorizer
from cgan_colorization.engine.config import TrainConfig
from cgan_colorization.engine.training import train
from data.pipeline import parse_dataset, pretext_dataset
from transfer.models import build_classifier, build_segmenter, transfer_weights


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("objectives")
    out = {}
    for objective in ("gan", "l1", "classification", "multitask"):
        config = TrainConfig(objective=objective, image_size=32, base_filters=4, batch_size=4, epochs=1,
                             steps_per_epoch=3, val_size=8, sample_count=2, prior_batches=3,
                             out=str(folder / objective))
        out[objective] = train(config, verbose=0)
    return out


@pytest.mark.parametrize("objective", ["gan", "l1", "classification", "multitask"])
@pytest.mark.slow
def test_every_objective_transfers_into_both_downstream_models(runs, objective):
    colorizer = load_colorizer(runs[objective])
    classifier = transfer_weights(colorizer.network, build_classifier(32, 4, num_classes=6, dense_units=8))
    segmenter = transfer_weights(colorizer.network, build_segmenter(32, 4, num_classes=7))
    assert {"enc1_conv", "enc2_bn", "bottleneck_conv"} <= set(classifier.copied)
    assert {"enc1_conv", "bottleneck_conv", "dec1_deconv", "dec4_bn"} <= set(segmenter.copied)
    assert segmenter.kept == ["seg_output_deconv"]
    gray, _ = next(iter(pretext_dataset(parse_dataset("synthetic"), "val", image_size=32, batch_size=4, val_size=4)))
    ab = colorizer.predict_ab(gray).numpy()
    assert ab.shape == (4, 32, 32, 2) and np.abs(ab).max() <= 1.0


@pytest.mark.slow
def test_each_objective_logs_its_own_losses(runs):
    headers = {name: open(os.path.join(path, "log.csv")).readline().strip().split(",")
               for name, path in runs.items()}
    assert {"g_gan", "d_loss", "val_g_l1"} <= set(headers["gan"])
    assert "g_l1" in headers["l1"] and "d_loss" not in headers["l1"]
    assert {"ce", "val_ce", "g_l1"} <= set(headers["classification"])
    assert {"g_l1", "seg_ce", "val_seg_miou"} <= set(headers["multitask"])
    assert not os.path.exists(os.path.join(runs["l1"], "discriminator.weights.h5"))


@pytest.mark.slow
def test_classification_objective_saves_its_bins_prior_and_weights(runs):
    with open(os.path.join(runs["classification"], "zhang_stats.json")) as f:
        stats = json.load(f)
    assert stats["num_bins"] == 262 and len(stats["bins"]) == len(stats["prior"]) == len(stats["weights"]) == 262
    assert stats["meta"]["num_bins"] == 262 and stats["meta"]["paper_num_bins"] == 313  # Q here, and the paper's
    assert abs(sum(stats["prior"]) - 1) < 1e-9 and min(stats["weights"]) > 0


def test_multitask_needs_masks(tmp_path):
    from PIL import Image

    Image.fromarray(np.zeros((8, 8, 3), np.uint8) + 100).save(tmp_path / "a.png")
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(tmp_path / "b.png")
    config = TrainConfig(objective="multitask", dataset=f"folder:{tmp_path}", image_size=32, base_filters=4,
                         out=str(tmp_path / "run"))
    with pytest.raises(ValueError, match="needs segmentation masks"):
        train(config, verbose=0)
