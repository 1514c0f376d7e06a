"""The two trunks every model of the package is built on, and the heads that finish them.

* `unet_backbone`: the pix2pix U-Net (Isola et al. 2017, as used by Treneska et al. 2022): an
  encoder of stride-2 4 x 4 convolutions down to a 1 x 1 bottleneck and a decoder of transposed
  convolutions with skip concatenations. Input: normalized Lab L in [-1, 1].
* `mobilenet_backbone`: the multitask source's U-Net on a headless `keras.applications.MobileNetV2`
  (Dabholkar; TensorFlow's segmentation tutorial). Input: YUV's Y in [0, 1].

A builder returns `Features`: the input, the encoder outputs (the last is the deepest) and, unless
`decoder=False`, the last decoder features at half the input size. The generator, the classification
colorizer, the multitask nets, the classifier and the segmenter are one backbone plus a named head
(`upsample_head`, or the classifier heads of `transfer.models`). Every layer has a fixed name
(`enc3_conv`, `dec2_bn`, `mnv2_dec1_deconv`, ...), the same in every model, so weights move by name.
"""

import dataclasses
import math
import os

import keras
from keras import layers

from cgan_colorization.constants import MOBILENET_BN_MOMENTUM
from cgan_colorization.networks.batchnorm import set_momentum

MAX_FILTERS_MULTIPLIER = 8  # filters grow 64, 128, 256, 512 and then stay at 512
DECODER_DROPOUT_LAYERS = 3  # pix2pix: dropout 0.5 on the three innermost decoder blocks
DROPOUT_RATE = 0.5

# MobileNetV2 activations used as skips, from 1/2 to 1/32 of the input size (the last is the
# deepest feature map, which the decoder starts from).
MOBILENET_SKIPS = (
    "block_1_expand_relu",   # 1/2,  96 channels
    "block_3_expand_relu",   # 1/4, 144
    "block_6_expand_relu",   # 1/8, 192
    "block_13_expand_relu",  # 1/16, 576
    "block_16_project",      # 1/32, 320
)
MOBILENET_DECODER_FILTERS = (512, 256, 128, 64)  # as TensorFlow's segmentation tutorial
MOBILENET_MIN_SIZE = 32


@dataclasses.dataclass
class Features:
    """What a backbone builder returns (symbolic Keras tensors)."""

    inputs: object
    skips: list  # encoder outputs, shallowest first; the last is the deepest (the U-Net's bottleneck)
    decoded: object = None  # last decoder features at half the input size (None without a decoder)
    names: tuple = ()  # a name per encoder level ("enc1", ..., "bottleneck"; MobileNetV2's skip layers)

    @property
    def deepest(self):
        return self.skips[-1]


def gaussian_init(seed=None):
    """N(0, 0.02), the pix2pix initialisation, used for every convolution and dense layer."""
    return keras.initializers.RandomNormal(mean=0.0, stddev=0.02, seed=seed)


def batch_norm(name, seed=None, synchronized=False):
    """BatchNorm with pix2pix's N(1, 0.02) scale init; `synchronized` pools the batch statistics
    over all replicas, so that a distributed step equals a one-device step on the global batch."""
    return layers.BatchNormalization(
        gamma_initializer=keras.initializers.RandomNormal(mean=1.0, stddev=0.02, seed=seed),
        synchronized=synchronized, name=name,
    )


def upsample_head(features, channels, name, activation=None, kernel_size=4, seed=None):
    """A task head: a stride-2 transposed convolution to `channels` (`{name}_deconv`) back to the
    input size, then `activation` (`{name}_{activation}`, float32). Without one the outputs are logits
    in the compute dtype (Zhang's 262-bin head is about a third of the forward pass, so it runs at the
    mixed-precision rate); its loss and decoding cast them to float32 first."""
    x = layers.Conv2DTranspose(
        channels, kernel_size, strides=2, padding="same", kernel_initializer=gaussian_init(seed),
        name=f"{name}_deconv",
    )(features)
    if activation:
        x = layers.Activation(activation, name=f"{name}_{activation}", dtype="float32")(x)
    return x


# --------------------------------------------------------------------------------------------------
# pix2pix U-Net
# --------------------------------------------------------------------------------------------------


def num_levels(image_size):
    """Number of stride-2 levels that take `image_size` down to a 1 x 1 bottleneck."""
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 4 \
            or image_size & (image_size - 1):
        raise ValueError(
            f"image_size must be a power of two >= 4 (the U-Net halves it down to 1 x 1), "
            f"received image_size={image_size!r}."
        )
    return int(math.log2(image_size))


def encoder_filters(image_size, base_filters=64):
    """Filters of encoder levels 1..n; the last level is the bottleneck."""
    if base_filters < 1:
        raise ValueError(f"base_filters must be >= 1, received base_filters={base_filters!r}.")
    return [
        base_filters * min(2**i, MAX_FILTERS_MULTIPLIER) for i in range(num_levels(image_size))
    ]


def unet_encoder(inputs, base_filters=64, seed=None, synchronized_bn=False):
    """Applies the encoder to `inputs` and returns the output of every level (the last is the
    1 x 1 bottleneck).

    Level 1 has no BatchNorm; levels 2..n-1 are Conv 4x4/2 + BN + LeakyReLU(0.2); the bottleneck is
    Conv 4x4/2 + ReLU without BN, as in the reference implementation of the paper.
    """
    filters = encoder_filters(int(inputs.shape[1]), base_filters)
    outputs, x = [], inputs
    for level, f in enumerate(filters, start=1):
        bottleneck = level == len(filters)
        name = "bottleneck" if bottleneck else f"enc{level}"
        use_bn = 1 < level < len(filters)
        x = layers.Conv2D(
            f, 4, strides=2, padding="same", use_bias=not use_bn,
            kernel_initializer=gaussian_init(seed), name=f"{name}_conv",
        )(x)
        if use_bn:
            x = batch_norm(f"{name}_bn", seed, synchronized_bn)(x)
        if bottleneck:
            x = layers.ReLU(name=f"{name}_relu")(x)
        else:
            x = layers.LeakyReLU(negative_slope=0.2, name=f"{name}_lrelu")(x)
        outputs.append(x)
    return outputs


@keras.saving.register_keras_serializable(package="cgan_colorization")
class SkipGate(layers.Layer):
    """Gates one U-Net skip connection, with no weights of its own.

    `rate` > 0: in training, the skip of each example is zeroed with probability `rate` (not rescaled,
    so a kept skip looks as at inference, where every skip passes): the decoder must learn to colorize
    from the bottleneck alone, the work that transfers. `always`: the skip is zeroed in training and
    at inference, a U-Net without skips (the ablation).
    """

    def __init__(self, rate=0.0, always=False, seed=None, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"rate must lie in [0, 1), received rate={rate!r}.")
        self.rate, self.always, self.seed = float(rate), bool(always), seed
        self.generator = keras.random.SeedGenerator(seed)

    def call(self, skip, training=False):
        if self.always:
            return keras.ops.zeros_like(skip)
        if not training or self.rate == 0.0:
            return skip
        shape = (keras.ops.shape(skip)[0], 1, 1, 1)
        keep = keras.random.uniform(shape, seed=self.generator) >= self.rate
        return skip * keras.ops.cast(keep, skip.dtype)

    def get_config(self):
        return dict(super().get_config(), rate=self.rate, always=self.always, seed=self.seed)


def unet_decoder(skips, base_filters=64, seed=None, inference_dropout=False, synchronized_bn=False,
                 dropout_rate=DROPOUT_RATE, skip_dropout=0.0, no_skips=False):
    """Applies the decoder to the encoder outputs `skips` and returns the last decoder features,
    at half the input resolution, ready for a task head.

    Decoder block k (k = 1 innermost) is ConvTranspose 4x4/2 + BN (+ Dropout 0.5 for k <= 3) + ReLU,
    concatenated with the encoder output of the same resolution. `inference_dropout` keeps the
    dropout on outside training too, the stochastic inference of pix2pix. `skip_dropout` and
    `no_skips` put a `SkipGate` (`dec{k}_skipgate`) on every skip; the layers with weights, their
    names and shapes stay the same, so the weights transfer as always.
    """
    x = skips[-1]
    for k, skip in enumerate(reversed(skips[:-1]), start=1):
        f = int(skip.shape[-1])
        x = layers.Conv2DTranspose(
            f, 4, strides=2, padding="same", use_bias=False,
            kernel_initializer=gaussian_init(seed), name=f"dec{k}_deconv",
        )(x)
        x = batch_norm(f"dec{k}_bn", seed, synchronized_bn)(x)
        if k <= DECODER_DROPOUT_LAYERS:
            dropout = layers.Dropout(dropout_rate, seed=seed, name=f"dec{k}_dropout")
            x = dropout(x, training=True) if inference_dropout else dropout(x)
        x = layers.ReLU(name=f"dec{k}_relu")(x)
        if skip_dropout or no_skips:
            skip = SkipGate(skip_dropout, no_skips, seed=seed, name=f"dec{k}_skipgate")(skip)
        x = layers.Concatenate(name=f"dec{k}_concat")([x, skip])
    return x


def unet_backbone(image_size, base_filters=64, *, seed=None, synchronized_bn=False, decoder=True,
                  weights=None, dropout_rate=DROPOUT_RATE, inference_dropout=False, in_channels=1,
                  skip_dropout=0.0, no_skips=False):
    """The pix2pix U-Net on a normalized-L input ("L"); its depth follows the size so that the
    bottleneck is always 1 x 1 (8 levels at 256). `weights` must be empty: the U-Net starts from
    N(0, 0.02) or from a colorizer, never from a file of its own."""
    if weights:
        raise ValueError("--backbone-weights is the MobileNetV2 weights file: it needs --backbone mobilenetv2.")
    inputs = keras.Input((image_size, image_size, in_channels), name="L")
    skips = unet_encoder(inputs, base_filters, seed, synchronized_bn)
    decoded = unet_decoder(skips, base_filters, seed, inference_dropout, synchronized_bn, dropout_rate,
                           skip_dropout, no_skips) if decoder else None
    return Features(inputs, skips, decoded, tuple(f"enc{k}" for k in range(1, len(skips))) + ("bottleneck",))


# --------------------------------------------------------------------------------------------------
# MobileNetV2 U-Net
# --------------------------------------------------------------------------------------------------


def check_mobilenet_size(image_size):
    if (isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < MOBILENET_MIN_SIZE
            or image_size % 32):
        raise ValueError(f"the MobileNetV2 U-Net needs image_size a multiple of 32 and >= "
                         f"{MOBILENET_MIN_SIZE} (its deepest skip is at 1/32), received "
                         f"image_size={image_size!r}.")


def _check_weights(weights):
    if not weights:
        return None
    if not isinstance(weights, (str, os.PathLike)):
        raise ValueError(f"weights must be None or the path of a local weights file, received "
                         f"weights={weights!r}.")
    weights = os.fspath(weights)
    if weights == "imagenet":
        raise ValueError("weights='imagenet' would download the ImageNet file, which is not "
                         "possible here: pass weights=None or the path of a local copy of "
                         "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_<size>_no_top.h5.")
    if not os.path.isfile(weights):
        raise FileNotFoundError(f"the MobileNetV2 weights file {weights!r} does not exist.")
    return weights


def mobilenet_encoder(image_size=128, weights=None, bn_momentum=MOBILENET_BN_MOMENTUM):
    """The headless MobileNetV2 as one nested model "mnv2_encoder": RGB [-1, 1] -> the 5 skips.

    Args:
        image_size: Input side, a multiple of 32, >= 32.
        weights: None (random init) or a local weights file of a headless MobileNetV2 (alpha 1.0),
            e.g. Keras' `..._no_top.h5` or a `.weights.h5` saved from
            `keras.applications.MobileNetV2(include_top=False)`; the convolutions do not depend on
            the input size, so a file of any size loads.
        bn_momentum: Momentum of its BatchNorm layers. Keras builds them with 0.999, whose moving
            statistics are still 0.68 their initial (0, 1) after 390 steps: a short run from scratch
            then predicts one class in inference mode (README). 0.999 suits long runs from ImageNet;
            the default 0.9 follows the weights of a short run (`constants.MOBILENET_BN_MOMENTUM`).
    """
    check_mobilenet_size(image_size)
    weights = _check_weights(weights)
    base = keras.applications.MobileNetV2(input_shape=(image_size, image_size, 3), include_top=False,
                                          weights=weights)
    set_momentum(base, bn_momentum)
    return keras.Model(base.input, [base.get_layer(name).output for name in MOBILENET_SKIPS],
                       name="mnv2_encoder")


def _check_decoder_filters(decoder_filters):
    filters = tuple(decoder_filters)
    if len(filters) != 4 or not all(isinstance(f, int) and not isinstance(f, bool) and f >= 1
                                    for f in filters):
        raise ValueError(f"decoder_filters must be 4 ints >= 1, received "
                         f"decoder_filters={decoder_filters!r}.")
    return filters


def mobilenet_decoder(skips, filters=MOBILENET_DECODER_FILTERS, seed=None, bn_momentum=MOBILENET_BN_MOMENTUM):
    """4 x (Conv2DTranspose 3x3/2, BatchNorm, ReLU, concat skip): 1/32 -> 1/2 of the input, as the
    segmentation tutorial's `pix2pix.upsample(filters, 3)` blocks."""
    x = skips[-1]
    for k, (f, skip) in enumerate(zip(_check_decoder_filters(filters), reversed(skips[:-1])), start=1):
        x = layers.Conv2DTranspose(f, 3, strides=2, padding="same", use_bias=False,
                                   kernel_initializer=gaussian_init(seed), name=f"mnv2_dec{k}_deconv")(x)
        x = layers.BatchNormalization(momentum=bn_momentum, name=f"mnv2_dec{k}_bn")(x)
        x = layers.ReLU(name=f"mnv2_dec{k}_relu")(x)
        x = layers.Concatenate(name=f"mnv2_dec{k}_concat")([x, skip])
    return x


def mobilenet_backbone(image_size=128, base_filters=None, *, seed=None, synchronized_bn=False, decoder=True,
                       weights=None, freeze_encoder=False, decoder_filters=MOBILENET_DECODER_FILTERS,
                       bn_momentum=MOBILENET_BN_MOMENTUM):
    """Y [0, 1] ("Y") -> scaled to MobileNetV2's [-1, 1], repeated to 3 channels -> the nested
    encoder "mnv2_encoder" (its 5 skips) -> (with `decoder`) the 4-block decoder.

    `base_filters` is the U-Net's width and does not apply (the decoder has `decoder_filters`);
    Keras' MobileNetV2 BatchNorm layers are not synchronized across replicas. `bn_momentum` is the
    momentum of every BatchNorm, encoder and decoder (see `mobilenet_encoder`).
    """
    del base_filters, synchronized_bn
    encoder = mobilenet_encoder(image_size, weights, bn_momentum)
    encoder.trainable = not freeze_encoder
    inputs = keras.Input((image_size, image_size, 1), name="Y")
    x = layers.Rescaling(2.0, offset=-1.0, name="mnv2_input_scale")(inputs)  # [0, 1] -> [-1, 1]
    x = layers.Concatenate(name="mnv2_grey_to_rgb")([x, x, x])
    skips = encoder(x)
    decoded = mobilenet_decoder(skips, decoder_filters, seed, bn_momentum) if decoder else None
    return Features(inputs, list(skips), decoded, MOBILENET_SKIPS)
