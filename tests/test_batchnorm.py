"""BatchNorm on short schedules: the MobileNetV2 momentum, re-estimating the moving statistics, the
batch-statistics twin of inference, and what the transferred BatchNorm layers do in phase 2."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import layers

from cgan_colorization.constants import KERAS_MOBILENET_BN_MOMENTUM, MOBILENET_BN_MOMENTUM
from cgan_colorization.networks import batchnorm as bn
from tests.conftest import run_script
from transfer.config import FinetuneConfig
from transfer.experiment import backbone_options
from transfer.finetune import Phase, two_phase_finetune
from transfer.models import build_classifier, build_segmenter, transfer_weights


def _nested_model():
    """Input -> Conv -> BN "outer_bn" -> Dropout -> nested model (Conv -> BN "inner_bn") -> BN "frozen_bn"."""
    inner_in = keras.Input((8, 8, 4))
    inner = keras.Model(inner_in, layers.BatchNormalization(name="inner_bn")(
        layers.Conv2D(4, 3, padding="same", name="inner_conv")(inner_in)), name="inner")
    inputs = keras.Input((8, 8, 3))
    x = layers.Conv2D(4, 3, padding="same", name="outer_conv")(inputs)
    x = layers.BatchNormalization(name="outer_bn")(x)
    x = layers.Dropout(0.5, name="drop")(x)
    x = inner(x)
    frozen = layers.BatchNormalization(name="frozen_bn")
    outputs = frozen(x)
    frozen.trainable = False
    return keras.Model(inputs, outputs)


def _batches(n=3, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.normal(3.0, 2.0, (16, 8, 8, 3)).astype(np.float32) for _ in range(n)]


def test_recalibration_moves_the_statistics_to_the_datas_and_leaves_weights_untouched():
    model = _nested_model()
    names = [layer.name for layer in bn.batchnorm_layers(model)]
    assert names == ["outer_bn", "inner_bn", "frozen_bn"]  # nested layers are found
    weights = [w.numpy().copy() for w in model.trainable_weights]
    frozen = [w.numpy().copy() for w in model.get_layer("frozen_bn").weights]
    batches = _batches()
    conv = keras.Model(model.input, model.get_layer("outer_conv").output)
    # The exact average over the 3 batches of each batch's mean and (biased) variance of outer_bn's input.
    per_batch = [conv(x).numpy().reshape(-1, 4) for x in batches]
    mean = np.mean([b.mean(0) for b in per_batch], axis=0)
    variance = np.mean([b.var(0) for b in per_batch], axis=0)
    outer = model.get_layer("outer_bn")
    before = np.abs(outer.moving_mean.numpy() - mean).max()
    assert before > 0.05  # initial statistics (0, 1) are far from the data's

    used = bn.recalibrate_batchnorm(model, [(x, None) for x in batches], steps=10)

    assert used == 3
    np.testing.assert_allclose(outer.moving_mean.numpy(), mean, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(outer.moving_variance.numpy(), variance, rtol=1e-4, atol=1e-5)
    inner = model.get_layer("inner").get_layer("inner_bn")
    assert not np.allclose(inner.moving_variance.numpy(), 1.0)  # the nested layer moved too
    for now, then in zip(model.trainable_weights, weights):
        np.testing.assert_array_equal(now.numpy(), then)
    for now, then in zip(model.get_layer("frozen_bn").weights, frozen):  # frozen: untouched
        np.testing.assert_array_equal(now.numpy(), then)
    assert model.get_layer("drop").rate == 0.5 and outer.momentum == 0.99  # overrides are put back


def test_recalibration_of_some_layers_leaves_the_others_and_zero_steps_change_nothing():
    model = _nested_model()
    outer, inner = model.get_layer("outer_bn"), model.get_layer("inner").get_layer("inner_bn")
    assert bn.recalibrate_batchnorm(model, _batches(), steps=0) == 0
    assert np.allclose(outer.moving_mean.numpy(), 0.0)
    bn.recalibrate_batchnorm(model, _batches(), steps=2, layers=[inner])
    assert np.allclose(outer.moving_mean.numpy(), 0.0) and np.allclose(outer.moving_variance.numpy(), 1.0)
    assert not np.allclose(inner.moving_variance.numpy(), 1.0)
    with pytest.raises(ValueError, match="steps"):
        bn.recalibrate_batchnorm(model, _batches(), steps=-1)


def test_batch_statistics_normalize_each_batch_without_updating_anything():
    model = _nested_model()
    x = _batches(1)[0]
    stats = [w.numpy().copy() for w in model.non_trainable_weights]
    with bn.batch_statistics(model):
        batch_mode = model(x, training=True).numpy()
        assert model.get_layer("drop").rate == 0.0
    for now, then in zip(model.non_trainable_weights, stats):
        np.testing.assert_array_equal(now.numpy(), then)
    inference = model(x, training=False).numpy()
    assert np.abs(batch_mode - inference).max() > 0.1
    assert model.get_layer("drop").rate == 0.5


def test_statistics_gap_sees_untrained_statistics_and_puts_them_back():
    model = _nested_model()
    rows = bn.statistics_gap(model, _batches(), steps=3)
    assert [r["layer"] for r in rows] == ["outer_bn", "inner_bn"]  # the frozen one is skipped
    assert rows[0]["remaining"] == pytest.approx(1.0)  # never trained: still the initial (0, 1)
    assert np.allclose(model.get_layer("outer_bn").moving_mean.numpy(), 0.0)
    bn.recalibrate_batchnorm(model, _batches(), steps=3)
    assert bn.summarize_gap(bn.statistics_gap(model, _batches(), steps=3))["remaining_median"] < 1e-3


def test_the_mobilenet_models_take_the_short_schedule_momentum_and_keep_keras_value_available():
    segmenter = build_segmenter(32, None, num_classes=3, backbone="mobilenetv2")
    momenta = {layer.momentum for layer in bn.batchnorm_layers(segmenter)}
    assert momenta == {MOBILENET_BN_MOMENTUM} and len(bn.batchnorm_layers(segmenter)) > 50
    classifier = build_classifier(32, None, num_classes=3, backbone="mobilenetv2",
                                  backbone_options={"bn_momentum": KERAS_MOBILENET_BN_MOMENTUM})
    assert {layer.momentum for layer in bn.batchnorm_layers(classifier)} == {KERAS_MOBILENET_BN_MOMENTUM}
    with pytest.raises(ValueError, match=r"momentum.*\[0, 1\)"):
        build_segmenter(32, None, num_classes=3, backbone="mobilenetv2", backbone_options={"bn_momentum": 1.0})
    with pytest.raises(ValueError, match="not options of the U-Net"):
        build_segmenter(32, 4, num_classes=3, backbone_options={"bn_momentum": 0.9})
    config = FinetuneConfig(bn_momentum=0.9)
    assert backbone_options(config, "mobilenetv2") == {"bn_momentum": 0.9}
    with pytest.raises(ValueError, match="--bn-momentum is an option of the MobileNetV2"):
        backbone_options(config, "unet")
    assert backbone_options(FinetuneConfig(), "mobilenetv2") == {}


def _seg_data(n=16, size=32, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (n, size, size, 1)).astype(np.float32)
    y = rng.integers(0, classes, (n, size, size)).astype(np.int32)
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(8)


@pytest.mark.parametrize("unfrozen_bn", ["train", "inference"])
def test_phase_two_batchnorm_trains_or_keeps_the_colorizers_statistics(unfrozen_bn):
    from cgan_colorization.networks.models import build_generator

    generator = build_generator(32, 4, seed=1)
    bn.recalibrate_batchnorm(generator, _seg_data(seed=2), steps=2)  # the "colorizer's" statistics
    segmenter = build_segmenter(32, 4, num_classes=3, seed=0)
    transferred = transfer_weights(generator, segmenter).copied
    start = {name: [w.copy() for w in segmenter.get_layer(name).get_weights()] for name in ("enc2_bn", "enc2_conv")}
    two_phase_finetune(segmenter, _seg_data(), _seg_data(seed=1), [Phase(1, 1e-3, True), Phase(1, 1e-3, False)],
                       loss="sparse_categorical_crossentropy", metrics_factory=lambda: [], transferred=transferred,
                       verbose=0, unfrozen_bn=unfrozen_bn)
    kept = all(np.array_equal(a, b) for a, b in zip(segmenter.get_layer("enc2_bn").get_weights(), start["enc2_bn"]))
    assert kept == (unfrozen_bn == "inference")
    assert not np.array_equal(segmenter.get_layer("enc2_conv").get_weights()[0], start["enc2_conv"][0])
    assert all(layer.trainable for layer in bn.batchnorm_layers(segmenter))  # left trainable afterwards
    with pytest.raises(ValueError, match="unfrozen_bn"):
        two_phase_finetune(segmenter, _seg_data(), None, [Phase(1, 1e-3, False)], loss="mse",
                           metrics_factory=lambda: [], unfrozen_bn="frozen")


def _quadrant_data(n, size=32, seed=0):
    """Y images with a bright square in the top-left and/or the bottom-right quadrant (each present
    with probability 1/2); the two labels say which. Chance per-label accuracy: 1/2."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.0, 0.3, (n, size, size, 1)).astype(np.float32)
    y = (rng.random((n, 2)) < 0.5).astype(np.float32)
    half, side = size // 2, size // 4
    for i in range(n):
        for k, (r0, c0) in enumerate(((0, 0), (half, half))):
            if y[i, k]:
                r, c = r0 + rng.integers(0, half - side + 1), c0 + rng.integers(0, half - side + 1)
                x[i, r:r + side, c:c + side] = rng.uniform(0.7, 1.0)
    return x, y


@pytest.mark.parametrize("momentum, recalibrate", [(MOBILENET_BN_MOMENTUM, 0), (KERAS_MOBILENET_BN_MOMENTUM, 20)])
@pytest.mark.slow
def test_a_short_mobilenet_fit_from_scratch_beats_chance_in_inference_mode(momentum, recalibrate):
    """With Keras' momentum alone (0.999, no recalibration) this model stays at chance in inference
    mode after the same steps; the short-schedule momentum, or recalibration, fixes it."""
    keras.utils.set_random_seed(0)
    x, y = _quadrant_data(512)
    x_test, y_test = _quadrant_data(128, seed=1)
    train = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(512, seed=0).batch(16)
    model = build_classifier(32, None, num_classes=2, backbone="mobilenetv2", seed=0,
                             backbone_options={"bn_momentum": momentum})
    two_phase_finetune(model, train, None, [Phase(5, 1e-3, frozen=False)], loss="binary_crossentropy",
                       metrics_factory=lambda: [], verbose=0, recalibrate_batches=recalibrate)
    scores = model(x_test, training=False).numpy()
    accuracy = ((scores >= 0.5) == (y_test == 1)).mean()
    assert accuracy > 0.8, accuracy
    assert scores.std(axis=0).min() > 0.1  # the predictions follow the image


@pytest.mark.slow
def test_diagnose_batchnorm_scores_one_run_four_ways_and_puts_the_statistics_back(tmp_path):
    out = tmp_path / "diag"
    result = run_script("diagnose_batchnorm.py", "--task", "segmentation", "--init", "random", "--backbone", "unet",
                        "--image-size", "32", "--base-filters", "4", "--baseline-epochs", "1", "--train-size", "16",
                        "--val-size", "8", "--test-size", "8", "--batch-size", "8", "--statistics-batches", "2",
                        "--out", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.load(open(out / "unet-random-seed0" / "metrics.json"))  # named so momenta never share a folder
    inspection = metrics["inspection"]
    steps = inspection["optimizer_steps_last_phase"]
    assert steps > 0 and inspection["momenta"] == [0.99]  # the U-Net's BatchNorm has Keras' default
    assert inspection["initial_share_left"]["0.99"] == pytest.approx(0.99 ** steps)
    encoder, decoder, every = (inspection[f"recalibrated_{part}"] for part in ("encoder", "decoder", "all"))
    assert encoder["layers"] + decoder["layers"] == every["layers"] > 0 and every["batches"] == 2
    # The statistics were put back after the re-estimates: the reported test score is inference mode's.
    assert metrics["test"]["mIoU"] == pytest.approx(inspection["inference"]["mIoU"])
    assert inspection["inference_spread"]["images"] == 8
    # Normalizing with each batch's own statistics, not the stored ones, changes the predictions.
    assert inspection["batch_statistics"]["mIoU"] != inspection["inference"]["mIoU"]
