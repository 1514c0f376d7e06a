"""The cGAN objective of pix2pix (Isola et al. 2017), as pure functions.

Each function returns a scalar averaged over the *global* batch (`tf.nn.compute_average_loss`), so a
replica's gradient is its share of the global mean and `tf.distribute` sums the shares correctly.
On one device this is the plain mean.
"""

import tensorflow as tf


def _per_example(x):
    """Mean over every axis but the batch axis."""
    return tf.reduce_mean(tf.reshape(x, [tf.shape(x)[0], -1]), axis=-1)


def _bce_with_logits(logits, target_value):
    labels = tf.fill(tf.shape(logits), tf.cast(target_value, logits.dtype))
    return tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits)


def num_replicas():
    """Replicas of the current `tf.distribute` strategy (1 outside any)."""
    return tf.distribute.get_strategy().num_replicas_in_sync


def global_batch_size(batch):
    """This replica's batch size times the replicas: the denominator of a global mean."""
    return tf.shape(batch)[0] * num_replicas()


def as_global(share):
    """A replica's share of a global mean, scaled to the global value (what metric trackers, which
    average over replicas, should be given)."""
    return share * num_replicas()


def replica_share(replica_mean):
    """A loss already averaged over this replica's batch (a Keras loss with "sum_over_batch_size"),
    divided by the replicas, as Keras does for its own losses: the shares sum to the mean of the
    replicas' means."""
    return replica_mean / tf.cast(num_replicas(), replica_mean.dtype)


def global_mean(per_example_loss, global_batch_size=None):
    """Sum of per-example losses divided by the global batch size."""
    return tf.nn.compute_average_loss(per_example_loss, global_batch_size=global_batch_size)


def generator_adversarial_loss(fake_logits, global_batch_size=None):
    """BCE of D's patches on the generated pair against 'real': G wants D fooled."""
    return global_mean(_per_example(_bce_with_logits(fake_logits, 1.0)), global_batch_size)


def l1_loss(target_ab, generated_ab, global_batch_size=None):
    """Mean absolute error between the true and the generated ab channels."""
    return global_mean(_per_example(tf.abs(target_ab - generated_ab)), global_batch_size)


def discriminator_losses(real_logits, fake_logits, global_batch_size=None):
    """BCE(real patches, 1) and BCE(fake patches, 0); D's loss is their sum halved."""
    real = global_mean(_per_example(_bce_with_logits(real_logits, 1.0)), global_batch_size)
    fake = global_mean(_per_example(_bce_with_logits(fake_logits, 0.0)), global_batch_size)
    return real, fake
