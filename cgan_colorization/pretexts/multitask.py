"""Colorization with a segmentation head trained jointly (Dabholkar), on two backbones.

* **pix2pix U-Net** (`build_multitask_unet`): the generator's trunk, built by the same functions
  (`unet_encoder`, `unet_decoder`), so its layers carry the generator's names (`enc1_conv`, ...,
  `bottleneck_conv`, `dec1_deconv`, ...). Two heads read the last decoder features: the colour
  head `output_deconv` + `output_tanh` (normalized ab, exactly the generator's output layers) and
  the segmentation head `mt_seg_deconv` + `mt_seg_softmax`. Input: normalized Lab L in [-1, 1].
* **MobileNetV2 U-Net** (`build_mobilenet_unet`): the seed's model. Encoder: a headless
  `keras.applications.MobileNetV2` (no download here: `weights=None` or a local file) whose
  activations at 1/2, 1/4, 1/8, 1/16 and 1/32 of the input are the skips; decoder: 4 x
  (Conv2DTranspose 3x3/2, BatchNorm, ReLU, concat); a last Conv2DTranspose 3x3/2 per head brings
  the features back to the input size. Input: YUV's Y in [0, 1] (`data.color.rgb_to_yuv_target`), scaled to
  MobileNetV2's [-1, 1] and repeated to 3 channels inside the model; colour target: U and V
  (the seed predicts all of YUV; `num_outputs=3` does that); loss MSE.

`MultitaskColorizer` trains either one: colour loss (L1 on ab for the U-Net, MSE on UV for the
MobileNetV2 model) plus the void-masked cross-entropy of the segmentation head. Its `generator`
(also `network`) is the colour branch alone, L -> ab, sharing the trained layers: it saves as
`generator.weights.h5` and transfers downstream like the cGAN's generator.

The downstream classifier and segmenter of either backbone live in `transfer.models`; the layer
names of trunk and colour head are the same there, and every head has its own name (`mt_seg_*`,
`mnv2_seg_*`, `seg_output_*`, `mnv2_segmenter_*`), so a head is never copied into another head.
"""

import keras
import tensorflow as tf

from cgan_colorization.networks import losses
from cgan_colorization.networks.backbones import (DROPOUT_RATE, MOBILENET_DECODER_FILTERS, mobilenet_backbone,
                                         unet_backbone, upsample_head)
from cgan_colorization.constants import MOBILENET_BN_MOMENTUM
from cgan_colorization.networks.models import build_generator
from cgan_colorization.pretexts.pretext import PretextModel, compiled, regression_colorizer, unet_options
from data.labelled.masks import VOID
from data.pets import NUM_CLASSES as PETS_CLASSES

COLOR_KEYS = ("ab", "uv", "yuv")  # the colour output of a multitask network: one of these
SEG_KEY = "seg"
COLOR_LOSSES = ("l1", "mse")
_COLOR_METRIC = {"l1": "g_l1", "mse": "g_mse"}


# --------------------------------------------------------------------------------------------------
# pix2pix U-Net with two heads
# --------------------------------------------------------------------------------------------------


def _check_classes(num_classes, what):
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"{what} must be an int >= 2, received {what}={num_classes!r}.")


def build_multitask_unet(image_size, base_filters, num_seg_classes, seed=None,
                         synchronized_bn=False, dropout_rate=DROPOUT_RATE, skip_dropout=0.0, no_skips=False):
    """The pix2pix U-Net with a colour head and a segmentation head on one trunk.

    Args:
        image_size: Input side, a power of two >= 4 (as `build_generator`).
        base_filters: Filters of the first encoder level (64 in pix2pix).
        num_seg_classes: Classes of the segmentation head (>= 2).
        seed: Initializer seed.
        synchronized_bn: Pool BatchNorm statistics over replicas.
        dropout_rate: Dropout of the three innermost decoder blocks.

    Returns:
        A functional `keras.Model` "multitask_unet": normalized L [B,S,S,1] ->
        {"ab": [B,S,S,2] tanh, "seg": [B,S,S,num_seg_classes] softmax}.
    """
    _check_classes(num_seg_classes, "num_seg_classes")
    features = unet_backbone(image_size, base_filters, seed=seed, synchronized_bn=synchronized_bn,
                             dropout_rate=dropout_rate, skip_dropout=skip_dropout, no_skips=no_skips)
    ab = upsample_head(features.decoded, 2, "output", "tanh", seed=seed)
    seg = upsample_head(features.decoded, num_seg_classes, "mt_seg", "softmax", seed=seed)
    return keras.Model(features.inputs, {"ab": ab, SEG_KEY: seg}, name="multitask_unet")


# --------------------------------------------------------------------------------------------------
# MobileNetV2 U-Net
# --------------------------------------------------------------------------------------------------


def build_mobilenet_unet(image_size=128, num_outputs=2, weights=None, seg_classes=None,
                         freeze_encoder=False, decoder_filters=MOBILENET_DECODER_FILTERS, seed=None,
                         bn_momentum=MOBILENET_BN_MOMENTUM):
    """The seed's U-Net colorizer on a MobileNetV2 encoder, optionally with a segmentation head.

    Args:
        image_size: Input side, a multiple of 32, >= 32 (the seed: 128).
        num_outputs: 2 predicts U and V (Y is the input), output key "uv"; 3 predicts all of YUV
            as the seed does, key "yuv". The colour head is linear (MSE regression).
        weights: None or a local MobileNetV2 weights file (see `mobilenet_encoder`).
        seg_classes: None, or the classes (>= 2) of a segmentation head, key "seg" (softmax).
        freeze_encoder: Keep the MobileNetV2 weights fixed (the seed's tutorial does, with
            ImageNet weights).
        decoder_filters: Filters of the 4 decoder blocks, innermost first.
        seed: Initializer seed of the decoder and heads.
        bn_momentum: Momentum of every BatchNorm (Keras' MobileNetV2 uses 0.999; see `mobilenet_encoder`).

    Returns:
        Functional `keras.Model` "mobilenet_unet": Y [B,S,S,1] in [0, 1] -> {"uv" or "yuv":
        [B,S,S,num_outputs], "seg": [B,S,S,seg_classes] (with seg_classes)}.
    """
    if num_outputs not in (2, 3) or isinstance(num_outputs, bool):
        raise ValueError(f"num_outputs must be 2 (UV) or 3 (YUV), received num_outputs={num_outputs!r}.")
    if seg_classes is not None:
        _check_classes(seg_classes, "seg_classes")
    features = mobilenet_backbone(image_size, weights=weights, freeze_encoder=freeze_encoder,
                                  decoder_filters=decoder_filters, seed=seed, bn_momentum=bn_momentum)
    color = upsample_head(features.decoded, num_outputs, "mnv2_color", "linear", kernel_size=3, seed=seed)
    outputs = {"uv" if num_outputs == 2 else "yuv": color}
    if seg_classes is not None:
        outputs[SEG_KEY] = upsample_head(features.decoded, seg_classes, "mnv2_seg", "softmax", kernel_size=3,
                                         seed=seed)
    return keras.Model(features.inputs, outputs, name="mobilenet_unet")


# --------------------------------------------------------------------------------------------------
# Training wrapper
# --------------------------------------------------------------------------------------------------


def _color_key(network):
    outputs = network.output
    if not isinstance(outputs, dict):
        raise ValueError(f"the multitask network must return a dict of outputs with one of the keys "
                         f"{COLOR_KEYS} (and optionally {SEG_KEY!r}), received outputs of type "
                         f"{type(outputs).__name__}.")
    keys = [key for key in COLOR_KEYS if key in outputs]
    extra = sorted(set(outputs) - set(COLOR_KEYS) - {SEG_KEY})
    if len(keys) != 1 or extra:
        raise ValueError(f"the multitask network's outputs must be one of {COLOR_KEYS} plus optionally "
                         f"{SEG_KEY!r}, received keys {sorted(outputs)}.")
    return keys[0]


def _per_example_mean(x):
    return tf.reduce_mean(tf.reshape(x, [tf.shape(x)[0], -1]), axis=-1)


class MultitaskColorizer(PretextModel):
    """Trains a colorizer (with or without a segmentation head) on `(L, {colour key: target, "mask": mask})`.

    The data is `(L, {"ab": ab, "mask": mask})` for `build_multitask_unet`, `(Y, {"uv": uv, "mask":
    mask})` for `build_mobilenet_unet` (`data.pets.pets_dataset` yields both); "mask" is int
    [B,S,S] with `void_index` for unlabelled pixels, and is ignored by a network without a "seg"
    output.

        loss = color_weight * colour loss + seg_weight * seg_ce

    The colour loss (`g_l1`, L1, or `g_mse`, MSE) is the global-batch mean of per-example means
    (`tf.nn.compute_average_loss`), like the cGAN's. `seg_ce` is Keras' sparse cross-entropy with
    the void index ignored (the mean over the replica's non-void pixels), divided by the number of
    replicas as Keras does for its own losses, so the replicas' gradients sum to the mean of their
    means (on one device: the pixel mean). Metrics: `loss`, `g_l1` / `g_mse`, `seg_ce`, `seg_miou`
    (Keras' `MeanIoU` over the batches seen this epoch, void ignored).

    Attributes:
        multitask / net: The wrapped network (all heads).
        generator / network: The colour branch alone, a functional model L -> colour sharing the
            trunk and the colour head; saved as `generator.weights.h5` (it loads into
            `build_generator` for the U-Net) and transferred downstream.
        monitor: The validation metric of the best checkpoint, `val_g_l1` or `val_g_mse`.
    """

    optimized = "loss"

    def __init__(self, network, **kwargs):
        color_key = _color_key(network)
        super().__init__(network, loss_names=(), **kwargs)
        self.color_key = color_key
        self.has_seg = SEG_KEY in network.output
        generator = keras.Model(network.input, network.output[self.color_key], name="generator")
        # Not tracked as a sub-layer: its layers are the network's, already tracked once.
        object.__setattr__(self, "_generator_model", generator)
        self.color_space = "lab" if self.color_key == "ab" else "yuv"
        self._set_color_loss("l1" if self.color_key == "ab" else "mse")
        self.seg_miou = None

    def _set_color_loss(self, color_loss):
        self.color_loss = color_loss
        self.monitor = f"val_{_COLOR_METRIC[color_loss]}"
        self.loss_names = ("loss", _COLOR_METRIC[color_loss]) + (("seg_ce",) if self.has_seg else ())
        self.trackers = {name: keras.metrics.Mean(name=name) for name in self.loss_names}

    def compile(self, optimizer="adam", color_weight=1.0, seg_weight=1.0, void_index=VOID,
                color_loss=None, **kwargs):
        """Sets the optimizer and the loss weights.

        Args:
            optimizer: A Keras optimizer (or its name).
            color_weight: Weight (>= 0) of the colour loss.
            seg_weight: Weight (>= 0) of the segmentation cross-entropy.
            void_index: Mask value ignored by the cross-entropy and the mIoU (None: none).
            color_loss: "l1" or "mse"; default L1 for ab, MSE for UV/YUV (the seed).
            **kwargs: Passed to `keras.Model.compile` (e.g. `jit_compile`, `steps_per_execution`).
        """
        for name, value in (("color_weight", color_weight), ("seg_weight", seg_weight)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"{name} must be a number >= 0, received {name}={value!r}.")
        if color_loss is not None and color_loss not in COLOR_LOSSES:
            raise ValueError(f"color_loss must be one of {COLOR_LOSSES}, received color_loss={color_loss!r}.")
        super().compile(optimizer=optimizer, **kwargs)
        self.color_weight = float(color_weight)
        self.seg_weight = float(seg_weight)
        self.void_index = None if void_index is None else int(void_index)
        self._set_color_loss(color_loss or self.color_loss)
        self.seg_ce_fn = keras.losses.SparseCategoricalCrossentropy(ignore_class=self.void_index)
        if self.has_seg:
            classes = int(self.net.output[SEG_KEY].shape[-1])
            self.seg_miou = keras.metrics.MeanIoU(classes, name="seg_miou", ignore_class=self.void_index,
                                                  sparse_y_pred=False)
        self.build()  # network and optimizer: weights save and load before any step

    def build(self, input_shape=None):
        """Builds the network and the optimizer's slots (called by `compile`)."""
        self.net.build(self.net.input_shape)
        super().build(input_shape)

    @property
    def multitask(self):
        return self.net

    @property
    def generator(self):
        """Functional `keras.Model` L -> colour (ab, UV or YUV), sharing the trunk and colour head."""
        return self._generator_model

    @property
    def network(self):
        """The net saved as `generator.weights.h5` and transferred downstream: the `generator`."""
        return self._generator_model

    @property
    def metrics(self):
        return super().metrics + ([self.seg_miou] if self.seg_miou is not None else [])

    def compute_losses(self, gray, targets, training=False):
        """The loss terms for one batch; returns (dict of scalars, network outputs)."""
        if not isinstance(targets, dict) or self.color_key not in targets:
            got = sorted(targets) if isinstance(targets, dict) else type(targets).__name__
            raise ValueError(f"the targets must be a dict with the key {self.color_key!r}"
                             f"{' and mask' if self.has_seg else ''}, received {got}.")
        if self.has_seg and "mask" not in targets:
            raise ValueError(f"the targets must hold 'mask' for the segmentation head, received keys "
                             f"{sorted(targets)}.")
        batch = losses.global_batch_size(gray)
        outputs = self.net(gray, training=training)
        predicted = outputs[self.color_key]
        target = tf.cast(targets[self.color_key], predicted.dtype)
        error = tf.abs(target - predicted) if self.color_loss == "l1" else tf.square(target - predicted)
        color = losses.global_mean(_per_example_mean(error), batch)
        values = {_COLOR_METRIC[self.color_loss]: color}
        total = self.color_weight * color
        if self.has_seg:
            seg_ce = losses.replica_share(self.seg_ce_fn(targets["mask"], outputs[SEG_KEY]))
            values["seg_ce"] = seg_ce
            total = total + self.seg_weight * seg_ce
        values["loss"] = total
        return values, outputs

    def update_metrics(self, values, gray, targets, outputs):
        if self.seg_miou is not None:
            self.seg_miou.update_state(targets["mask"], outputs[SEG_KEY])
        return super().update_metrics(values, gray, targets, outputs)


def segmentation_classes(config):
    """Mask classes of the multitask objective's data: background + K scene classes, or the pets' 3."""
    return PETS_CLASSES if config.dataset == "pets" else config.num_classes + 1


def build(config, strategy=None, train_ds=None, run_dir=None):
    """One network with a colour head and a segmentation head on the run's backbone, compiled and built."""
    def make(sync):
        if config.backbone == "mobilenetv2":  # the seed's model: Y in, UV and the mask out, MSE
            network = build_mobilenet_unet(config.image_size, num_outputs=2, weights=config.backbone_weights or None,
                                           seg_classes=segmentation_classes(config), seed=config.seed,
                                           bn_momentum=config.bn_momentum)
        else:
            network = build_multitask_unet(config.image_size, config.base_filters, segmentation_classes(config),
                                           synchronized_bn=sync, **unet_options(config))
        return MultitaskColorizer(network)

    return compiled(config, strategy, make, color_weight=config.color_weight, seg_weight=config.seg_weight)


def load(entry, config, run_dir, weights, inference_dropout=False):
    """The colour branch (trunk + colour head), as saved: L -> ab for the U-Net (it is the generator's
    architecture), Y -> UV for the MobileNetV2 model."""
    if config.backbone == "mobilenetv2":
        network = build_mobilenet_unet(config.image_size, num_outputs=2, bn_momentum=config.bn_momentum)
        network = keras.Model(network.input, network.output["uv"], name="generator")
    else:
        network = build_generator(config.image_size, config.base_filters, inference_dropout=inference_dropout,
                                  **unet_options(config))
    return regression_colorizer(network, weights, config, entry)
