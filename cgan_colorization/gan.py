"""The colorization cGAN as a thin `keras.Model` holding the generator G and the discriminator D."""

import keras
import tensorflow as tf

from cgan_colorization import losses

GAN_METRICS = ("g_loss", "g_gan", "g_l1", "d_loss", "d_real", "d_fake")


class ColorizationGAN(keras.Model):
    """pix2pix training of G: L -> ab against D: (L, ab) -> patch logits.

    One `train_step` runs G once and D twice (on the real and the generated pair) and updates both
    networks from the same forward pass:

        G* = argmin_G max_D  L_cGAN(G, D) + lambda * L_L1(G)
        L_D = (BCE(D(L, ab), 1) + BCE(D(L, G(L)), 0)) / 2
    """

    def __init__(self, generator, discriminator, **kwargs):
        super().__init__(**kwargs)
        self.generator = generator
        self.discriminator = discriminator
        self.trackers = {name: keras.metrics.Mean(name=name) for name in GAN_METRICS}

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

    monitor = "val_g_l1"  # what the best checkpoint minimises

    @property
    def network(self):
        """The net saved as `generator.weights.h5` and transferred downstream."""
        return self.generator

    def predict_ab(self, gray):
        """Normalized ab for normalized L, in inference mode."""
        return self.generator(gray, training=False)

    def call(self, gray, training=False):
        return self.generator(gray, training=training)

    @property
    def metrics(self):
        return list(self.trackers.values())

    def compute_gan_losses(self, gray, ab, training):
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
        }

    def _update_trackers(self, values):
        for name, tracker in self.trackers.items():
            tracker.update_state(losses.as_global(values[name]))
        return {name: tracker.result() for name, tracker in self.trackers.items()}

    def train_step(self, data):
        gray, ab = data
        with tf.GradientTape() as g_tape, tf.GradientTape() as d_tape:
            values = self.compute_gan_losses(gray, ab, training=True)
            # Loss scaling for float16 (identity otherwise); apply_gradients unscales.
            g_scaled = self.g_optimizer.scale_loss(values["g_loss"])
            d_scaled = self.d_optimizer.scale_loss(values["d_loss"])
        g_vars = self.generator.trainable_variables
        d_vars = self.discriminator.trainable_variables
        self.g_optimizer.apply_gradients(zip(g_tape.gradient(g_scaled, g_vars), g_vars))
        self.d_optimizer.apply_gradients(zip(d_tape.gradient(d_scaled, d_vars), d_vars))
        return self._update_trackers(values)

    def test_step(self, data):
        gray, ab = data
        return self._update_trackers(self.compute_gan_losses(gray, ab, training=False))
