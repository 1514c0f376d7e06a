import keras
import numpy as np
import pytest
import tensorflow as tf

from cgan_colorization.networks import losses
from cgan_colorization.networks.models import build_discriminator, build_generator
from cgan_colorization.pretexts.gan import ColorizationGAN


def _gan(seed=0, l1_weight=100.0, lr=2e-4):
    keras.utils.set_random_seed(seed)
    gan = ColorizationGAN(build_generator(32, base_filters=8), build_discriminator(32, base_filters=8))
    gan.compile(keras.optimizers.Adam(lr, beta_1=0.5), keras.optimizers.Adam(lr, beta_1=0.5),
                l1_weight=l1_weight)
    gan.build()
    return gan


def _batch(seed=0):
    rng = np.random.default_rng(seed)
    gray = rng.uniform(-1, 1, (8, 32, 32, 1)).astype(np.float32)
    ab = np.tanh(np.concatenate([gray * 0.5, -gray * 0.3], -1)).astype(np.float32)  # learnable map
    return gray, ab


def test_losses_match_their_definitions():
    real = tf.constant(np.random.default_rng(0).normal(size=(4, 6, 6, 1)), tf.float32)
    fake = tf.constant(np.random.default_rng(1).normal(size=(4, 6, 6, 1)), tf.float32)
    sig = tf.sigmoid
    expected_g = -tf.reduce_mean(tf.math.log(sig(fake)))
    assert float(losses.generator_adversarial_loss(fake)) == pytest.approx(float(expected_g), rel=1e-5)
    d_real, d_fake = losses.discriminator_losses(real, fake)
    assert float(d_real) == pytest.approx(float(-tf.reduce_mean(tf.math.log(sig(real)))), rel=1e-5)
    assert float(d_fake) == pytest.approx(float(-tf.reduce_mean(tf.math.log(1 - sig(fake)))), rel=1e-5)
    a, b = tf.zeros((2, 4, 4, 2)), tf.fill((2, 4, 4, 2), 0.25)
    assert float(losses.l1_loss(a, b)) == pytest.approx(0.25)
    # Averaged over the global batch: half of the examples on this replica, so half the mean.
    assert float(losses.l1_loss(a, b, global_batch_size=4)) == pytest.approx(0.125)


def test_train_step_updates_both_networks_and_lowers_l1():
    gan = _gan(lr=2e-3)  # a raised rate so that 30 steps show the fall
    gray, ab = _batch()
    g_before = [w.numpy().copy() for w in gan.generator.trainable_weights]
    d_before = [w.numpy().copy() for w in gan.discriminator.trainable_weights]
    history = gan.fit(gray, ab, batch_size=8, epochs=30, verbose=0).history
    assert any(not np.allclose(a, b.numpy()) for a, b in zip(g_before, gan.generator.trainable_weights))
    assert any(not np.allclose(a, b.numpy()) for a, b in zip(d_before, gan.discriminator.trainable_weights))
    assert set(history) >= {"g_gan", "g_l1", "d_real", "d_fake", "d_loss"}
    assert np.mean(history["g_l1"][-3:]) < 0.7 * history["g_l1"][0]
    assert int(gan.g_optimizer.iterations) == int(gan.d_optimizer.iterations) == 30


def test_g_loss_is_adversarial_plus_weighted_l1():
    gan = _gan(l1_weight=7.0)
    gray, ab = _batch()
    values, _ = gan.compute_losses(tf.constant(gray), tf.constant(ab), training=False)
    assert float(values["g_loss"]) == pytest.approx(float(values["g_gan"] + 7.0 * values["g_l1"]), rel=1e-5)
    assert float(values["d_loss"]) == pytest.approx(0.5 * float(values["d_real"] + values["d_fake"]), rel=1e-5)


def test_same_seed_same_losses():
    gray, ab = _batch()
    runs = [_gan(seed=3).fit(gray, ab, batch_size=4, epochs=2, shuffle=False, verbose=0).history
            for _ in range(2)]
    for key in ("g_l1", "d_loss"):
        np.testing.assert_allclose(runs[0][key], runs[1][key], rtol=1e-5)


def test_rejects_negative_l1_weight():
    with pytest.raises(ValueError, match="l1_weight=-1"):
        _gan(l1_weight=-1)
