"""Generators kept at chosen optimizer steps (--keep-steps) are the shorter runs themselves, and the
validation set of a photo run is scored exactly (no empty last batch counted)."""

import json
import os

import numpy as np
import pytest
from PIL import Image

from cgan_colorization.apps.inference import checkpoint_info, load_colorizer
from cgan_colorization.engine.callbacks import KEPT_STEPS_RECORD
from cgan_colorization.engine.config import TrainConfig, parse_steps
from cgan_colorization.engine.plots import read_csv_log
from cgan_colorization.engine.training import train
from data.pipeline import parse_dataset, pretext_dataset

SMALL = dict(image_size=32, base_filters=4, batch_size=4, val_size=8, sample_count=2, backup_every=0)


def _weights(path):
    return [np.asarray(w) for w in load_colorizer(str(path)).network.get_weights()]


def test_a_generator_kept_at_a_step_equals_the_final_generator_of_a_run_that_long(tmp_path):
    long_run, short_run = tmp_path / "long", tmp_path / "short"
    train(TrainConfig(epochs=2, steps_per_epoch=3, keep_steps="2,4", out=str(long_run), **SMALL), verbose=0)
    train(TrainConfig(epochs=2, steps_per_epoch=2, out=str(short_run), **SMALL), verbose=0)

    kept = json.loads((long_run / KEPT_STEPS_RECORD).read_text())
    assert sorted(kept) == ["2", "4"] and kept["4"]["optimizer_step"] == 4 and kept["4"]["epoch"] == 2
    step4 = long_run / "generator_step000004.weights.h5"
    info = checkpoint_info(str(step4))
    assert info["checkpoint"] == "step4" and info["epoch"] == 2
    # Step 4 of a 6-step run (epochs of 3) is the 4-step run (epochs of 2): same data stream, same dropout.
    for a, b in zip(_weights(step4), _weights(short_run / "generator.weights.h5")):
        np.testing.assert_array_equal(a, b)
    final = _weights(long_run / "generator.weights.h5")
    assert any(not np.array_equal(a, b) for a, b in zip(_weights(step4), final))


@pytest.mark.parametrize("text", ["0", "3000,x", "-5"])
def test_bad_keep_steps_are_one_sentence(text):
    with pytest.raises(ValueError, match="--keep-steps"):
        parse_steps(text)


def test_validation_of_a_photo_folder_is_the_exact_mean_over_its_images(tmp_path):
    rng = np.random.default_rng(0)
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(40):
        Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(photos / f"p{i:02d}.png")
    out = tmp_path / "run"
    config = TrainConfig(dataset=f"folder:{photos}", val_fraction=0.5, epochs=1, steps_per_epoch=2, out=str(out),
                         **dict(SMALL, val_size=8))
    train(config, verbose=0)
    logged = read_csv_log(os.path.join(out, "log.csv"))["val_g_l1"][-1]
    colorizer = load_colorizer(str(out))
    source = parse_dataset(config.dataset, config.val_fraction, config.seed)
    errors = [np.abs(colorizer.predict_ab(gray).numpy() - ab.numpy()).mean(axis=(1, 2, 3))
              for gray, ab in pretext_dataset(source, "val", image_size=32, batch_size=4).take(2)]
    assert sum(len(e) for e in errors) == 8  # the first --val-size held-out photos, in their order
    # A stream of unknown length made Keras count one empty batch more (2/3 of the mean here).
    assert logged == pytest.approx(np.concatenate(errors).mean(), rel=1e-4)
