"""The supervised ceiling: the U-Net's encoder trained with the labels of a classification set on
the same photos the colorizers see (`--objective supervised --dataset tinyimagenet:PATH`).

A transfer study needs a maximal-supervision reference beside the random floor (Atanov et al. 2022,
"Simple Control Baselines for Evaluating Transfer Learning"): how far the features of an encoder
that was told the classes get on the same probes and downstream tasks. Its network is the U-Net
encoder, with the encoder's layer names, plus a named head (Flatten -> Dropout -> Dense, softmax for a
single-label set such as Tiny ImageNet, sigmoid for a multi-label one), so probes and both
downstream models take its encoder by name exactly as they take a colorizer's; it has no decoder,
so only the encoder transfers (`registry.Pretext.trains_decoder`), and it colorizes nothing.
"""

import functools
import json
import os

import keras
import tensorflow as tf
from keras import layers

from cgan_colorization.networks import losses
from cgan_colorization.networks.backbones import gaussian_init, unet_backbone
from cgan_colorization.pretexts.pretext import Colorizer, PretextModel, compiled, load_network

LABELS_FILE = "labels.json"


def build_network(image_size, base_filters, num_classes, single_label=True, seed=None, synchronized_bn=False):
    """The U-Net encoder (its own layer names) with the ceiling's classification head."""
    features = unet_backbone(image_size, base_filters, seed=seed, synchronized_bn=synchronized_bn, decoder=False)
    x = layers.Flatten(name="sup_flatten")(features.deepest)
    x = layers.Dropout(0.5, seed=seed, name="sup_dropout")(x)
    outputs = layers.Dense(num_classes, activation="softmax" if single_label else "sigmoid",
                           kernel_initializer=gaussian_init(seed), name="sup_output", dtype="float32")(x)
    return keras.Model(features.inputs, outputs, name="supervised_encoder")


class SupervisedEncoder(PretextModel):
    """The encoder and its head, trained with cross-entropy on the labels (`ce`; `acc`: top-1 for a
    single-label set, per-label accuracy for a multi-label one)."""

    loss_names = ("ce", "acc")
    optimized = "ce"
    monitor = "val_ce"

    def __init__(self, net, single_label=True, **kwargs):
        super().__init__(net, **kwargs)
        self.single_label = single_label

    def predict_ab(self, gray):
        raise ValueError("the supervised ceiling predicts classes, not colour: it has no colorization to show.")

    def compute_losses(self, gray, labels, training):
        scores = self.net(gray, training=training)
        labels = keras.ops.cast(labels, scores.dtype)
        if self.single_label:
            per_example = keras.losses.categorical_crossentropy(labels, scores)
            hits = keras.ops.cast(keras.ops.argmax(scores, -1) == keras.ops.argmax(labels, -1), "float32")
        else:
            per_example = keras.losses.binary_crossentropy(labels, scores)
            hits = keras.ops.mean(keras.ops.cast((scores >= 0.5) == (labels >= 0.5), "float32"), axis=-1)
        batch = losses.global_batch_size(gray)
        return {"ce": losses.global_mean(per_example, batch), "acc": losses.global_mean(hits, batch)}, scores


def labelled_source(config):
    """The labelled data of the run's `--dataset` (classification task): a single-label set such as
    `tinyimagenet:PATH`, or a multi-label one (`synthetic`, `voc:PATH`, ...). Parsed once per run:
    `datasets` and `build` both ask for it (Tiny ImageNet lists 55k files)."""
    return _parse(config.dataset, config.seed, config.num_classes)


@functools.lru_cache(maxsize=4)
def _parse(dataset, seed, synthetic_classes):
    from data import labelled  # TensorFlow-heavy: imported where needed

    return labelled.parse_labelled(dataset, "classification", seed=seed, synthetic_classes=synthetic_classes,
                                   verbose=False)


def datasets(config, skip_batches=0):
    """(training, validation) batches of (L, labels): the training split repeated without end
    (resumed `skip_batches` in), at most `--max-photos-per-class` a class when set (the first ones of
    the split's class-balanced order), and the first `--val-size` validation images."""
    from data import labelled

    source = labelled_source(config)
    per_class = getattr(config, "max_photos_per_class", 0)
    size = per_class * source.num_classes if per_class else None
    common = dict(image_size=config.image_size, batch_size=config.batch_size, seed=config.seed)
    train = labelled.classification_dataset(source, "train", training=True, size=size, **common)
    val = labelled.classification_dataset(source, "val", training=False, size=config.val_size, **common)
    train = train.repeat().skip(skip_batches)
    if config.flip:  # each image of batch n flipped or not by a draw keyed by (seed, n), also when resumed
        def flip(index, batch):
            gray, labels = batch
            draw = tf.random.stateless_uniform([tf.shape(gray)[0]], seed=tf.stack([tf.constant(config.seed, tf.int64), index]))
            return tf.where(draw[:, None, None, None] < 0.5, tf.reverse(gray, axis=[2]), gray), labels

        train = train.enumerate(start=skip_batches).map(flip, num_parallel_calls=tf.data.AUTOTUNE)
    return train, val


def build(config, strategy=None, train_ds=None, run_dir=None):
    """The encoder and head for the run's labels, compiled and built; writes RUN/labels.json (the
    classes, and whether one class per image), which `load` reads back."""
    source = labelled_source(config)
    single_label = bool(getattr(source, "single_label", False))
    if run_dir is not None:
        with open(os.path.join(run_dir, LABELS_FILE), "w") as f:
            json.dump({"num_classes": source.num_classes, "single_label": single_label,
                       "class_names": list(source.class_names), "dataset": config.dataset}, f, indent=2)
    return compiled(config, strategy, lambda sync: SupervisedEncoder(
        build_network(config.image_size, config.base_filters, source.num_classes, single_label, seed=config.seed,
                      synchronized_bn=sync), single_label=single_label))


def load(entry, config, run_dir, weights, inference_dropout=False):
    """The trained encoder and head; its `predict_ab` refuses (it colorizes nothing)."""
    del inference_dropout
    path = os.path.join(run_dir, LABELS_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} does not exist: is {run_dir} a run of --objective supervised?")
    with open(path) as f:
        labels = json.load(f)
    network = build_network(config.image_size, config.base_filters, labels["num_classes"], labels["single_label"])
    load_network(network, weights, config)

    def refuse(gray):
        raise ValueError(f"{run_dir} is a supervised ceiling: it predicts classes, not colour.")

    return Colorizer(network, refuse, config, config.image_size, entry.color_space, entry, entry.bottleneck)
