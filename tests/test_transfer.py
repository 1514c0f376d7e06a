import keras
import numpy as np
import pytest
import tensorflow as tf

from cgan_colorization.networks.models import build_generator
from transfer.finetune import Phase, two_phase_finetune
from transfer.models import build_classifier, build_segmenter, transfer_weights


def _trained_looking_generator(size=32, width=4):
    """A generator whose weights (BN statistics included) differ from any fresh initialisation."""
    generator = build_generator(size, width, seed=1)
    rng = np.random.default_rng(0)
    for weight in generator.weights:
        weight.assign(rng.normal(0.5, 0.1, weight.shape).astype(np.float32) if "variance" not in weight.path
                      else rng.uniform(0.5, 2.0, weight.shape).astype(np.float32))
    return generator


@pytest.mark.parametrize("builder,new_layers", [
    (lambda: build_classifier(32, 4, num_classes=5, dense_units=16), {"cls_dense1", "cls_dense2", "cls_output"}),
    (lambda: build_segmenter(32, 4, num_classes=7), {"seg_output_deconv"}),
])
def test_transferred_weights_equal_the_colorizers_layer_by_layer(builder, new_layers):
    generator, model = _trained_looking_generator(), builder()
    before = {layer.name: [w.copy() for w in layer.get_weights()] for layer in model.layers}
    report = transfer_weights(generator, model)
    assert set(report.kept) == new_layers
    assert "enc1_conv" in report.copied and "bottleneck_conv" in report.copied and "enc2_bn" in report.copied
    for name in report.copied:
        for ours, theirs in zip(model.get_layer(name).get_weights(), generator.get_layer(name).get_weights()):
            np.testing.assert_array_equal(ours, theirs)
    for name in report.kept:
        for now, then in zip(model.get_layer(name).get_weights(), before[name]):
            np.testing.assert_array_equal(now, then)
    assert "output_deconv" in report.unused


def test_transfer_refuses_other_sizes_and_widths_quoting_both_shapes():
    with pytest.raises(ValueError, match=r"\(64, 64, 1\).*\(32, 32, 1\)"):
        transfer_weights(build_generator(64, 4), build_classifier(32, 4, 5, 16))
    with pytest.raises(ValueError, match=r"enc1_conv.*\(4, 4, 1, 8\).*\(4, 4, 1, 4\)"):
        transfer_weights(build_generator(32, 8), build_segmenter(32, 4, 3))


def _data(n=16, size=32, classes=5, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (n, size, size, 1)).astype(np.float32)
    y = (rng.random((n, classes)) < 0.3).astype(np.float32)
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(8)


def test_two_phase_finetune_freezes_then_unfreezes(tmp_path):
    generator, model = _trained_looking_generator(), build_classifier(32, 4, num_classes=5, dense_units=16)
    transferred = transfer_weights(generator, model).copied
    snapshot = lambda: {n: [w.copy() for w in model.get_layer(n).get_weights()] for n in transferred}  # noqa: E731
    start = snapshot()
    head_start = model.get_layer("cls_output").get_weights()[0].copy()
    after_phase1 = {}

    class Probe(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:  # the last epoch of phase 1
                after_phase1.update(snapshot())
                after_phase1["head"] = model.get_layer("cls_output").get_weights()[0].copy()

    history = two_phase_finetune(
        model, _data(), _data(seed=1), [Phase(2, 1e-3, frozen=True), Phase(1, 1e-3, frozen=False)],
        loss="binary_crossentropy", metrics_factory=lambda: [], transferred=transferred,
        log_dir=str(tmp_path), verbose=0, extra_callbacks=[Probe()], unfrozen_bn="train")
    for name in transferred:  # weights and BatchNorm moving statistics untouched while frozen
        for now, then in zip(after_phase1[name], start[name]):
            np.testing.assert_array_equal(now, then)
    assert not np.allclose(after_phase1["head"], head_start)
    changed = [name for name in transferred
               if any(not np.array_equal(a, b) for a, b in zip(model.get_layer(name).get_weights(), start[name]))]
    assert "enc1_conv" in changed and "enc2_bn" in changed
    assert all(layer.trainable for layer in model.layers)
    assert len(history["loss"]) == 3 and history["frozen"] == [1.0, 1.0, 0.0]
    log = (tmp_path / "log.csv").read_text().splitlines()
    assert len(log) == 4 and log[0].startswith("epoch")


def test_transfer_is_strict_about_layers_that_are_neither_copied_nor_declared_heads():
    segmenter = build_segmenter(32, 4, num_classes=3, seed=0)
    assert segmenter.head_layers == ("seg_output_deconv",)
    assert build_classifier(32, 4, num_classes=3, dense_units=8).head_layers == ("cls_dense1", "cls_dense2",
                                                                                    "cls_output")
    encoder_only = build_classifier(32, 4, num_classes=3, dense_units=8)  # no decoder to give the segmenter
    with pytest.raises(ValueError, match=r"\['dec1_deconv', 'dec1_bn'.*neither in the colorizer nor declared heads"
                                         r".*without a place: \['cls_dense1', 'cls_dense2', 'cls_output'\]"):
        transfer_weights(encoder_only, segmenter)


def test_a_colorizer_without_skips_transfers_only_its_encoder(tmp_path):
    import dataclasses
    import json

    from cgan_colorization.engine.config import TrainConfig
    from transfer.config import FinetuneConfig
    from transfer.experiment import run_finetune

    keras.utils.set_random_seed(0)
    run = tmp_path / "colorizer"
    run.mkdir()
    config = dataclasses.replace(TrainConfig(), image_size=32, base_filters=4, no_skips=True)
    (run / "config.json").write_text(json.dumps(dataclasses.asdict(config)))
    build_generator(32, 4, no_skips=True).save_weights(run / "generator.weights.h5")
    result = run_finetune(FinetuneConfig(task="segmentation", colorizer=str(run), out=str(tmp_path / "seg"),
                                         train_size=8, val_size=8, test_size=8, batch_size=8, frozen_epochs=1,
                                         unfrozen_epochs=0), verbose=0, log=lambda *_: None)
    assert result["pretext"] == "gan-noskip"
    copied, kept = result["transfer"]["copied"], result["transfer"]["kept"]
    assert "bottleneck_conv" in copied and not any(name.startswith("dec") for name in copied)
    assert {"dec1_deconv", "dec1_bn", "seg_output_deconv"} <= set(kept)


def test_label_fractions_nest_and_keep_the_test_set():
    from data import labelled
    from tests.conftest import realdata
    from transfer.config import FinetuneConfig
    from transfer.experiment import label_subset

    camvid = realdata("camvid")
    spec = f"seg-folder:{camvid}/train,{camvid}/trainannot;{camvid}/val,{camvid}/valannot"
    source = labelled.parse_labelled(spec, "segmentation", seed=3, void_index=11, verbose=False)
    chosen = {}
    for fraction in (0.1, 0.25, 1.0):
        used, full = label_subset(source, FinetuneConfig(task="segmentation", label_fraction=fraction))
        chosen[fraction] = source.items("train", used)
        assert full == source.split_size("train") and used == -(-int(fraction * 1000) * full // 1000)
    assert set(chosen[0.1]) < set(chosen[0.25]) < set(chosen[1.0])
    full = source.split_size("train")
    assert len(chosen[1.0]) == full > 300 and len(chosen[0.1]) == -(-full // 10)
