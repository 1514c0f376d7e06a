import keras
import numpy as np
import pytest
import tensorflow as tf

from cgan_colorization.pretexts import multitask as mt
from data.color import rgb_to_yuv_target, yuv_target_to_rgb
from cgan_colorization.networks.models import build_generator
from data.pipeline import to_lab_pair
from data.labelled.masks import VOID
from data.synthetic import synthetic_dataset
from transfer.models import build_classifier, build_segmenter, transfer_weights

SIZE, WIDTH, K = 32, 8, 4  # K object classes: masks have K + 1 classes, 0 = background


def _scenes(size, n, seed=0):
    ds = synthetic_dataset(seed=seed, image_size=size, num_classes=K, count=n, render_batch=n)
    return next(iter(ds.batch(n)))


@pytest.fixture(scope="module")
def lab_batch():
    scene = _scenes(SIZE, 8)
    L, ab = to_lab_pair(scene["image"])
    return L, {"ab": ab, "mask": scene["mask"]}


def _fit_steps(model, x, y, steps):
    """`steps` updates on one fixed batch; the history holds each step's (pre-update) losses."""
    ds = tf.data.Dataset.from_tensors((x, y)).repeat()
    return model.fit(ds, steps_per_epoch=1, epochs=steps, verbose=0, shuffle=False).history


def _compiled(network, lr=2e-3, **kwargs):
    model = mt.MultitaskColorizer(network)
    model.compile(keras.optimizers.Adam(lr, beta_1=0.5), **kwargs)
    return model


# ------------------------------------------------------------------------------ pix2pix U-Net


def test_multitask_unet_names_and_outputs():
    net = mt.build_multitask_unet(SIZE, WIDTH, K + 1, seed=0)
    generator = build_generator(SIZE, WIDTH, seed=0)
    trunk = {layer.name for layer in generator.layers}
    assert trunk <= {layer.name for layer in net.layers}  # the whole generator, heads included
    assert {"mt_seg_deconv", "mt_seg_softmax"} <= {layer.name for layer in net.layers}
    out = net(tf.zeros([2, SIZE, SIZE, 1]))
    assert out["ab"].shape == (2, SIZE, SIZE, 2) and out["seg"].shape == (2, SIZE, SIZE, K + 1)
    np.testing.assert_allclose(tf.reduce_sum(out["seg"], -1).numpy(), 1.0, atol=1e-5)
    with pytest.raises(ValueError, match="num_seg_classes=1"):
        mt.build_multitask_unet(SIZE, WIDTH, 1)


def test_both_heads_learn_on_a_fixed_batch(lab_batch):
    keras.utils.set_random_seed(0)
    model = _compiled(mt.build_multitask_unet(SIZE, WIDTH, K + 1, seed=0))
    history = _fit_steps(model, *lab_batch, steps=30)
    assert set(history) == {"loss", "g_l1", "seg_ce", "seg_miou"}
    for name in ("g_l1", "seg_ce", "loss"):
        first, last = history[name][0], np.mean(history[name][-3:])
        assert last < 0.9 * first, f"{name}: {first:.4f} -> {last:.4f}"
    assert history["seg_miou"][-1] > history["seg_miou"][0]
    assert model.monitor == "val_g_l1"
    logs = model.evaluate(*lab_batch, verbose=0, return_dict=True)
    assert set(logs) == {"loss", "g_l1", "seg_ce", "seg_miou"}
    np.testing.assert_allclose(logs["loss"], logs["g_l1"] + logs["seg_ce"], rtol=1e-5)


def test_void_pixels_are_ignored(lab_batch):
    L, targets = lab_batch
    model = _compiled(mt.build_multitask_unet(SIZE, WIDTH, K + 1, seed=1), seg_weight=0.5)
    mask = targets["mask"].numpy().copy()
    mask[:, :, : SIZE // 2] = VOID
    values, outputs = model.compute_losses(L, {"ab": targets["ab"], "mask": mask})
    probs = outputs["seg"].numpy()
    valid = mask != VOID
    picked = np.take_along_axis(probs, np.where(valid, mask, 0)[..., None], axis=-1)[..., 0]
    np.testing.assert_allclose(values["seg_ce"], -np.log(picked[valid]).mean(), rtol=1e-5)
    np.testing.assert_allclose(values["loss"], values["g_l1"] + 0.5 * values["seg_ce"], rtol=1e-6)
    # Other labels at void pixels change nothing; an all-void batch has seg_ce 0 and trains.
    other = np.where(valid, mask, 255).astype(np.int32)
    again, _ = model.compute_losses(L, {"ab": targets["ab"], "mask": other})
    assert float(again["seg_ce"]) == float(values["seg_ce"])
    history = _fit_steps(model, L, {"ab": targets["ab"], "mask": np.full_like(mask, 255)}, steps=1)
    assert history["seg_ce"] == [0.0] and np.isfinite(history["loss"][0])


def test_generator_shares_the_trunk_saves_and_transfers(lab_batch, tmp_path):
    L, _ = lab_batch
    model = _compiled(mt.build_multitask_unet(SIZE, WIDTH, K + 1, seed=2))
    _fit_steps(model, *lab_batch, steps=2)  # weights (and BN statistics) away from their init
    generator = model.generator
    assert model.network is generator and generator.name == "generator"
    ab = generator(L, training=False)
    assert ab.shape == (8, SIZE, SIZE, 2)
    np.testing.assert_allclose(ab, model(L)["ab"], atol=1e-6)
    np.testing.assert_allclose(model.predict_ab(L), ab, atol=1e-6)
    assert len(model.weights) == len(model.multitask.weights)  # the generator adds no copy

    path = str(tmp_path / "generator.weights.h5")
    model.network.save_weights(path)
    plain = build_generator(SIZE, WIDTH, seed=9)
    plain.load_weights(path)
    np.testing.assert_allclose(plain(L, training=False), ab, atol=1e-5)

    # The whole wrapper (network and optimizer state) saves and loads, e.g. for BackupAndRestore.
    model.save_weights(str(tmp_path / "multitask.weights.h5"))
    restored = _compiled(mt.build_multitask_unet(SIZE, WIDTH, K + 1, seed=5))
    restored.load_weights(str(tmp_path / "multitask.weights.h5"))
    assert int(restored.optimizer.iterations.numpy()) == 2
    np.testing.assert_allclose(restored.generator(L, training=False), ab, atol=1e-6)

    for target, new in ((build_classifier(SIZE, WIDTH, num_classes=K, dense_units=16),
                         {"cls_dense1", "cls_dense2", "cls_output"}),
                        (build_segmenter(SIZE, WIDTH, num_classes=K + 1), {"seg_output_deconv"})):
        report = transfer_weights(model.generator, target)
        assert {"enc1_conv", "enc2_bn", "bottleneck_conv"} <= set(report.copied)
        assert set(report.kept) == new
        if target.name == "segmenter":
            assert {"dec1_deconv", "dec1_bn"} <= set(report.copied)
        for name in report.copied:
            for ours, theirs in zip(target.get_layer(name).get_weights(),
                                    model.multitask.get_layer(name).get_weights()):
                np.testing.assert_array_equal(ours, theirs)


def test_wrapper_checks_its_inputs(lab_batch):
    with pytest.raises(ValueError, match="dict of outputs"):
        mt.MultitaskColorizer(build_generator(SIZE, WIDTH))
    model = mt.MultitaskColorizer(mt.build_multitask_unet(SIZE, WIDTH, K + 1))
    with pytest.raises(ValueError, match="seg_weight=-1"):
        model.compile("adam", seg_weight=-1)
    with pytest.raises(ValueError, match="color_loss='l2'"):
        model.compile("adam", color_loss="l2")
    model.compile("adam")
    L, targets = lab_batch
    with pytest.raises(ValueError, match="'mask'"):
        model.compute_losses(L, {"ab": targets["ab"]})


# ------------------------------------------------------------------------------ YUV and MobileNetV2


def test_yuv_round_trip():
    rgb = tf.random.stateless_uniform([3, 8, 8, 3], seed=[1, 2])
    y, uv = rgb_to_yuv_target(rgb)
    assert y.shape == (3, 8, 8, 1) and uv.shape == (3, 8, 8, 2)
    assert 0.0 <= float(tf.reduce_min(y)) and float(tf.reduce_max(y)) <= 1.0
    assert float(tf.reduce_max(tf.abs(uv))) <= 0.62
    np.testing.assert_allclose(yuv_target_to_rgb(y, uv), rgb, atol=1e-5)
    with pytest.raises(ValueError, match="dtype"):
        rgb_to_yuv_target(tf.zeros([2, 2, 3], tf.uint8))


@pytest.fixture(scope="module")
def trained_mobilenet():
    """The seed's multitask model at 64 px (weights=None), and its first 6 steps' losses."""
    keras.utils.set_random_seed(0)
    scene = _scenes(64, 4)
    y, uv = rgb_to_yuv_target(scene["image"])
    net = mt.build_mobilenet_unet(64, weights=None, seg_classes=K + 1, seed=0)
    # Eager: tracing MobileNetV2's training step costs ~25 s on 2 CPU cores, 6 eager steps ~5 s
    # (the traced step is covered by the U-Net tests).
    model = _compiled(net, lr=1e-3, run_eagerly=True)
    history = _fit_steps(model, y, {"uv": uv, "mask": scene["mask"]}, steps=6)
    return model, history, y


@pytest.mark.slow
def test_mobilenet_unet_builds_and_its_colour_loss_falls(trained_mobilenet):
    model, history, y = trained_mobilenet
    net = model.multitask
    names = {layer.name for layer in net.layers}
    assert {"mnv2_grey_to_rgb", "mnv2_encoder", "mnv2_dec4_deconv", "mnv2_color_deconv",
            "mnv2_seg_softmax"} <= names
    out = net(y, training=False)
    assert out["uv"].shape == (4, 64, 64, 2) and out["seg"].shape == (4, 64, 64, K + 1)
    assert model.color_key == "uv" and model.monitor == "val_g_mse"
    assert np.mean(history["g_mse"][-2:]) < 0.7 * history["g_mse"][0], history["g_mse"]
    assert model.generator(y).shape == (4, 64, 64, 2)


def test_mobilenet_without_segmentation_and_full_yuv():
    net = mt.build_mobilenet_unet(32, num_outputs=3)
    assert set(net.output) == {"yuv"}
    model = _compiled(net)
    rgb = tf.random.stateless_uniform([2, 32, 32, 3], seed=[3, 4])
    y, uv = rgb_to_yuv_target(rgb)
    logs = model.evaluate(y, {"yuv": tf.concat([y, uv], -1)}, verbose=0, return_dict=True)
    assert set(logs) == {"loss", "g_mse"}


@pytest.mark.parametrize("kwargs,error,match", [
    ({"image_size": 48}, ValueError, "image_size=48"),
    ({"image_size": 16}, ValueError, "image_size=16"),
    ({"weights": "imagenet"}, ValueError, "not possible here"),
    ({"weights": "/nonexistent/mnv2.h5"}, FileNotFoundError, "does not exist"),
    ({"num_outputs": 1}, ValueError, "num_outputs=1"),
    ({"seg_classes": 1}, ValueError, "seg_classes=1"),
])
def test_mobilenet_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        mt.build_mobilenet_unet(**{"image_size": 32, **kwargs})


def test_mobilenet_local_weights_file_round_trips(tmp_path):
    base = keras.applications.MobileNetV2(input_shape=(64, 64, 3), include_top=False, weights=None)
    rng = np.random.default_rng(0)
    for weight in base.weights:  # unlike any fresh initialisation
        weight.assign(rng.uniform(0.5, 1.5, weight.shape).astype(np.float32))
    path = tmp_path / "mobilenet_v2_no_top.weights.h5"
    base.save_weights(str(path))
    for net in (mt.build_mobilenet_unet(64, weights=path),
                build_classifier(64, num_classes=3, backbone="mobilenetv2", backbone_weights=str(path))):
        encoder = net.get_layer("mnv2_encoder")
        for name in ("Conv1", "bn_Conv1", "block_6_expand", "block_16_project"):
            for ours, theirs in zip(encoder.get_layer(name).get_weights(),
                                    base.get_layer(name).get_weights()):
                np.testing.assert_array_equal(ours, theirs)


@pytest.mark.slow
def test_mobilenet_weights_transfer_into_its_classifier_and_segmenter(trained_mobilenet):
    model, _, y = trained_mobilenet
    source = model.multitask
    classifier = build_classifier(64, num_classes=K, backbone="mobilenetv2")
    segmenter = build_segmenter(64, num_classes=K + 1, backbone="mobilenetv2")
    report = transfer_weights(source, classifier)
    assert report.copied == ["mnv2_encoder"] and report.kept == ["mnv2_cls_output"]
    report = transfer_weights(model.generator, segmenter)
    decoder = {f"mnv2_dec{k}_{kind}" for k in range(1, 5) for kind in ("deconv", "bn")}
    assert set(report.copied) == {"mnv2_encoder"} | decoder
    assert report.kept == ["mnv2_segmenter_deconv"]
    for target in (classifier, segmenter):
        for name in set(report.copied) & {layer.name for layer in target.layers}:
            for ours, theirs in zip(target.get_layer(name).get_weights(),
                                    source.get_layer(name).get_weights()):
                np.testing.assert_array_equal(ours, theirs)
    assert classifier(y).shape == (4, K) and segmenter(y).shape == (4, 64, 64, K + 1)
