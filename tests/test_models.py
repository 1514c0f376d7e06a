import keras
import numpy as np
import pytest

from cgan_colorization.networks.backbones import num_levels
from cgan_colorization.networks.models import build_discriminator, build_generator


def test_paper_size_parameter_counts_match_pix2pix():
    generator = build_generator(256)
    discriminator = build_discriminator(256)
    assert generator.count_params() == pytest.approx(54.42e6, rel=1e-3)
    assert discriminator.count_params() == pytest.approx(2.77e6, rel=2e-3)
    assert discriminator.output_shape == (None, 30, 30, 1)
    assert generator.output_shape == (None, 256, 256, 2)


@pytest.mark.parametrize("size,levels", [(32, 5), (64, 6), (256, 8)])
def test_depth_follows_size_down_to_a_one_pixel_bottleneck(size, levels):
    generator = build_generator(size, base_filters=4)
    assert num_levels(size) == levels
    assert generator.get_layer("bottleneck_conv").output.shape[1:3] == (1, 1)
    assert generator.get_layer(f"enc{levels - 1}_conv").output.shape[1] == 2
    assert generator.get_layer(f"dec{levels - 1}_concat").output.shape[1] == size // 2


def test_layer_names_are_stable_and_explicit():
    names = [layer.name for layer in build_generator(32, base_filters=4).layers]
    assert names[:4] == ["L", "enc1_conv", "enc1_lrelu", "enc2_conv"]
    assert "enc1_bn" not in names and "bottleneck_bn" not in names  # pix2pix: no BN there
    assert {"bottleneck_relu", "dec1_dropout", "dec3_dropout", "output_tanh"} <= set(names)
    assert "dec4_dropout" not in names
    assert len(names) == len(set(names))
    assert not any(name.startswith(("conv2d", "batch_normalization", "dense")) for name in names)


def test_patchgan_receptive_field_is_70_pixels():
    # The input pixels that one central output patch depends on (non-zero gradient) span 70 x 70.
    import tensorflow as tf

    discriminator = build_discriminator(128, base_filters=4, seed=1)
    rng = np.random.default_rng(0)
    gray = tf.constant(rng.normal(size=(1, 128, 128, 1)), tf.float32)
    ab = tf.constant(rng.normal(size=(1, 128, 128, 2)), tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(gray)
        out = discriminator([gray, ab], training=False)
        centre = out[0, out.shape[1] // 2, out.shape[2] // 2, 0]
    grad = np.abs(tape.gradient(centre, gray).numpy()[0, ..., 0]) > 0
    rows, cols = np.nonzero(grad.any(axis=1))[0], np.nonzero(grad.any(axis=0))[0]
    assert rows.max() - rows.min() + 1 == 70
    assert cols.max() - cols.min() + 1 == 70


def test_generator_output_is_bounded_and_rejects_bad_sizes():
    generator = build_generator(32, base_filters=4)
    gray = np.random.default_rng(0).uniform(-1, 1, (2, 32, 32, 1)).astype(np.float32)
    out = generator(gray)
    last = keras.Model(generator.input, generator.get_layer("output_deconv").output)(gray)
    assert out.shape == (2, 32, 32, 2)
    np.testing.assert_allclose(out, np.tanh(last), atol=1e-6)  # tanh of the last deconvolution: within (-1, 1)
    with pytest.raises(ValueError, match="image_size=48"):
        build_generator(48)


def test_skip_gates_keep_every_weight_and_change_the_forward_pass_only_in_training():
    keras.utils.set_random_seed(0)
    plain = build_generator(32, 4, dropout_rate=0.0)
    gated = build_generator(32, 4, dropout_rate=0.0, skip_dropout=0.5)
    no_skips = build_generator(32, 4, dropout_rate=0.0, no_skips=True)
    weighted = lambda model: [(layer.name, [tuple(w.shape) for w in layer.weights])  # noqa: E731
                              for layer in model.layers if layer.weights]
    assert weighted(gated) == weighted(plain) == weighted(no_skips)
    assert {f"dec{k}_skipgate" for k in range(1, 5)} <= {layer.name for layer in gated.layers}
    gated.set_weights(plain.get_weights())
    no_skips.set_weights(plain.get_weights())
    x = np.random.default_rng(0).uniform(-1, 1, (16, 32, 32, 1)).astype("float32")
    np.testing.assert_allclose(gated(x, training=False), plain(x, training=False), atol=1e-6)
    per_example = np.abs(np.asarray(gated(x, training=True)) - np.asarray(plain(x, training=True))).max(axis=(1, 2, 3))
    assert (per_example > 1e-4).any()  # some examples lost skips in training...
    assert not np.allclose(no_skips(x, training=False), plain(x, training=False), atol=1e-4)  # ...none kept here
    with pytest.raises(ValueError, match="rate must lie in"):
        build_generator(32, 4, skip_dropout=1.0)
