"""Zhang et al. 2016's pretext, colorization as classification, on the project's pix2pix U-Net: Q
logits per pixel over the in-gamut ab bins, class-rebalanced soft cross-entropy, annealed-mean
decoding (the colour maths is in `zhang.py`)."""

import os

import keras
import numpy as np
import tensorflow as tf

from cgan_colorization.networks import losses
from cgan_colorization.networks.backbones import DROPOUT_RATE, unet_backbone, upsample_head
from cgan_colorization.pretexts import zhang
from cgan_colorization.pretexts.pretext import Colorizer, PretextModel, compiled, load_network, unet_options

ZHANG_STATS_FILE = "zhang_stats.json"  # bins, smoothed prior and rebalancing weights, beside the weights


def build_classification_generator(image_size=256, base_filters=64, num_bins=None, seed=None,
                                   in_channels=1, inference_dropout=False, synchronized_bn=False,
                                   dropout_rate=DROPOUT_RATE, skip_dropout=0.0, no_skips=False):
    """The U-Net backbone with Q logits per pixel instead of tanh ab.

    Encoder and decoder keep the names (`enc*`, `bottleneck*`, `dec*`) and shapes of the regression
    generator, so weights move to the downstream models by name. The head is
    Conv2DTranspose(Q, 4, stride 2) named `output_logits_deconv`, float32, no activation.
    `num_bins` defaults to `zhang.gamut_bin_count()`.
    """
    if num_bins is None:
        num_bins = zhang.gamut_bin_count()
    if not isinstance(num_bins, (int, np.integer)) or num_bins < 2:
        raise ValueError(f"num_bins must be an int >= 2, received num_bins={num_bins!r}.")
    features = unet_backbone(image_size, base_filters, seed=seed, synchronized_bn=synchronized_bn,
                             dropout_rate=dropout_rate, inference_dropout=inference_dropout, in_channels=in_channels,
                             skip_dropout=skip_dropout, no_skips=no_skips)
    logits = upsample_head(features.decoded, int(num_bins), "output_logits", seed=seed)
    return keras.Model(features.inputs, logits, name="classification_generator")


class ClassificationColorizer(PretextModel):
    """Per-pixel logits over Q in-gamut ab bins, trained with class-rebalanced cross-entropy against
    soft-encoded targets (`ce`), decoded by the annealed mean; `g_l1` logs the decoded colour's L1
    error of each step's logits, for comparison with the regression pretexts."""

    loss_names = ("ce", "g_l1")
    optimized = "ce"
    monitor = "val_ce"

    def __init__(self, logits_net, bins, weights, temperature=zhang.TEMPERATURE, k=zhang.SOFT_K,
                 sigma=zhang.SIGMA, global_batch_size=None, **kwargs):
        super().__init__(logits_net, **kwargs)
        self.bins = tf.constant(bins, tf.float32)
        self.temperature = temperature
        self.loss_fn = zhang.class_rebalanced_loss(bins, weights, k=k, sigma=sigma,
                                                   global_batch_size=global_batch_size)

    @property
    def logits_net(self):
        return self.net

    def predict_ab(self, gray):
        return zhang.annealed_mean(self.net(gray, training=False), self.bins, self.temperature)

    def compute_losses(self, gray, ab, training):
        logits = self.net(gray, training=training)
        return {"ce": self.loss_fn(ab, logits)}, logits

    def update_metrics(self, values, gray, ab, outputs):
        # The error of the step's own logits, decoded (not part of the objective): in training mode
        # before the update, as the GAN's g_l1, and in inference mode in validation; no second pass.
        decoded = zhang.annealed_mean(tf.cast(outputs, tf.float32), self.bins, self.temperature)
        values = dict(values, g_l1=tf.reduce_mean(tf.abs(decoded - ab)) / losses.num_replicas())
        return super().update_metrics(values, gray, ab, outputs)


def zhang_stats(config, train_ds=None, run_dir=None):
    """(bins, weights): read back from the run folder's `zhang_stats.json`, or estimated in one
    streaming pass over `config.prior_batches` training batches and saved there."""
    path = os.path.join(run_dir, ZHANG_STATS_FILE) if run_dir else None
    if path and os.path.isfile(path):
        stats = zhang.load_zhang_stats(path)
        return stats.bins, stats.weights
    bins = zhang.ab_gamut_bins()
    print(f"Estimating the ab prior of the training data over {config.prior_batches} batches.")
    prior = zhang.ab_prior(train_ds, bins, max_batches=config.prior_batches, verbose=True)
    weights = zhang.rebalancing_weights(prior)
    if path:
        zhang.save_zhang_stats(path, bins, prior, weights, num_bins=len(bins),
                               paper_num_bins=zhang.PAPER_NUM_BINS, prior_batches=config.prior_batches)
    return bins, weights


def build(config, strategy=None, train_ds=None, run_dir=None):
    """Zhang et al.'s colorizer, compiled and built; the ab prior comes from `zhang_stats`."""
    bins, weights = zhang_stats(config, train_ds, run_dir)
    replicas = (strategy or tf.distribute.get_strategy()).num_replicas_in_sync
    return compiled(config, strategy, lambda sync: ClassificationColorizer(
        build_classification_generator(config.image_size, config.base_filters, len(bins), synchronized_bn=sync,
                                       **unet_options(config)),
        bins, weights, config.temperature, global_batch_size=config.batch_size if replicas > 1 else None))


def load(entry, config, run_dir, weights, inference_dropout=False):
    """The logits network, decoded by the annealed mean at the run's temperature."""
    bins = zhang.load_zhang_stats(os.path.join(run_dir, ZHANG_STATS_FILE)).bins
    network = load_network(build_classification_generator(config.image_size, config.base_filters, len(bins),
                                                          inference_dropout=inference_dropout, **unet_options(config)),
                           weights, config)
    bins_t = tf.constant(bins, tf.float32)
    return Colorizer(network, lambda g: zhang.annealed_mean(network(g, training=False), bins_t, config.temperature),
                     config, config.image_size, entry.color_space, entry, entry.bottleneck)
