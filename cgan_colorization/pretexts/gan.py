"""The paper's pretext: the pix2pix colorization cGAN, a thin `PretextModel` holding the generator G
and the discriminator D."""

import tensorflow as tf

from cgan_colorization.networks import losses
from cgan_colorization.networks.models import build_discriminator, build_generator
from cgan_colorization.pretexts.pretext import PretextModel, adam, regression_colorizer, steps_per_execution, unet_options

GAN_METRICS = ("g_loss", "g_gan", "g_l1", "d_loss", "d_real", "d_fake")


class ColorizationGAN(PretextModel):
    """pix2pix training of G: L -> ab against D: (L, ab) -> patch logits.

    One `train_step` runs G once and D twice (on the real and the generated pair) and updates both
    networks from the same forward pass:

        G* = argmin_G max_D  L_cGAN(G, D) + lambda * L_L1(G)
        L_D = (BCE(D(L, ab), 1) + BCE(D(L, G(L)), 0)) / 2
    """

    loss_names = GAN_METRICS
    monitor = "val_g_l1"  # what the best checkpoint minimises
    saves_keras_model = True

    def __init__(self, generator, discriminator, **kwargs):
        super().__init__(generator, **kwargs)
        self.discriminator = discriminator

    @property
    def generator(self):
        return self.net

    @property
    def optimizer_steps(self):
        return int(self.g_optimizer.iterations.numpy())  # .numpy(): a distributed variable has no int()

    def compile(self, g_optimizer, d_optimizer, l1_weight=100.0, **kwargs):
        super().compile(**kwargs)
        if l1_weight < 0:
            raise ValueError(f"l1_weight must be >= 0, received l1_weight={l1_weight!r}.")
        self.g_optimizer = g_optimizer
        self.d_optimizer = d_optimizer
        self.l1_weight = float(l1_weight)

    def build(self, input_shape=None):
        self.generator.build(self.generator.input_shape)
        self.discriminator.build(self.discriminator.input_shape)
        self.g_optimizer.build(self.generator.trainable_variables)
        self.d_optimizer.build(self.discriminator.trainable_variables)
        if self.optimizer is not None and not self.optimizer.built:
            # Keras' default optimizer from `compile()` is unused; built empty, it saves and
            # restores consistently with the two real ones.
            self.optimizer.build([])
        self.built = True

    def compute_losses(self, gray, ab, training):
        batch = losses.global_batch_size(gray)
        fake_ab = self.generator(gray, training=training)
        real_logits = self.discriminator([gray, ab], training=training)
        fake_logits = self.discriminator([gray, fake_ab], training=training)
        g_gan = losses.generator_adversarial_loss(fake_logits, batch)
        g_l1 = losses.l1_loss(ab, fake_ab, batch)
        d_real, d_fake = losses.discriminator_losses(real_logits, fake_logits, batch)
        return {
            "g_loss": g_gan + self.l1_weight * g_l1, "g_gan": g_gan, "g_l1": g_l1,
            "d_loss": 0.5 * (d_real + d_fake), "d_real": d_real, "d_fake": d_fake,
        }, fake_ab

    def train_step(self, data):
        gray, ab = self.unpack(data)
        with tf.GradientTape() as g_tape, tf.GradientTape() as d_tape:
            values, fake_ab = self.compute_losses(gray, ab, training=True)
            # Loss scaling for float16 (identity otherwise); apply_gradients unscales.
            g_scaled = self.g_optimizer.scale_loss(values["g_loss"])
            d_scaled = self.d_optimizer.scale_loss(values["d_loss"])
        g_vars = self.generator.trainable_variables
        d_vars = self.discriminator.trainable_variables
        self.g_optimizer.apply_gradients(zip(g_tape.gradient(g_scaled, g_vars), g_vars))
        self.d_optimizer.apply_gradients(zip(d_tape.gradient(d_scaled, d_vars), d_vars))
        return self.update_metrics(values, gray, ab, fake_ab)


def build(config, strategy=None, train_ds=None, run_dir=None, dropout_rate=0.5):
    """G, D and their Adam optimizers, built in the strategy's scope, compiled and built (so that a
    backup can be restored into them). With several replicas, BatchNorm statistics are synchronized."""
    strategy = strategy or tf.distribute.get_strategy()
    sync = strategy.num_replicas_in_sync > 1
    with strategy.scope():
        gan = ColorizationGAN(
            build_generator(config.image_size, config.base_filters, synchronized_bn=sync,
                            dropout_rate=dropout_rate, **unet_options(config)),
            build_discriminator(config.image_size, config.base_filters, synchronized_bn=sync),
        )
        gan.compile(g_optimizer=adam(config), d_optimizer=adam(config), l1_weight=config.l1_weight,
                    jit_compile=config.jit_compile, steps_per_execution=steps_per_execution(config))
        gan.build()
    return gan


def load(entry, config, run_dir, weights, inference_dropout=False):
    """The trained generator (L -> ab) of a GAN (or L1) run."""
    network = build_generator(config.image_size, config.base_filters, inference_dropout=inference_dropout,
                              **unet_options(config))
    return regression_colorizer(network, weights, config, entry)
