"""Colorization with a segmentation head trained jointly (Dabholkar, seed 003), on two backbones.

* **pix2pix U-Net** (`build_multitask_unet`): the generator's trunk, built by the same functions
  (`unet_encoder`, `unet_decoder`), so its layers carry the generator's names (`enc1_conv`, ...,
  `bottleneck_conv`, `dec1_deconv`, ...). Two heads read the last decoder features: the colour
  head `output_deconv` + `output_tanh` (normalized ab, exactly the generator's output layers) and
  the segmentation head `mt_seg_deconv` + `mt_seg_softmax`. Input: normalized Lab L in [-1, 1].
* **MobileNetV2 U-Net** (`build_mobilenet_unet`): the seed's model. Encoder: a headless
  `keras.applications.MobileNetV2` (no download here: `weights=None` or a local file) whose
  activations at 1/2, 1/4, 1/8, 1/16 and 1/32 of the input are the skips; decoder: 4 x
  (Conv2DTranspose 3x3/2, BatchNorm, ReLU, concat); a last Conv2DTranspose 3x3/2 per head brings
  the features back to the input size. Input: YUV's Y in [0, 1] (`cgan_colorization.color.rgb_to_yuv_target`), scaled to
  MobileNetV2's [-1, 1] and repeated to 3 channels inside the model; colour target: U and V
  (the seed predicts all of YUV; `num_outputs=3` does that); loss MSE.

`MultitaskColorizer` trains either one: colour loss (L1 on ab for the U-Net, MSE on UV for the
MobileNetV2 model) plus the void-masked cross-entropy of the segmentation head. Its `generator`
(also `network`) is the colour branch alone, L -> ab, sharing the trained layers: it saves as
`generator.weights.h5` and transfers downstream like the cGAN's generator.

Every model has a single 1-channel input of the same size, so `transfer.models.transfer_weights`
moves the trunk into the downstream models by layer name: the U-Net's into `build_classifier` /
`build_segmenter`, the MobileNetV2's (the nested `mnv2_encoder` and the `mnv2_dec{k}_*` layers)
into `build_mobilenet_classifier` / `build_mobilenet_segmenter`. The task heads have their own
names in each model (`mt_seg_*`, `seg_output_*`, `mnv2_seg_*`, `mnv2_segmenter_*`), so a head is
never copied into another head of a different size.
"""

import os

import keras
import tensorflow as tf
from keras import layers

from cgan_colorization import losses
from cgan_colorization.models import DROPOUT_RATE, gaussian_init, unet_decoder, unet_encoder
from transfer.metrics import MaskedSparseCategoricalCrossentropy, StreamingConfusionMatrix

VOID_INDEX = 255

COLOR_KEYS = ("ab", "uv", "yuv")  # the colour output of a multitask network: one of these
SEG_KEY = "seg"
COLOR_LOSSES = ("l1", "mse")
_COLOR_METRIC = {"l1": "g_l1", "mse": "g_mse"}

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


# --------------------------------------------------------------------------------------------------
# pix2pix U-Net with two heads
# --------------------------------------------------------------------------------------------------


def _check_classes(num_classes, what):
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"{what} must be an int >= 2, received {what}={num_classes!r}.")


def build_multitask_unet(image_size, base_filters, num_seg_classes, seed=None,
                         synchronized_bn=False, dropout_rate=DROPOUT_RATE):
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
    inputs = keras.Input((image_size, image_size, 1), name="L")
    skips = unet_encoder(inputs, base_filters, seed, synchronized_bn)
    features = unet_decoder(skips, base_filters, seed, synchronized_bn=synchronized_bn,
                            dropout_rate=dropout_rate)
    ab = layers.Conv2DTranspose(2, 4, strides=2, padding="same", kernel_initializer=gaussian_init(seed),
                                name="output_deconv")(features)
    ab = layers.Activation("tanh", name="output_tanh", dtype="float32")(ab)
    seg = layers.Conv2DTranspose(num_seg_classes, 4, strides=2, padding="same",
                                 kernel_initializer=gaussian_init(seed), name="mt_seg_deconv")(features)
    seg = layers.Softmax(name="mt_seg_softmax", dtype="float32")(seg)
    return keras.Model(inputs, {"ab": ab, SEG_KEY: seg}, name="multitask_unet")


# --------------------------------------------------------------------------------------------------
# MobileNetV2 U-Net
# --------------------------------------------------------------------------------------------------


def _check_mobilenet_size(image_size):
    if (isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < MOBILENET_MIN_SIZE
            or image_size % 32):
        raise ValueError(f"the MobileNetV2 U-Net needs image_size a multiple of 32 and >= "
                         f"{MOBILENET_MIN_SIZE} (its deepest skip is at 1/32), received "
                         f"image_size={image_size!r}.")


def _check_weights(weights):
    if weights is None:
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


def mobilenet_encoder(image_size=128, weights=None):
    """The headless MobileNetV2 as one nested model "mnv2_encoder": RGB [-1, 1] -> the 5 skips.

    Args:
        image_size: Input side, a multiple of 32, >= 32.
        weights: None (random init) or a local weights file of a headless MobileNetV2 (alpha 1.0),
            e.g. Keras' `..._no_top.h5` or a `.weights.h5` saved from
            `keras.applications.MobileNetV2(include_top=False)`; the convolutions do not depend on
            the input size, so a file of any size loads.

    Returns:
        `keras.Model` [B,S,S,3] -> [1/2, 1/4, 1/8, 1/16, 1/32 feature maps] (`MOBILENET_SKIPS`).
    """
    _check_mobilenet_size(image_size)
    weights = _check_weights(weights)
    base = keras.applications.MobileNetV2(input_shape=(image_size, image_size, 3), include_top=False,
                                          weights=weights)
    return keras.Model(base.input, [base.get_layer(name).output for name in MOBILENET_SKIPS],
                       name="mnv2_encoder")


def _mobilenet_trunk(image_size, weights, freeze_encoder):
    """Y input -> (input, skips) through the scale, grey-to-RGB and encoder layers."""
    encoder = mobilenet_encoder(image_size, weights)
    encoder.trainable = not freeze_encoder
    inputs = keras.Input((image_size, image_size, 1), name="Y")
    x = layers.Rescaling(2.0, offset=-1.0, name="mnv2_input_scale")(inputs)  # [0, 1] -> [-1, 1]
    x = layers.Concatenate(name="mnv2_grey_to_rgb")([x, x, x])
    return inputs, encoder(x)


def _mobilenet_decoder(skips, filters=MOBILENET_DECODER_FILTERS, seed=None):
    """4 x (Conv2DTranspose 3x3/2, BatchNorm, ReLU, concat skip): 1/32 -> 1/2 of the input."""
    x = skips[-1]
    for k, (f, skip) in enumerate(zip(filters, reversed(skips[:-1])), start=1):
        x = layers.Conv2DTranspose(f, 3, strides=2, padding="same", use_bias=False,
                                   kernel_initializer=gaussian_init(seed), name=f"mnv2_dec{k}_deconv")(x)
        x = layers.BatchNormalization(name=f"mnv2_dec{k}_bn")(x)
        x = layers.ReLU(name=f"mnv2_dec{k}_relu")(x)
        x = layers.Concatenate(name=f"mnv2_dec{k}_concat")([x, skip])
    return x


def _check_decoder_filters(decoder_filters):
    filters = tuple(decoder_filters)
    if len(filters) != 4 or not all(isinstance(f, int) and not isinstance(f, bool) and f >= 1
                                    for f in filters):
        raise ValueError(f"decoder_filters must be 4 ints >= 1, received "
                         f"decoder_filters={decoder_filters!r}.")
    return filters


def build_mobilenet_unet(image_size=128, num_outputs=2, weights=None, seg_classes=None,
                         freeze_encoder=False, decoder_filters=MOBILENET_DECODER_FILTERS, seed=None):
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

    Returns:
        Functional `keras.Model` "mobilenet_unet": Y [B,S,S,1] in [0, 1] -> {"uv" or "yuv":
        [B,S,S,num_outputs], "seg": [B,S,S,seg_classes] (with seg_classes)}.
    """
    if num_outputs not in (2, 3) or isinstance(num_outputs, bool):
        raise ValueError(f"num_outputs must be 2 (UV) or 3 (YUV), received num_outputs={num_outputs!r}.")
    if seg_classes is not None:
        _check_classes(seg_classes, "seg_classes")
    filters = _check_decoder_filters(decoder_filters)
    inputs, skips = _mobilenet_trunk(image_size, weights, freeze_encoder)
    features = _mobilenet_decoder(skips, filters, seed)
    color = layers.Conv2DTranspose(num_outputs, 3, strides=2, padding="same",
                                   kernel_initializer=gaussian_init(seed), name="mnv2_color_deconv")(features)
    color = layers.Activation("linear", name="mnv2_color", dtype="float32")(color)
    outputs = {"uv" if num_outputs == 2 else "yuv": color}
    if seg_classes is not None:
        seg = layers.Conv2DTranspose(seg_classes, 3, strides=2, padding="same",
                                     kernel_initializer=gaussian_init(seed), name="mnv2_seg_deconv")(features)
        outputs[SEG_KEY] = layers.Softmax(name="mnv2_seg_softmax", dtype="float32")(seg)
    return keras.Model(inputs, outputs, name="mobilenet_unet")


def build_mobilenet_classifier(image_size=128, num_classes=20, weights=None, dropout=0.2,
                               activation="sigmoid", freeze_encoder=False, seed=None):
    """MobileNetV2 encoder -> global average pool -> Dropout -> Dense(num_classes).

    The encoder layers (`mnv2_input_scale`, `mnv2_grey_to_rgb`, `mnv2_encoder`) are the colorizer's,
    so `transfer_weights(colorizer, classifier)` copies the pretrained MobileNetV2.

    Args:
        image_size: Input side (the colorizer's).
        num_classes: Outputs (>= 1).
        weights: None or a local MobileNetV2 weights file.
        dropout: Dropout rate before the output layer.
        activation: "sigmoid" (multi-label, as VOC classification) or "softmax".
        freeze_encoder: Keep the encoder fixed.
        seed: Initializer seed of the head.

    Returns:
        Functional `keras.Model` "mobilenet_classifier": Y [B,S,S,1] -> [B,num_classes].
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be an int >= 1, received num_classes={num_classes!r}.")
    if activation not in ("sigmoid", "softmax"):
        raise ValueError(f"activation must be 'sigmoid' or 'softmax', received activation={activation!r}.")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must lie in [0, 1), received dropout={dropout!r}.")
    inputs, skips = _mobilenet_trunk(image_size, weights, freeze_encoder)
    x = layers.GlobalAveragePooling2D(name="mnv2_cls_pool")(skips[-1])
    x = layers.Dropout(dropout, seed=seed, name="mnv2_cls_dropout")(x)
    outputs = layers.Dense(num_classes, activation=activation, kernel_initializer=gaussian_init(seed),
                           name="mnv2_cls_output", dtype="float32")(x)
    return keras.Model(inputs, outputs, name="mobilenet_classifier")


def build_mobilenet_segmenter(image_size=128, num_classes=21, weights=None, freeze_encoder=False,
                              decoder_filters=MOBILENET_DECODER_FILTERS, seed=None):
    """The whole MobileNetV2 U-Net (encoder, decoder, skips) with a new softmax head.

    Encoder and decoder names equal the colorizer's, so `transfer_weights` copies both; the head
    `mnv2_segmenter_deconv` / `mnv2_segmenter_softmax` is new (not the multitask `mnv2_seg_*`).

    Returns:
        Functional `keras.Model` "mobilenet_segmenter": Y [B,S,S,1] -> [B,S,S,num_classes].
    """
    _check_classes(num_classes, "num_classes")
    filters = _check_decoder_filters(decoder_filters)
    inputs, skips = _mobilenet_trunk(image_size, weights, freeze_encoder)
    features = _mobilenet_decoder(skips, filters, seed)
    x = layers.Conv2DTranspose(num_classes, 3, strides=2, padding="same",
                               kernel_initializer=gaussian_init(seed), name="mnv2_segmenter_deconv")(features)
    outputs = layers.Softmax(name="mnv2_segmenter_softmax", dtype="float32")(x)
    return keras.Model(inputs, outputs, name="mobilenet_segmenter")


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


class MultitaskColorizer(keras.Model):
    """Trains a colorizer (with or without a segmentation head) on `(L, {colour key: target, "mask": mask})`.

    The data is `(L, {"ab": ab, "mask": mask})` for `build_multitask_unet`, `(Y, {"uv": uv, "mask":
    mask})` for `build_mobilenet_unet` (`data.pets.pets_dataset` yields both); "mask" is int
    [B,S,S] with `void_index` for unlabelled pixels, and is ignored by a network without a "seg"
    output.

        loss = color_weight * colour loss + seg_weight * seg_ce

    The colour loss (`g_l1`, L1, or `g_mse`, MSE) is the global-batch mean of per-example means
    (`tf.nn.compute_average_loss`), like the cGAN's. `seg_ce` is the mean cross-entropy over the
    non-void pixels of the replica's batch (transfer.metrics' masked loss), divided by the number
    of replicas, so replicas' gradients sum to the mean of their means (on one device: the
    pixel mean). Metrics: `loss`, `g_l1` / `g_mse`, `seg_ce`, `seg_miou` (running mIoU of the
    batches seen this epoch, void ignored).

    Attributes:
        multitask: The wrapped network (all heads).
        generator / network: The colour branch alone, a functional model L -> colour sharing the
            trunk and the colour head; saved as `generator.weights.h5` (it loads into
            `build_generator` for the U-Net) and transferred downstream.
        monitor: The validation metric of the best checkpoint, `val_g_l1` or `val_g_mse`.
    """

    def __init__(self, network, **kwargs):
        super().__init__(**kwargs)
        self.color_key = _color_key(network)
        self.has_seg = SEG_KEY in network.output
        self.multitask = network
        generator = keras.Model(network.input, network.output[self.color_key], name="generator")
        # Not tracked as a sub-layer: its layers are the network's, already tracked once.
        object.__setattr__(self, "_generator_model", generator)
        self.color_loss = "l1" if self.color_key == "ab" else "mse"
        self.monitor = f"val_{_COLOR_METRIC[self.color_loss]}"
        self.trackers = {}
        self.seg_miou = None

    def compile(self, optimizer="adam", color_weight=1.0, seg_weight=1.0, void_index=VOID_INDEX,
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
        if color_loss is not None:
            self.color_loss = color_loss
        color_metric = _COLOR_METRIC[self.color_loss]
        self.monitor = f"val_{color_metric}"
        names = ["loss", color_metric] + (["seg_ce"] if self.has_seg else [])
        self.trackers = {name: keras.metrics.Mean(name=name) for name in names}
        self.seg_ce_fn = MaskedSparseCategoricalCrossentropy(void_index=self.void_index)
        if self.has_seg:
            classes = int(self.multitask.output[SEG_KEY].shape[-1])
            self.seg_miou = StreamingConfusionMatrix(classes, void_index=self.void_index, name="seg_miou")
        self.build()  # network and optimizer: weights save and load before any step

    def build(self, input_shape=None):
        """Builds the network and the optimizer's slots (called by `compile`)."""
        self.multitask.build(self.multitask.input_shape)
        if self.optimizer is not None and not self.optimizer.built:
            self.optimizer.build(self.multitask.trainable_variables)
        self.built = True

    @property
    def generator(self):
        """Functional `keras.Model` L -> colour (ab, UV or YUV), sharing the trunk and colour head."""
        return self._generator_model

    @property
    def network(self):
        """The net saved as `generator.weights.h5` and transferred downstream: the `generator`."""
        return self._generator_model

    def predict_ab(self, gray):
        """The colour output for `gray`, in inference mode (normalized ab for the U-Net)."""
        return self._generator_model(gray, training=False)

    def call(self, gray, training=False):
        return self.multitask(gray, training=training)

    @property
    def metrics(self):
        extra = [self.seg_miou] if self.seg_miou is not None else []
        return list(self.trackers.values()) + extra

    def compute_multitask_losses(self, gray, targets, training=False):
        """The loss terms for one batch; returns (dict of scalars, network outputs)."""
        if not isinstance(targets, dict) or self.color_key not in targets:
            got = sorted(targets) if isinstance(targets, dict) else type(targets).__name__
            raise ValueError(f"the targets must be a dict with the key {self.color_key!r}"
                             f"{' and mask' if self.has_seg else ''}, received {got}.")
        if self.has_seg and "mask" not in targets:
            raise ValueError(f"the targets must hold 'mask' for the segmentation head, received keys "
                             f"{sorted(targets)}.")
        batch = losses.global_batch_size(gray)
        outputs = self.multitask(gray, training=training)
        predicted = outputs[self.color_key]
        target = tf.cast(targets[self.color_key], predicted.dtype)
        error = tf.abs(target - predicted) if self.color_loss == "l1" else tf.square(target - predicted)
        color = losses.global_mean(_per_example_mean(error), batch)
        values = {_COLOR_METRIC[self.color_loss]: color}
        total = self.color_weight * color
        if self.has_seg:
            seg_ce = self.seg_ce_fn(targets["mask"], outputs[SEG_KEY]) / tf.cast(losses.num_replicas(), tf.float32)
            values["seg_ce"] = seg_ce
            total = total + self.seg_weight * seg_ce
        values["loss"] = total
        return values, outputs

    def _update_metrics(self, values, targets, outputs):
        for name, tracker in self.trackers.items():
            tracker.update_state(losses.as_global(values[name]))
        if self.seg_miou is not None:
            self.seg_miou.update_state(targets["mask"], outputs[SEG_KEY])
        return {metric.name: metric.result() for metric in self.metrics}

    @staticmethod
    def _unpack(data):
        gray, targets, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        if sample_weight is not None:
            raise ValueError("MultitaskColorizer does not take sample weights; mark unlabelled "
                             "pixels with the void index in the mask instead.")
        return gray, targets

    def train_step(self, data):
        gray, targets = self._unpack(data)
        with tf.GradientTape() as tape:
            values, outputs = self.compute_multitask_losses(gray, targets, training=True)
            scaled = self.optimizer.scale_loss(values["loss"])
        variables = self.multitask.trainable_variables
        self.optimizer.apply_gradients(zip(tape.gradient(scaled, variables), variables))
        return self._update_metrics(values, targets, outputs)

    def test_step(self, data):
        gray, targets = self._unpack(data)
        values, outputs = self.compute_multitask_losses(gray, targets, training=False)
        return self._update_metrics(values, targets, outputs)
