"""The pix2pix colorization models (Isola et al. 2017, as used by Treneska et al. 2022): the U-Net
generator (the U-Net backbone with a tanh ab head) and the 70 x 70 PatchGAN discriminator.

Builders are plain functions returning functional `keras.Model`s with fixed layer names, so weights
move between the generator and the downstream models by name (see `backbones`).
"""

import keras
from keras import layers

from cgan_colorization.networks.backbones import DROPOUT_RATE, batch_norm, gaussian_init, unet_backbone, upsample_head


def build_generator(image_size=256, base_filters=64, in_channels=1, out_channels=2, seed=None,
                    inference_dropout=False, synchronized_bn=False, dropout_rate=DROPOUT_RATE, skip_dropout=0.0,
                    no_skips=False):
    """The U-Net colorization generator: normalized L [-1, 1] in, normalized ab [-1, 1] out.

    At image_size=256 and base_filters=64 it has 8 levels and about 54.42 M parameters, as pix2pix.
    `skip_dropout` and `no_skips` gate its skips (`backbones.SkipGate`).
    """
    features = unet_backbone(image_size, base_filters, seed=seed, synchronized_bn=synchronized_bn,
                             dropout_rate=dropout_rate, inference_dropout=inference_dropout, in_channels=in_channels,
                             skip_dropout=skip_dropout, no_skips=no_skips)
    outputs = upsample_head(features.decoded, out_channels, "output", "tanh", seed=seed)
    return keras.Model(features.inputs, outputs, name="generator")


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
