"""What every colorizer is to the rest of the package: a `PretextModel` while it trains, a
`Colorizer` once loaded from its run folder.

A pretext module (see `registry`) subclasses `PretextModel`, declares its loss names, the metric its
best checkpoint monitors and the network it saves and transfers, and writes `compute_losses`; the
generic single-optimizer `train_step` / `test_step` here do the rest (only the GAN, with two
optimizers, overrides them).
"""

import keras
import tensorflow as tf

from cgan_colorization.constants import GPU_STEPS_PER_EXECUTION
from cgan_colorization.networks import losses


class PretextModel(keras.Model):
    """A colorizer in training.

    Subclasses set:
        loss_names: the scalars logged each step (one `keras.metrics.Mean` each), in order.
        optimized: the one of them that the optimizer minimises.
        monitor: the validation metric of `generator_best.weights.h5` (lowest is best).
        color_space: "lab" (L in, ab out) or "yuv" (Y in, UV out).
        saves_keras_model: whether `network` maps L to ab by itself, so that the run also saves it
            whole as `generator.keras` (loadable without any config).
    and implement `compute_losses(inputs, targets, training) -> (values, outputs)`: `values` holds
    each loss name's scalar as this replica's share of the global-batch mean (`losses.global_mean`),
    `outputs` whatever the network returned (for metrics that need predictions).

    Attributes:
        net: the trained network (all its heads).
        network: the network saved as `generator.weights.h5` and transferred downstream (by default
            `net`; the multitask model's is its colour branch).
    """

    loss_names = ()
    optimized = "loss"
    monitor = "val_g_l1"
    color_space = "lab"
    saves_keras_model = False

    def __init__(self, net, loss_names=None, **kwargs):
        super().__init__(**kwargs)
        self.net = net
        if loss_names is not None:
            self.loss_names = tuple(loss_names)
        self.trackers = {name: keras.metrics.Mean(name=name) for name in self.loss_names}

    @property
    def network(self):
        return self.net

    @property
    def metrics(self):
        return list(self.trackers.values())

    @property
    def optimizer_steps(self):
        return int(self.optimizer.iterations.numpy())  # .numpy(): a distributed variable has no int()

    def build(self, input_shape=None):
        """Builds the optimizer's slots, so that a backup restores into a model that never stepped."""
        if self.optimizer is not None and not self.optimizer.built:
            self.optimizer.build(self.net.trainable_variables)
        self.built = True

    def call(self, inputs, training=False):
        return self.net(inputs, training=training)

    def predict_ab(self, gray):
        """Normalized colour (ab, or UV) for the normalized grey input, in inference mode."""
        return self.network(gray, training=False)

    def compute_losses(self, inputs, targets, training):
        raise NotImplementedError

    def update_metrics(self, values, inputs, targets, outputs):
        """Feeds the step's losses (scaled to their global values) to the trackers; returns the logs."""
        for name, tracker in self.trackers.items():
            tracker.update_state(losses.as_global(values[name]))
        return {metric.name: metric.result() for metric in self.metrics}

    @staticmethod
    def unpack(data):
        inputs, targets, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        if sample_weight is not None:
            raise ValueError("colorizers take no sample weights; mark unlabelled mask pixels with the void "
                             "index instead.")
        return inputs, targets

    def train_step(self, data):
        inputs, targets = self.unpack(data)
        with tf.GradientTape() as tape:
            values, outputs = self.compute_losses(inputs, targets, training=True)
            # Loss scaling for float16 (identity otherwise); apply_gradients unscales.
            scaled = self.optimizer.scale_loss(values[self.optimized])
        variables = self.net.trainable_variables
        self.optimizer.apply_gradients(zip(tape.gradient(scaled, variables), variables))
        return self.update_metrics(values, inputs, targets, outputs)

    def test_step(self, data):
        inputs, targets = self.unpack(data)
        values, outputs = self.compute_losses(inputs, targets, training=False)
        return self.update_metrics(values, inputs, targets, outputs)


def learning_rate(config):
    """The run's --lr, constant, or with --lr-schedule cosine decayed to 0 over the run's steps."""
    if config.lr_schedule == "constant":
        return config.lr
    if not config.steps_per_epoch:
        raise ValueError("--lr-schedule cosine decays over the run's steps: give --steps-per-epoch N.")
    return keras.optimizers.schedules.CosineDecay(config.lr, decay_steps=config.epochs * config.steps_per_epoch)


def adam(config):
    """Adam at the run's rate (`learning_rate`) and beta_1, wrapped for loss scaling under mixed_float16."""
    optimizer = keras.optimizers.Adam(learning_rate(config), beta_1=config.beta_1)
    if keras.mixed_precision.global_policy().name == "mixed_float16":
        return keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


def unet_options(config):
    """The U-Net backbone's own options of a run (its skip gating; see `backbones.SkipGate`)."""
    return {"skip_dropout": config.skip_dropout, "no_skips": config.no_skips}


def steps_per_execution(config, steps=None):
    """`--steps-per-execution`, with 0 (auto) resolved: `GPU_STEPS_PER_EXECUTION` on GPUs, 1 on CPUs.

    Keras runs whole executions, so an epoch of `steps` steps that the value does not divide would
    run extra steps (5 steps at 2 a call run 6): auto then takes the largest divisor of `steps` up to
    its value, and an explicit value that does not divide `steps` is refused.
    """
    if config.steps_per_execution:
        if steps and steps % config.steps_per_execution:
            raise ValueError(f"--steps-per-execution {config.steps_per_execution} does not divide the {steps} steps "
                             "of an epoch, so Keras would run extra steps: pass a divisor of the steps per epoch.")
        return config.steps_per_execution
    wanted = GPU_STEPS_PER_EXECUTION if tf.config.list_logical_devices("GPU") else 1
    return max(n for n in range(1, wanted + 1) if not steps or steps % n == 0)


def compiled(config, strategy, make_model, **compile_kwargs):
    """`make_model(synchronized_bn)` built, compiled with Adam and built, in the strategy's scope
    (BatchNorm statistics are synchronized when there are several replicas)."""
    strategy = strategy or tf.distribute.get_strategy()
    with strategy.scope():
        model = make_model(strategy.num_replicas_in_sync > 1)
        model.compile(optimizer=adam(config), jit_compile=config.jit_compile,
                      steps_per_execution=steps_per_execution(config), **compile_kwargs)
        model.build()
    return model


class Colorizer:
    """A trained colorizer as loaded from disk.

    Attributes:
        network: the net whose weights transfer downstream.
        predict_ab: normalized grey input -> normalized colour (L -> ab; Y -> UV for "yuv").
        config: the run's `TrainConfig` (None for a bare `.keras` model).
        pretext: its `registry.Pretext` entry (None for a bare `.keras` model).
        image_size, color_space.
        checkpoint: which weights were loaded (`inference.checkpoint_info`: file, last / best, epoch, SHA-256).
        generator: the Keras model that is `predict_ab` by itself in inference mode (grey in, colour out), what
            `export` writes; None where `predict_ab` decodes the network's output (Zhang's annealed mean).
    """

    def __init__(self, network, predict_ab, config, image_size, color_space="lab", pretext=None,
                 bottleneck="bottleneck_relu", generator=None):
        self.network, self.predict_ab, self.config = network, predict_ab, config
        self.image_size, self.color_space, self.pretext = image_size, color_space, pretext
        self.bottleneck = bottleneck  # the layer `evaluation.bottleneck_health` reads (None: none)
        self.generator = generator
        self.checkpoint = None  # set by `inference.load_colorizer`


def load_network(network, path, config):
    """Loads `path` into `network`, or a one-sentence ValueError that names what was expected."""
    try:
        network.load_weights(path)
    except (ValueError, KeyError) as error:
        raise ValueError(
            f"{path} does not fit a {config.objective} colorizer of image_size={config.image_size}, "
            f"base_filters={config.base_filters}: is it a colorizer's generator weights file? "
            f"({str(error).splitlines()[0][:200]})"
        ) from None
    return network


def regression_colorizer(network, path, config, entry):
    """A `Colorizer` whose network predicts the colour directly (GAN, L1, multitask)."""
    load_network(network, path, config)
    return Colorizer(network, lambda gray: network(gray, training=False), config, config.image_size,
                     entry.color_space, entry, entry.bottleneck, generator=network)
