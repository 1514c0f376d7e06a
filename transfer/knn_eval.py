"""kNN evaluation: top-1 accuracy of a weighted k-nearest-neighbour classifier on frozen features
(Wu, Xiong, Yu, Lin, "Unsupervised Feature Learning via Non-Parametric Instance Discrimination", CVPR
2018), the protocol DINO (Caron et al., ICCV 2021) and solo-learn report beside linear evaluation.

Every feature row is L2-normalized, so a query's similarity to a bank image is their cosine; the k most
similar bank images vote for their classes, each with weight exp(s / T), and the class with the largest
summed vote is the prediction. Nothing is trained and nothing is searched (k = 20, T = 0.07 as DINO), so
the score is deterministic and cheap; it says how the classes cluster under the cosine, where the
linear probe (`linear_eval`) says how linearly they separate.

Cost, measured on this project's 2-core CPU (TensorFlow 2.21, oneDNN on): one `knn_top1` call with the
defaults on random float32 features, a 48,480 x 2,048 bank against 5,058 queries, 202 classes, took
11-17 s of CPU time, 10-32 s of wall time with another training job sharing the cores (the
[5,058 x 48,480] cosines, ~1 TFLOP, are nearly all of it), and ~0.35 GB of memory at its peak beyond
its inputs: the bank is read 8,192 rows at a time and never copied whole. The time grows linearly in
bank images x queries x values.
"""

import numpy as np
import tensorflow as tf

from transfer.config import KNN_K, KNN_TEMPERATURE
from transfer.linear_eval import _check_features, _check_labels, _check_positive
from transfer.metrics import top_k_accuracy

__all__ = ["KNN_K", "KNN_TEMPERATURE", "BATCH_SIZE", "knn_votes", "knn_top1"]

BATCH_SIZE = 512  # queries at a time
_BANK_BLOCK = 8192  # bank images at a time: with 512 queries, a 16 MB block of cosines


def _inverse_norms(x, split):
    """1 / the L2 norm of every row (rows of norm 0 stay 0), a bounded block at a time."""
    norms = np.concatenate([np.linalg.norm(x[start:start + _BANK_BLOCK].astype(np.float32), axis=1)
                            for start in range(0, len(x), _BANK_BLOCK)])
    if not np.isfinite(norms).all():
        raise ValueError(f"{split} features must be finite, received {np.count_nonzero(~np.isfinite(norms))} "
                         f"rows with NaN or inf.")
    return 1.0 / np.maximum(norms, 1e-12)


def _check_settings(k, temperature, batch_size, bank_size):
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer, received {k!r}.")
    if k > bank_size:
        raise ValueError(f"k must be at most the bank's {bank_size} images, received {k}.")
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float, np.number)) \
            or not 0 < temperature < np.inf:
        raise ValueError(f"the temperature must be a positive number, received {temperature!r}.")
    _check_positive("batch_size", batch_size)


def _normalized(x, scale, start, stop):
    return tf.constant(x[start:stop].astype(np.float32) * scale[start:stop, None])


def _nearest_neighbours(x_bank, y_bank, x_query, k, batch_size=BATCH_SIZE):
    """(cosines [num_queries, k] float32, class ids [num_queries, k] int32) of every query's k nearest
    bank images, nearest first (ties to the earlier bank image), as one top-k over the whole bank.

    The bank is read `_BANK_BLOCK` rows at a time and the queries `batch_size` at a time; each block's
    k nearest are merged into the running k nearest, so memory holds the normalized queries, one block
    of the bank (never a copy of all of it) and one [batch_size, block] array of cosines.
    """
    bank_scale, query_scale = _inverse_norms(x_bank, "bank"), _inverse_norms(x_query, "query")
    queries = [_normalized(x_query, query_scale, start, start + batch_size)
               for start in range(0, len(x_query), batch_size)]
    nearest, classes = [None] * len(queries), [None] * len(queries)
    for start in range(0, len(x_bank), _BANK_BLOCK):
        block = _normalized(x_bank, bank_scale, start, start + _BANK_BLOCK)
        block_classes = tf.constant(y_bank[start:start + _BANK_BLOCK].astype(np.int32))
        for i, query in enumerate(queries):
            cosines, index = tf.math.top_k(tf.matmul(query, block, transpose_b=True), min(k, len(block_classes)))
            labels = tf.gather(block_classes, index)
            if nearest[i] is not None:  # merge: the running k first, so ties keep the earlier bank image
                cosines, labels = tf.concat([nearest[i], cosines], 1), tf.concat([classes[i], labels], 1)
                cosines, index = tf.math.top_k(cosines, min(k, int(cosines.shape[1])))
                labels = tf.gather(labels, index, batch_dims=1)
            nearest[i], classes[i] = cosines, labels
    return (np.concatenate([c.numpy() for c in nearest]).astype(np.float32),
            np.concatenate([c.numpy() for c in classes]))


def _checked(x_bank, y_bank, x_query, num_classes, k, temperature, batch_size):
    x_bank = _check_features(x_bank, "bank")
    _check_positive("num_classes", num_classes, 2)
    y_bank = _check_labels(y_bank, len(x_bank), num_classes, "bank")
    x_query = _check_features(x_query, "query", x_bank.shape[1])
    _check_settings(k, temperature, batch_size, len(x_bank))
    return x_bank, y_bank, x_query


def _votes(x_bank, y_bank, x_query, num_classes, k, temperature, batch_size):
    cosines, classes = _nearest_neighbours(x_bank, y_bank, x_query, k, batch_size)
    weights = np.exp((cosines - cosines[:, :1]) / np.float32(temperature))
    votes = np.zeros((len(x_query), num_classes), np.float32)
    np.add.at(votes, (np.repeat(np.arange(len(x_query)), k), classes.ravel()), weights.ravel())
    return votes


def knn_votes(x_bank, y_bank, x_query, num_classes, k=KNN_K, temperature=KNN_TEMPERATURE, batch_size=BATCH_SIZE):
    """The summed votes [num_queries, num_classes] float32 of every query's k nearest bank images.

    A neighbour at cosine s votes for its class with weight exp((s - s_max) / temperature), s_max
    being the query's nearest cosine: DINO's exp(s / T) times one factor per query, which changes no
    ranking of that query's votes and keeps them finite at any temperature. Inputs are checked as in
    `knn_top1`.
    """
    x_bank, y_bank, x_query = _checked(x_bank, y_bank, x_query, num_classes, k, temperature, batch_size)
    return _votes(x_bank, y_bank, x_query, num_classes, k, temperature, batch_size)


def knn_top1(x_bank, y_bank, x_query, y_query, num_classes, k=KNN_K, temperature=KNN_TEMPERATURE,
             batch_size=BATCH_SIZE):
    """Top-1 (and top-5) of the weighted kNN classifier whose bank is (x_bank, y_bank), on the queries.

    Each query's k most cosine-similar bank images vote for their classes with weight exp(s / T); its
    prediction is the class with the largest summed vote (ties to the smaller class id). Memory beyond
    the inputs is bounded whatever the bank's size (see `_nearest_neighbours`).

    Args:
        x_bank, x_query: features [N, D] (float16 or float32) of the bank (labelled training) and query
            images; L2-normalized here, whatever their scale.
        y_bank, y_query: their integer class ids [N] in [0, num_classes).
        k: neighbours that vote, at most the bank's size.
        temperature: T of the weights exp(s / T); small T lets the nearest neighbours dominate.
        batch_size: queries at a time.

    Returns:
        A JSON-serializable dict: {"top1", "top5": accuracies on the queries (top-5 ranks the summed
        votes; with fewer than 5 classes voted for, ties among the rest go to the smaller class id),
        "k", "temperature", "dim", "num_classes", "num_bank", "num_query"}.
    """
    x_bank, y_bank, x_query = _checked(x_bank, y_bank, x_query, num_classes, k, temperature, batch_size)
    y_query = _check_labels(y_query, len(x_query), num_classes, "query")
    votes = _votes(x_bank, y_bank, x_query, num_classes, k, temperature, batch_size)
    return {
        "top1": top_k_accuracy(y_query, votes, 1),
        "top5": top_k_accuracy(y_query, votes, 5),
        "k": int(k),
        "temperature": float(temperature),
        "dim": int(x_query.shape[1]),
        "num_classes": int(num_classes),
        "num_bank": len(x_bank),
        "num_query": len(x_query),
    }
