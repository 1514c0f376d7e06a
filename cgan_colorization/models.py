"""pix2pix building blocks: the U-Net encoder/decoder, the colorization generator and the
70 x 70 PatchGAN discriminator (Isola et al. 2017, as used by Treneska et al. 2022).

Builders are plain functions returning functional `keras.Model`s. Every layer has a fixed name
(`enc3_conv`, `dec2_bn`, ...), and the encoder and decoder layers carry the same names in the
generator, the classifier and the segmenter, so weights move between them by name.
"""

import math

import keras
from keras import layers

MAX_FILTERS_MULTIPLIER = 8  # filters grow 64, 128, 256, 512 and then stay at 512
DECODER_DROPOUT_LAYERS = 3  # pix2pix: dropout 0.5 on the three innermost decoder blocks
DROPOUT_RATE = 0.5


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


def num_levels(image_size):
    """Number of stride-2 levels that take `image_size` down to a 1 x 1 bottleneck."""
    if not isinstance(image_size, int) or image_size < 4 or image_size & (image_size - 1):
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


def unet_decoder(skips, base_filters=64, seed=None, inference_dropout=False, synchronized_bn=False,
                 dropout_rate=DROPOUT_RATE):
    """Applies the decoder to the encoder outputs `skips` and returns the last decoder features,
    at half the input resolution, ready for a task-specific output layer.

    Decoder block k (k = 1 innermost) is ConvTranspose 4x4/2 + BN (+ Dropout 0.5 for k <= 3) + ReLU,
    concatenated with the encoder output of the same resolution. `inference_dropout` keeps the
    dropout on outside training too, the stochastic inference of pix2pix.
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
        x = layers.Concatenate(name=f"dec{k}_concat")([x, skip])
    return x


def build_generator(image_size=256, base_filters=64, in_channels=1, out_channels=2, seed=None,
                    inference_dropout=False, synchronized_bn=False, dropout_rate=DROPOUT_RATE):
    """The U-Net colorization generator: normalized L [-1, 1] in, normalized ab [-1, 1] out.

    At image_size=256 and base_filters=64 it has 8 levels and about 54.42 M parameters, as pix2pix.
    """
    inputs = keras.Input((image_size, image_size, in_channels), name="L")
    skips = unet_encoder(inputs, base_filters, seed, synchronized_bn)
    features = unet_decoder(skips, base_filters, seed, inference_dropout, synchronized_bn, dropout_rate)
    x = layers.Conv2DTranspose(
        out_channels, 4, strides=2, padding="same",
        kernel_initializer=gaussian_init(seed), name="output_deconv",
    )(features)
    outputs = layers.Activation("tanh", name="output_tanh", dtype="float32")(x)
    return keras.Model(inputs, outputs, name="generator")


def build_discriminator(image_size=256, base_filters=64, in_channels=1, out_channels=2, seed=None,
                        synchronized_bn=False):
    """The 70 x 70 PatchGAN on concat(L, ab); returns one logit per patch (30 x 30 at 256).

    C64 (no BN) - C128 - C256 with stride 2, C512 with stride 1, then a 1-channel convolution, all
    4 x 4 with padding 1: the receptive field of each output is 70 x 70 input pixels. (The authors'
    code uses a deeper variant whose field is 142 pixels; this is the pix2pix original.)
    """
    if image_size < 32:
        raise ValueError(f"the PatchGAN needs image_size >= 32, received image_size={image_size!r}.")
    gray = keras.Input((image_size, image_size, in_channels), name="L")
    color = keras.Input((image_size, image_size, out_channels), name="ab")
    x = layers.Concatenate(name="disc_concat")([gray, color])
    specs = [(base_filters, 2, False), (base_filters * 2, 2, True), (base_filters * 4, 2, True),
             (base_filters * 8, 1, True)]
    for i, (f, stride, use_bn) in enumerate(specs, start=1):
        if stride == 1:
            x = layers.ZeroPadding2D(1, name=f"disc{i}_pad")(x)
        x = layers.Conv2D(
            f, 4, strides=stride, padding="same" if stride == 2 else "valid", use_bias=not use_bn,
            kernel_initializer=gaussian_init(seed), name=f"disc{i}_conv",
        )(x)
        if use_bn:
            x = batch_norm(f"disc{i}_bn", seed, synchronized_bn)(x)
        x = layers.LeakyReLU(negative_slope=0.2, name=f"disc{i}_lrelu")(x)
    x = layers.ZeroPadding2D(1, name="disc_out_pad")(x)
    logits = layers.Conv2D(
        1, 4, strides=1, padding="valid", kernel_initializer=gaussian_init(seed),
        name="disc_out_conv", dtype="float32",
    )(x)
    return keras.Model([gray, color], logits, name="discriminator")
