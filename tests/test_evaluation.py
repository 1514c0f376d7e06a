import keras
import numpy as np
import pytest
import tensorflow as tf
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from data.color import normalize_lab, rgb_to_lab
from cgan_colorization.apps.evaluation import (MAX_PSNR_DB, bottleneck_health, colourfulness, evaluate_colorizer,
                                          psnr, ssim)
from cgan_colorization.networks.models import build_generator


def _pair(seed=0):
    rng = np.random.default_rng(seed)
    a = rng.random((2, 48, 48, 3)).astype(np.float32)
    b = np.clip(a + rng.normal(0, 0.05, a.shape), 0, 1).astype(np.float32)
    return a, b


def test_psnr_and_ssim_agree_with_scikit_image():
    a, b = _pair()
    ours_psnr, ours_ssim = psnr(a, b).numpy(), ssim(a, b).numpy()
    for i in range(2):
        assert ours_psnr[i] == pytest.approx(peak_signal_noise_ratio(a[i], b[i], data_range=1.0), abs=1e-3)
        reference = structural_similarity(a[i], b[i], data_range=1.0, channel_axis=-1, gaussian_weights=True,
                                          sigma=1.5, use_sample_covariance=False)
        assert ours_ssim[i] == pytest.approx(reference, abs=2e-3)
    assert psnr(a, a).numpy()[0] == pytest.approx(MAX_PSNR_DB)


def test_colourfulness_is_zero_for_grey_and_grows_with_saturation():
    grey = np.full((1, 8, 8, 3), 0.4, np.float32)
    pale = np.concatenate([np.full((1, 8, 8, 1), 0.6), np.full((1, 8, 8, 2), 0.4)], -1).astype(np.float32)
    vivid = np.concatenate([np.full((1, 8, 8, 1), 1.0), np.zeros((1, 8, 8, 2))], -1).astype(np.float32)
    values = [float(colourfulness(x)[0]) for x in (grey, pale, vivid)]
    assert values[0] == pytest.approx(0.0, abs=1e-4) and values[0] < values[1] < values[2]


def test_perfect_colorizer_beats_the_grey_baseline_which_a_grey_colorizer_equals():
    rgb, _ = _pair(1)
    gray, ab = normalize_lab(rgb_to_lab(rgb))
    data = tf.data.Dataset.from_tensor_slices((gray, ab)).batch(1)
    grey = evaluate_colorizer(lambda g: tf.zeros([*g.shape[:-1], 2]), data)
    assert grey["num_images"] == 2
    for key in ("mean", "min", "max"):
        assert grey["model"]["psnr"][key] == pytest.approx(grey["grey_baseline"]["psnr"][key], abs=1e-3)
    truth = iter([a for _, a in data])
    perfect = evaluate_colorizer(lambda g: next(truth), data)
    assert perfect["model"]["psnr"]["mean"] > perfect["grey_baseline"]["psnr"]["mean"] + 10
    assert perfect["model"]["ssim"]["min"] > 0.99


def test_bottleneck_health_sees_dead_and_constant_codes():
    generator = build_generator(32, 4, seed=0)
    data = tf.data.Dataset.from_tensor_slices(
        (np.random.default_rng(0).uniform(-1, 1, (8, 32, 32, 1)).astype(np.float32),
         np.zeros((8, 32, 32, 2), np.float32))).batch(4)
    healthy = bottleneck_health(generator, data)
    codes = keras.Model(generator.input, generator.get_layer("bottleneck_relu").output)(
        np.concatenate([x for x, _ in data])).numpy().reshape(8, 32)  # the 1 x 1 code of each image
    assert healthy["units"] == 32 and healthy["images"] == 8
    assert healthy["spread"] == pytest.approx(codes.std(axis=0).mean(), rel=1e-5)
    assert healthy["dead_fraction"] == pytest.approx((codes.max(axis=0) <= 0).mean())
    bias = generator.get_layer("bottleneck_conv").bias
    kernel = generator.get_layer("bottleneck_conv").kernel
    kernel.assign(keras.ops.zeros_like(kernel))
    bias.assign(-keras.ops.ones_like(bias))
    dead = bottleneck_health(generator, data)
    assert dead["dead_fraction"] == 1.0 and dead["spread"] == 0.0
