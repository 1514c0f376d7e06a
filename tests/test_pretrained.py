"""Shipped colorizers: float16 weights that colorize like the float32 run they came from, loaded by
name (`pretrained:NAME`) wherever a colorizer is read."""

import json
import os

import numpy as np
import pytest

from cgan_colorization import pretrained
from cgan_colorization.apps.inference import colorize_rgb, load_colorizer
from cgan_colorization.engine.config import TrainConfig
from cgan_colorization.engine.training import train


@pytest.fixture(scope="module")
def shipped(tmp_path_factory):
    """A tiny trained colorizer and its float16 copy in a package folder of its own."""
    base = tmp_path_factory.mktemp("pretrained")
    run = base / "run"
    train(TrainConfig(image_size=32, base_filters=4, batch_size=4, epochs=1, steps_per_epoch=3, val_size=8,
                      sample_count=2, backup_every=0, out=str(run)), verbose=0)
    folder = pretrained.ship(str(run), "toy", card="# toy\n", root=str(base / "package"))
    return run, folder


def test_float16_weights_colorize_within_one_level_of_the_float32_run(shipped):
    run, folder = shipped
    import h5py

    def arrays(path):
        found = []
        with h5py.File(path, "r") as f:
            f.visititems(lambda name, item: found.append((name, item.dtype)) if isinstance(item, h5py.Dataset) else None)
        return found

    half_arrays, full_arrays = arrays(os.path.join(folder, "generator.weights.h5")), arrays(run / "generator.weights.h5")
    assert [n for n, _ in half_arrays] == [n for n, _ in full_arrays]
    assert {str(d) for _, d in full_arrays} == {"float32"} and {str(d) for _, d in half_arrays} == {"float16"}
    photo = np.random.default_rng(0).uniform(0, 1, (45, 70, 3)).astype(np.float32)
    full = colorize_rgb(load_colorizer(str(run)), photo)
    half = colorize_rgb(load_colorizer(folder), photo)
    assert np.abs(full - half).max() <= 1 / 255
    config = json.load(open(os.path.join(folder, "config.json")))
    assert config["image_size"] == 32 and config["out"] == "" and open(os.path.join(folder, "MODEL_CARD.md")).read()


def test_a_shipped_colorizer_loads_by_name(shipped, monkeypatch):
    _, folder = shipped
    monkeypatch.setattr(pretrained, "HERE", os.path.dirname(folder))
    monkeypatch.setitem(pretrained.SHIPPED, "toy", "a test colorizer")
    colorizer = load_colorizer("pretrained:toy")
    assert colorizer.image_size == 32 and colorizer.checkpoint["file"] == os.path.join(folder, "generator.weights.h5")


def test_an_unknown_name_is_one_sentence_listing_the_shipped_ones():
    with pytest.raises(ValueError, match="is not a shipped colorizer: the package ships pretrained:tiny64-gan"):
        load_colorizer("pretrained:nope")


def test_the_shipped_colorizer_colours_a_photo_as_its_card_says(tmp_path):
    from PIL import Image

    from tests.conftest import run_script

    folder = pretrained.folder("pretrained:tiny64-gan")
    assert os.path.getsize(os.path.join(folder, "generator.weights.h5")) <= 16 * 10**6
    card = open(os.path.join(folder, "MODEL_CARD.md")).read()
    import hashlib
    digest = hashlib.sha256(open(os.path.join(folder, "generator.weights.h5"), "rb").read()).hexdigest()
    assert digest in card  # the card names the very file shipped
    rng = np.random.default_rng(0)
    photo = np.clip(rng.normal(0.5, 0.2, (90, 140, 3)), 0, 1)
    Image.fromarray((255 * photo).astype(np.uint8)).save(tmp_path / "photo.png")
    result = run_script("colorize.py", "--colorizer", "pretrained:tiny64-gan", str(tmp_path / "photo.png"),
                        "--out", str(tmp_path / "out"), timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    colorized = np.asarray(Image.open(tmp_path / "out" / "photo_colorized.png"))
    assert colorized.shape == (90, 140, 3)
