"""The downstream models, a colorizer's backbone plus a new head, and the strict by-name weight
transfer into them.

* Classifier (the paper's Figure 5 on the U-Net): the backbone's encoder, then a classification head
  (`CLASSIFIER_HEADS`): Flatten + 2 x Dense 4096 on the U-Net's 1 x 1 bottleneck, global pooling +
  Dense on MobileNetV2's deepest features.
* Segmenter (Figure 6): the whole backbone (encoder, decoder, skips) with a new stride-2 transposed
  convolution to C classes and a softmax.

The backbone's layers carry the colorizer's names (`enc2_conv`, `bottleneck_conv`, `dec3_bn`,
`mnv2_encoder`, `mnv2_dec1_bn`, ...), so weights move by name; each model lists its new head layers
in `model.head_layers`, the only layers a transfer may leave at their initial values (the segmenter
also lists its `decoder_layers`, which a colorizer trained without skips does not transfer).
"""

import dataclasses

import keras
from keras import layers

from cgan_colorization.networks.backbones import gaussian_init, upsample_head
from cgan_colorization.pretexts import registry


def _check_count(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, received {name}={value!r}.")


def flatten_mlp_head(deepest, num_classes, dense_units=4096, dropout=0.5, seed=None, activation="sigmoid"):
    """The paper's head: Flatten -> Dense(4096, ReLU) -> Dropout -> Dense(4096, ReLU) -> Dropout ->
    Dense(num_classes, sigmoid), or softmax for a single-label task."""
    x = layers.Flatten(name="cls_flatten")(deepest)
    for i in (1, 2):
        x = layers.Dense(dense_units, activation="relu", kernel_initializer=gaussian_init(seed),
                         name=f"cls_dense{i}")(x)
        x = layers.Dropout(dropout, seed=seed, name=f"cls_dropout{i}")(x)
    return layers.Dense(num_classes, activation=activation, kernel_initializer=gaussian_init(seed),
                        name="cls_output", dtype="float32")(x)


def pooled_head(deepest, num_classes, dense_units=None, dropout=0.2, seed=None, activation="sigmoid"):
    """MobileNetV2's head: global average pooling -> Dropout -> Dense(num_classes, sigmoid or softmax)."""
    del dense_units
    x = layers.GlobalAveragePooling2D(name="mnv2_cls_pool")(deepest)
    x = layers.Dropout(dropout, seed=seed, name="mnv2_cls_dropout")(x)
    return layers.Dense(num_classes, activation=activation, kernel_initializer=gaussian_init(seed),
                        name="mnv2_cls_output", dtype="float32")(x)


CLASSIFIER_HEADS = {"unet": (flatten_mlp_head, 0.5), "mobilenetv2": (pooled_head, 0.2)}  # head, its dropout
SEGMENTER_HEADS = {"unet": ("seg_output", 4), "mobilenetv2": ("mnv2_segmenter", 3)}  # head name, kernel


def _with_heads(model, backbone_model_names):
    """Records the layers (with weights) that are not the backbone's: the new heads."""
    model.head_layers = tuple(layer.name for layer in model.layers
                              if layer.weights and layer.name not in backbone_model_names)
    return model


def _backbone(backbone, image_size, base_filters, seed, synchronized_bn, decoder, weights, options=None):
    if backbone not in registry.BACKBONES:
        raise ValueError(f"--backbone must be one of {tuple(registry.BACKBONES)}, received {backbone!r}.")
    spec = registry.BACKBONES[backbone]
    spec.check_size(image_size)
    unknown = sorted(set(options or {}) - set(spec.options))
    if unknown:
        raise ValueError(f"backbone_options {unknown} are not options of the {spec.label} (it takes "
                         f"{sorted(spec.options) or 'none'}).")
    features = spec.build(image_size, base_filters, seed=seed, synchronized_bn=synchronized_bn, decoder=decoder,
                          weights=weights, **(options or {}))
    trunk = keras.Model(features.inputs, [*features.skips] + ([features.decoded] if decoder else []))
    return features, {layer.name for layer in trunk.layers}


def _decoder_layers(features):
    """The names of the decoder's layers with weights (those not in the encoder)."""
    encoder = {layer.name for layer in keras.Model(features.inputs, list(features.skips)).layers}
    decoder = keras.Model(features.inputs, features.decoded)
    return tuple(layer.name for layer in decoder.layers if layer.weights and layer.name not in encoder)


def build_classifier(image_size=256, base_filters=64, num_classes=20, dense_units=4096, dropout=None, seed=None,
                     synchronized_bn=False, backbone="unet", backbone_weights=None, backbone_options=None,
                     single_label=False):
    """The backbone's encoder with its classification head, multi-label (sigmoid) or, with
    `single_label`, one class per image (softmax); every new layer starts from N(0, 0.02), the
    paper's from-scratch baseline. `dropout` defaults to the head's own
    (0.5 for the paper's MLP, 0.2 for MobileNetV2's pooled head). `backbone_options`: the backbone's
    own registry options (e.g. MobileNetV2's `bn_momentum`)."""
    _check_count("num_classes", num_classes, 1)
    _check_count("dense_units", dense_units, 1)
    head, default_dropout = CLASSIFIER_HEADS[backbone] if backbone in CLASSIFIER_HEADS else (None, None)
    dropout = default_dropout if dropout is None else dropout
    if dropout is not None and not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must lie in [0, 1), received dropout={dropout!r}.")
    features, trunk = _backbone(backbone, image_size, base_filters, seed, synchronized_bn, False, backbone_weights,
                                backbone_options)
    outputs = head(features.deepest, num_classes, dense_units, dropout, seed,
                   activation="softmax" if single_label else "sigmoid")
    prefix = "" if backbone == "unet" else f"{backbone}_"
    return _with_heads(keras.Model(features.inputs, outputs, name=f"{prefix}classifier"), trunk)


def build_segmenter(image_size=256, base_filters=64, num_classes=21, seed=None, synchronized_bn=False,
                    backbone="unet", backbone_weights=None, backbone_options=None):
    """The whole backbone (encoder, decoder, skips) with a new softmax head of `num_classes`
    (`backbone_options` as in `build_classifier`)."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"a segmenter needs num_classes >= 2, received num_classes={num_classes!r}.")
    features, trunk = _backbone(backbone, image_size, base_filters, seed, synchronized_bn, True, backbone_weights,
                                backbone_options)
    name, kernel = SEGMENTER_HEADS[backbone]
    outputs = upsample_head(features.decoded, num_classes, name, "softmax", kernel_size=kernel, seed=seed)
    prefix = "" if backbone == "unet" else f"{backbone}_"
    model = _with_heads(keras.Model(features.inputs, outputs, name=f"{prefix}segmenter"), trunk)
    model.decoder_layers = _decoder_layers(features)  # what a colorizer without skips does not transfer
    return model


@dataclasses.dataclass
class TransferReport:
    """What `transfer_weights` did, layer by layer."""

    copied: list  # layers whose weights now equal the colorizer's
    kept: list  # the target's declared new heads, which keep their initial weights
    unused: list  # colorizer layers with weights that the target has no place for (its heads, or its decoder)

    def summary(self):
        return (f"transferred {len(self.copied)} layers from the colorizer; "
                f"{len(self.kept)} kept their initial weights ({', '.join(self.kept) or 'none'}); "
                f"{len(self.unused)} colorizer layers unused ({', '.join(self.unused) or 'none'}).")


def transfer_weights(colorizer, model, exclude=()):
    """Copies the colorizer network's weights into `model` wherever a layer has the same name.

    Strict: every layer of `model` with weights is either copied or one of its declared new heads
    (`model.head_layers`, plus `exclude`); any other unmatched layer is a ValueError that lists both
    sides. Also raises, quoting both shapes, when the two models take different inputs (the U-Net's
    depth follows the size) or a same-named weight has another shape (another width).
    """
    if tuple(colorizer.input_shape[1:]) != tuple(model.input_shape[1:]):
        raise ValueError(
            f"the colorizer takes inputs of shape {tuple(colorizer.input_shape[1:])} but the {model.name} "
            f"takes {tuple(model.input_shape[1:])}: build it at the colorizer's image size."
        )
    source = {layer.name: layer for layer in colorizer.layers if layer.weights}
    heads = set(getattr(model, "head_layers", ())) | set(exclude)
    targets = [layer for layer in model.layers if layer.weights]
    unmatched = [layer.name for layer in targets if layer.name not in source and layer.name not in heads]
    if unmatched:
        unused = sorted(set(source) - {layer.name for layer in targets})
        raise ValueError(f"the {model.name}'s layers {unmatched} are neither in the colorizer nor declared heads: "
                         f"is the colorizer of another backbone? (colorizer layers without a place: {unused})")
    copied, kept = [], []
    for layer in targets:
        if layer.name in heads:
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
