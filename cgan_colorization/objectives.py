"""Pretext objectives besides the paper's GAN, on the same U-Net and the same training loop:
L1 regression alone (the ablation the paper lacks) and Zhang et al.'s classification over
quantized ab with class rebalancing. Each model exposes `network` (saved and transferred) and
`predict_ab` (used by samples, evaluation and colorize.py)."""

import keras
import tensorflow as tf

from cgan_colorization import losses

ZHANG_STATS_FILE = "zhang_stats.json"  # bins, smoothed prior and rebalancing weights, beside the weights


class L1Colorizer(keras.Model):
    """The generator trained with L1 on ab alone, no discriminator."""

    monitor = "val_g_l1"

    def __init__(self, generator, **kwargs):
        super().__init__(**kwargs)
        self.generator = generator
        self.tracker = keras.metrics.Mean(name="g_l1")

    @property
    def network(self):
        return self.generator

    @property
    def metrics(self):
        return [self.tracker]

    def build(self, input_shape=None):
        self.optimizer.build(self.generator.trainable_variables)  # so a backup can be restored
        self.built = True

    def predict_ab(self, gray):
        return self.generator(gray, training=False)

    def call(self, gray, training=False):
        return self.generator(gray, training=training)

    def _l1(self, gray, ab, training):
        return losses.l1_loss(ab, self.generator(gray, training=training), losses.global_batch_size(gray))

    def train_step(self, data):
        gray, ab = data
        with tf.GradientTape() as tape:
            loss = self._l1(gray, ab, training=True)
            scaled = self.optimizer.scale_loss(loss)
        variables = self.generator.trainable_variables
        self.optimizer.apply_gradients(zip(tape.gradient(scaled, variables), variables))
        self.tracker.update_state(losses.as_global(loss))
        return {"g_l1": self.tracker.result()}

    def test_step(self, data):
        gray, ab = data
        self.tracker.update_state(losses.as_global(self._l1(gray, ab, training=False)))
        return {"g_l1": self.tracker.result()}


class ClassificationColorizer(keras.Model):
    """Zhang et al. 2016: per-pixel logits over Q in-gamut ab bins, trained with class-rebalanced
    cross-entropy against soft-encoded targets, decoded by the annealed mean."""

    monitor = "val_ce"

    def __init__(self, logits_net, bins, weights, temperature=0.38, k=5, sigma=5.0, global_batch_size=None,
                 **kwargs):
        super().__init__(**kwargs)
        from cgan_colorization import zhang

        self.logits_net = logits_net
        self.bins = tf.constant(bins, tf.float32)
        self.temperature = temperature
        self.loss_fn = zhang.class_rebalanced_loss(bins, weights, k=k, sigma=sigma,
                                                   global_batch_size=global_batch_size)
        self.ce_tracker = keras.metrics.Mean(name="ce")
        self.l1_tracker = keras.metrics.Mean(name="g_l1")

    @property
    def network(self):
        return self.logits_net

    @property
    def metrics(self):
        return [self.ce_tracker, self.l1_tracker]

    def build(self, input_shape=None):
        self.optimizer.build(self.logits_net.trainable_variables)
        self.built = True

    def predict_ab(self, gray):
        from cgan_colorization import zhang

        return zhang.annealed_mean(self.logits_net(gray, training=False), self.bins, self.temperature)

    def call(self, gray, training=False):
        return self.logits_net(gray, training=training)

    def _track(self, gray, ab, loss):
        self.ce_tracker.update_state(losses.as_global(loss))
        self.l1_tracker.update_state(tf.reduce_mean(tf.abs(self.predict_ab(gray) - ab)))
        return {"ce": self.ce_tracker.result(), "g_l1": self.l1_tracker.result()}

    def train_step(self, data):
        gray, ab = data
        with tf.GradientTape() as tape:
            loss = self.loss_fn(ab, self.logits_net(gray, training=True))
            scaled = self.optimizer.scale_loss(loss)
        variables = self.logits_net.trainable_variables
        self.optimizer.apply_gradients(zip(tape.gradient(scaled, variables), variables))
        return self._track(gray, ab, loss)

    def test_step(self, data):
        gray, ab = data
        return self._track(gray, ab, self.loss_fn(ab, self.logits_net(gray, training=False)))
