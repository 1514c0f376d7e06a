import numpy as np
import pytest
import tensorflow as tf
from skimage.color import rgb2lab

from data.color import denormalize_lab, lab_to_rgb, normalize_lab, rgb_to_lab
from tests.conftest import realdata


def _real_photos(count=4):
    from PIL import Image

    folder = realdata("bsds500", "train")
    return [np.asarray(Image.open(p).convert("RGB"), np.float32) / 255.0
            for p in sorted(folder.glob("*.jpg"))[:count]]


def test_matches_scikit_image_on_real_photos():
    for rgb in _real_photos():
        np.testing.assert_allclose(rgb_to_lab(rgb).numpy(), rgb2lab(rgb), atol=1e-2)


def test_matches_scikit_image_on_random_and_extreme_colours():
    rng = np.random.default_rng(0)
    rgb = rng.random((3, 5, 7, 3)).astype(np.float32)
    corners = np.array([[[i >> 2 & 1, i >> 1 & 1, i & 1] for i in range(8)]], np.float32)
    np.testing.assert_allclose(rgb_to_lab(rgb).numpy(), rgb2lab(rgb), atol=1e-2)
    lab = rgb_to_lab(corners).numpy()
    np.testing.assert_allclose(lab, rgb2lab(corners), atol=1e-2)
    assert lab[0, 0, 0] == pytest.approx(0.0, abs=1e-3) and lab[0, 7, 0] == pytest.approx(100.0, abs=1e-2)


def test_rgb_round_trip():
    rgb = np.random.default_rng(1).random((2, 16, 16, 3)).astype(np.float32)
    np.testing.assert_allclose(lab_to_rgb(rgb_to_lab(rgb)).numpy(), rgb, atol=1e-3)
    for photo in _real_photos(2):
        np.testing.assert_allclose(lab_to_rgb(rgb_to_lab(photo)).numpy(), photo, atol=1e-3)


def test_normalization_range_and_round_trip():
    rgb = np.random.default_rng(2).random((4, 8, 8, 3)).astype(np.float32)
    lab = rgb_to_lab(rgb)
    gray, ab = normalize_lab(lab)
    assert gray.shape == (4, 8, 8, 1) and ab.shape == (4, 8, 8, 2)
    np.testing.assert_allclose(gray, lab[..., :1] / 50 - 1, atol=1e-6)  # L in [0, 100] to [-1, 1]
    np.testing.assert_allclose(ab, lab[..., 1:] / 128, atol=1e-6)
    # sRGB's bluest blue, Lab (32.30, 79.19, -107.86), has the largest |ab| of the gamut: well within 1.
    _, blue = normalize_lab(rgb_to_lab(np.array([[0.0, 0.0, 1.0]], np.float32)))
    np.testing.assert_allclose(blue[0], [79.19 / 128, -107.86 / 128], atol=1e-3)
    np.testing.assert_allclose(denormalize_lab(gray, ab).numpy(), lab.numpy(), atol=1e-4)
    white_gray, _ = normalize_lab(rgb_to_lab(np.ones((1, 3), np.float32)))
    assert float(white_gray[0, 0]) == pytest.approx(1.0, abs=1e-4)


def test_works_in_tf_data_and_under_jit():
    rgb = np.random.default_rng(3).random((6, 8, 8, 3)).astype(np.float32)
    eager = rgb_to_lab(rgb).numpy()
    mapped = np.stack(list(tf.data.Dataset.from_tensor_slices(rgb).map(rgb_to_lab).as_numpy_iterator()))
    np.testing.assert_allclose(mapped, eager, atol=1e-5)
    jitted = tf.function(lambda x: lab_to_rgb(rgb_to_lab(x)), jit_compile=True)
    np.testing.assert_allclose(jitted(tf.constant(rgb)).numpy(), rgb, atol=1e-3)


def test_rejects_integer_images():
    with pytest.raises(ValueError, match="float"):
        rgb_to_lab(np.zeros((2, 2, 3), np.uint8))
