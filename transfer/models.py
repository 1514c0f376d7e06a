"""Downstream models that reuse the colorizer: a multi-label classifier on the U-Net encoder and a
segmenter on the whole U-Net, plus the explicit, by-name weight transfer between them.

The encoder (and decoder) layers are built by the same functions as the generator's, so they carry
the same names (`enc2_conv`, `bottleneck_conv`, `dec3_bn`, ...) and weights move by name.
"""

import dataclasses

import keras
from keras import layers

from cgan_colorization.models import gaussian_init, unet_decoder, unet_encoder


def build_classifier(image_size=256, base_filters=64, num_classes=20, dense_units=4096, dropout=0.5,
                     seed=None, synchronized_bn=False):
    """Encoder up to the bottleneck -> Flatten -> Dense(4096, ReLU) -> Dropout -> Dense(4096, ReLU)
    -> Dropout -> Dense(num_classes, sigmoid): the paper's multi-label classifier (its Figure 5).
    Every layer starts from N(0, 0.02), the paper's from-scratch baseline."""
    if num_classes < 1 or dense_units < 1:
        raise ValueError(f"num_classes and dense_units must be >= 1, received {num_classes!r} and {dense_units!r}.")
    inputs = keras.Input((image_size, image_size, 1), name="L")
    x = unet_encoder(inputs, base_filters, seed, synchronized_bn)[-1]
    x = layers.Flatten(name="cls_flatten")(x)
    for i in (1, 2):
        x = layers.Dense(dense_units, activation="relu", kernel_initializer=gaussian_init(seed),
                         name=f"cls_dense{i}")(x)
        x = layers.Dropout(dropout, seed=seed, name=f"cls_dropout{i}")(x)
    outputs = layers.Dense(num_classes, activation="sigmoid", kernel_initializer=gaussian_init(seed),
                           name="cls_output", dtype="float32")(x)
    return keras.Model(inputs, outputs, name="classifier")


def build_segmenter(image_size=256, base_filters=64, num_classes=21, seed=None, synchronized_bn=False):
    """The whole U-Net (encoder, bottleneck, decoder, skips) with a new output layer: a 4x4/2
    transposed convolution to `num_classes` channels and a softmax (the paper's Figure 6)."""
    if num_classes < 2:
        raise ValueError(f"a segmenter needs num_classes >= 2, received num_classes={num_classes!r}.")
    inputs = keras.Input((image_size, image_size, 1), name="L")
    skips = unet_encoder(inputs, base_filters, seed, synchronized_bn)
    features = unet_decoder(skips, base_filters, seed, synchronized_bn=synchronized_bn)
    x = layers.Conv2DTranspose(num_classes, 4, strides=2, padding="same",
                               kernel_initializer=gaussian_init(seed), name="seg_output_deconv")(features)
    outputs = layers.Softmax(name="seg_softmax", dtype="float32")(x)
    return keras.Model(inputs, outputs, name="segmenter")


@dataclasses.dataclass
class TransferReport:
    """What `transfer_weights` did, layer by layer."""

    copied: list  # layers whose weights now equal the colorizer's
    kept: list  # layers with weights that kept their initial values (the new heads)
    unused: list  # colorizer layers with weights that the target has no place for

    def summary(self):
        return (f"transferred {len(self.copied)} layers from the colorizer; "
                f"{len(self.kept)} kept their initial weights ({', '.join(self.kept) or 'none'}); "
                f"{len(self.unused)} colorizer layers unused ({', '.join(self.unused) or 'none'}).")


def transfer_weights(colorizer, model, exclude=()):
    """Copies the colorizer generator's weights into `model` wherever a layer has the same name.

    Raises ValueError, quoting both shapes, when the two models take different input sizes (the
    U-Net's depth follows the size) or a same-named weight has another shape (another width), and
    when the models share no layer at all.
    """
    if tuple(colorizer.input_shape[1:]) != tuple(model.input_shape[1:]):
        raise ValueError(
            f"the colorizer takes inputs of shape {tuple(colorizer.input_shape[1:])} but the {model.name} "
            f"takes {tuple(model.input_shape[1:])}: build it at the colorizer's image size."
        )
    source = {layer.name: layer for layer in colorizer.layers if layer.weights}
    copied, kept = [], []
    for layer in model.layers:
        if not layer.weights:
            continue
        if layer.name not in source or layer.name in exclude:
            kept.append(layer.name)
            continue
        values = source[layer.name].get_weights()
        for weight, value in zip(layer.weights, values):
            if tuple(weight.shape) != value.shape:
                raise ValueError(
                    f"layer {layer.name!r}: the colorizer's weight has shape {value.shape} but the "
                    f"{model.name}'s has {tuple(weight.shape)}: was the colorizer built with other "
                    f"--base-filters?"
                )
        layer.set_weights(values)
        copied.append(layer.name)
    if not copied:
        raise ValueError(f"the colorizer and the {model.name} share no layer names: nothing to transfer.")
    unused = [name for name in source if name not in copied]
    return TransferReport(copied, kept, unused)
