"""Colorization as classification over quantized ab (Zhang, Isola & Efros 2016, "Colorful Image
Colorization"): the ab bins, the soft encoding, the prior, the rebalanced loss and the annealed
mean. The pretext that trains with them is `classification.py`.

The ab plane is cut into a grid of 10 x 10 cells centred on multiples of 10; a cell becomes a class
("bin") when some sRGB colour, at some lightness, has its ab inside the cell. Each target pixel is
soft-encoded over its 5 nearest bins with a Gaussian (sigma 5); the per-pixel cross-entropy is
weighted by the rarity of the pixel's nearest bin, w = ((1 - lambda) p + lambda / Q)^-1 with p the
smoothed ab prior of the training set, normalized so that E_p[w] = 1; predictions are decoded with
the annealed mean at temperature T = 0.38.

Units: the model's ab is normalized, ab_lab / 128 (`color.AB_SCALE`); bin centres, sigma and the
prior live in Lab ab units. Functions taking `ab` take it normalized and scale it inside.

Q. The paper keeps Q = 313 bins. The exact cell test here (below) keeps 262 (`SRGB_GAMUT_BINS`),
every one of them among the paper's 313 (a -90..100, b -110..90, the same extent). The other 51 of
the paper's bins lie on the rim of the gamut, and their 10 x 10 cells hold no sRGB colour at any L:
the paper's set is looser, close to the grid points within one grid step (L-infinity) of an sRGB
colour, which are 307 bins, all among its 313. A pixel of a real sRGB photo always falls in one
of the 262 cells, so it is never more than 5 * sqrt(2) from its nearest bin; the extra rim bins
would only be classes that no sRGB target ever takes.
"""

import itertools
import json
import os
from typing import NamedTuple

import keras
import numpy as np
import tensorflow as tf

from cgan_colorization.constants import ZHANG_SIGMA as SIGMA
from cgan_colorization.constants import ZHANG_SOFT_K as SOFT_K
from cgan_colorization.constants import ZHANG_TEMPERATURE as TEMPERATURE
from data import color

GRID = 10.0  # ab cell size, Lab units
PAPER_NUM_BINS = 313  # Q of the paper
SRGB_GAMUT_BINS = 262  # Q that `ab_gamut_bins()` returns with its defaults (checked by the tests)
LAMBDA = 0.5  # mixing weight of the uniform distribution in the rebalancing
STATS_FORMAT = "zhang-ab-stats/1"

_GAMUT_EXTENT = 140.0  # |a|, |b| searched; sRGB reaches about a in [-87, 99], b in [-108, 95]
_GAMUT_TOLERANCE = 1e-9  # XYZ units; "in gamut" means linear RGB in [-tol, 1 + tol]


def _f_inverse(f):
    """Inverse of the Lab companding function, as in `color.lab_to_rgb` (numpy, float64)."""
    threshold = 6.0 / 29.0
    return np.where(f > threshold, f * f * f, (f - 16.0 / 116.0) / color._KAPPA)


def ab_gamut_bins(grid=GRID, l_steps=1000):
    """Centres [Q, 2] (Lab ab units, float32) of the grid cells that hold an sRGB colour.

    A cell [a - grid/2, a + grid/2] x [b - grid/2, b + grid/2], centred on multiples of `grid`, is
    kept when, for at least one of `l_steps` lightnesses evenly spread over (0, 100), some ab in the
    cell converts (Lab -> XYZ -> linear sRGB, unclipped, with the constants of `color.lab_to_rgb`) to
    linear RGB inside [0, 1]^3 (up to 1e-9).

    The test is exact for each sampled L, not a sampling of the cell: at a fixed L, X depends on a
    alone and Z on b alone (both monotonically), so the cell is a rectangle in the (X, Z) plane,
    and the in-gamut colours of that L are a convex polygon there (the slice Y = Y(L) of the RGB
    cube). The two are tested for overlap with the separating-axis theorem on the five directions
    that bound them. Rows are sorted by a, then b. Pure and deterministic; ~0.1 s.
    """
    if grid <= 0:
        raise ValueError(f"grid must be > 0, received grid={grid!r}.")
    if not isinstance(l_steps, (int, np.integer)) or l_steps < 1:
        raise ValueError(f"l_steps must be an int >= 1, received l_steps={l_steps!r}.")
    xyz_from_rgb = np.array(color._XYZ_FROM_RGB, dtype=np.float64)
    rgb_from_xyz = np.array(color._RGB_FROM_XYZ, dtype=np.float64)
    white = np.array(color._D65_WHITE, dtype=np.float64)

    lightness = (np.arange(l_steps, dtype=np.float64) + 0.5) * (100.0 / l_steps)
    fy = (lightness + 16.0) / 116.0
    y = _f_inverse(fy) * white[1]  # [nL]

    # The slice polygon at Y = y: where the 12 edges of the linear-RGB cube cross that plane.
    starts, axes = [], []
    for axis in range(3):
        others = [i for i in range(3) if i != axis]
        for u, v in itertools.product((0.0, 1.0), repeat=2):
            start = np.zeros(3)
            start[others] = (u, v)
            starts.append(start)
            axes.append(axis)
    starts, axes = np.array(starts), np.array(axes)  # [12, 3], [12]
    slope = xyz_from_rgb[1, axes]  # dY/dt along each edge
    t = (y[:, None] - starts @ xyz_from_rgb[1]) / slope  # [nL, 12]
    valid = (t >= 0.0) & (t <= 1.0)
    xz_start = starts @ xyz_from_rgb[[0, 2]].T  # [12, 2]
    xz_dir = xyz_from_rgb[[0, 2]][:, axes].T  # [12, 2]
    vertices = xz_start + t[..., None] * xz_dir  # [nL, 12, 2]

    # Cell rectangles in (X, Z) at each L.
    half = int(np.ceil(_GAMUT_EXTENT / grid))
    centres = np.arange(-half, half + 1, dtype=np.float64) * grid
    x_lo = _f_inverse(fy[:, None] + (centres - grid / 2) / 500.0) * white[0]  # [nL, n]
    x_hi = _f_inverse(fy[:, None] + (centres + grid / 2) / 500.0) * white[0]
    z_lo = _f_inverse(fy[:, None] - (centres + grid / 2) / 200.0) * white[2]  # b up -> Z down
    z_hi = _f_inverse(fy[:, None] - (centres - grid / 2) / 200.0) * white[2]

    # Separating axes: the rectangle's (X, Z) and the polygon's edge normals (cube faces).
    directions = [(1.0, 0.0), (0.0, 1.0)] + [(row[0], row[2]) for row in rgb_from_xyz]
    overlap = np.ones((l_steps, centres.size, centres.size), dtype=bool)
    for n1, n2 in directions:
        projected = vertices @ np.array([n1, n2])  # [nL, 12]
        poly_min = np.where(valid, projected, np.inf).min(axis=1)[:, None, None]
        poly_max = np.where(valid, projected, -np.inf).max(axis=1)[:, None, None]
        rect_min = (np.minimum(n1 * x_lo, n1 * x_hi)[:, :, None]
                    + np.minimum(n2 * z_lo, n2 * z_hi)[:, None, :])
        rect_max = (np.maximum(n1 * x_lo, n1 * x_hi)[:, :, None]
                    + np.maximum(n2 * z_lo, n2 * z_hi)[:, None, :])
        overlap &= (rect_max >= poly_min - _GAMUT_TOLERANCE) & (rect_min <= poly_max + _GAMUT_TOLERANCE)
    keep = overlap.any(axis=0)  # [n_a, n_b]
    if keep[0].any() or keep[-1].any() or keep[:, 0].any() or keep[:, -1].any():
        raise AssertionError("the sRGB gamut reached the edge of the searched ab square")
    ia, ib = np.nonzero(keep)  # row-major: sorted by a, then b
    return np.stack([centres[ia], centres[ib]], axis=-1).astype(np.float32)


def gamut_bin_count(grid=GRID, l_steps=1000):
    """Q, the number of in-gamut ab bins (262 with the defaults; the paper has 313)."""
    return int(ab_gamut_bins(grid, l_steps).shape[0])


def _bins_tensor(bins):
    bins = tf.convert_to_tensor(bins)
    if bins.shape.rank != 2 or bins.shape[-1] != 2:
        raise ValueError(f"bins must have shape [Q, 2], received shape {bins.shape}.")
    return tf.cast(bins, tf.float32)


def _squared_distances(ab_lab, bins):
    """[..., Q] squared distances from ab (Lab units, [..., 2]) to the bin centres ([Q, 2])."""
    da = ab_lab[..., 0:1] - bins[:, 0]
    db = ab_lab[..., 1:2] - bins[:, 1]
    return da * da + db * db


def _nearest_bins(ab, bins, k, sigma):
    """Indices [..., k] of the k nearest bins (nearest first) to normalized ab [..., 2] and their
    Gaussian weights [..., k] (summing to 1), computed in Lab units."""
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be an int >= 1, received k={k!r}.")
    if sigma <= 0:
        raise ValueError(f"sigma must be > 0, received sigma={sigma!r}.")
    bins = _bins_tensor(bins)
    num_bins = bins.shape[0]
    if num_bins is not None and k > num_bins:
        raise ValueError(f"k={k} exceeds the number of bins, {num_bins}.")
    ab_lab = tf.cast(tf.convert_to_tensor(ab), tf.float32) * color.AB_SCALE
    neg_d2, indices = tf.math.top_k(-_squared_distances(ab_lab, bins), k=k, sorted=True)
    # exp(-d^2 / 2 sigma^2) normalized over the k bins; the softmax form never underflows to 0/0.
    weights = tf.nn.softmax(neg_d2 / (2.0 * sigma * sigma), axis=-1)
    return indices, weights


def soft_encode(ab, bins, k=SOFT_K, sigma=SIGMA):
    """Soft targets [..., Q] for normalized ab [..., 2] (ab_lab / 128).

    Gaussian weights exp(-d^2 / 2 sigma^2) (d in Lab units) on the k nearest bins, zero elsewhere,
    each row summing to 1. Pure TF: works eagerly, in `tf.data`, in `tf.function` and under XLA.
    """
    bins = _bins_tensor(bins)
    num_bins = tf.shape(bins)[0]
    indices, weights = _nearest_bins(ab, bins, k, sigma)
    target = 0.0
    for j in range(k):  # k one-hots of [..., Q], never a [..., k, Q] tensor
        target += tf.one_hot(indices[..., j], num_bins, dtype=tf.float32) * weights[..., j:j + 1]
    return target


def nearest_bin(ab, bins):
    """Index [...] (int32) of the nearest bin to normalized ab [..., 2]."""
    bins = _bins_tensor(bins)
    ab_lab = tf.cast(tf.convert_to_tensor(ab), tf.float32) * color.AB_SCALE
    return tf.argmin(_squared_distances(ab_lab, bins), axis=-1, output_type=tf.int32)


@tf.function(reduce_retracing=True)
def _count_nearest(ab, bins):
    """Histogram [Q] (int64) of the nearest bins of normalized ab [N, 2]."""
    num_bins = tf.shape(bins)[0]
    return tf.math.bincount(nearest_bin(ab, bins), minlength=num_bins, maxlength=num_bins,
                            dtype=tf.int64)


def _batch_ab(element):
    if isinstance(element, dict):
        return element["ab"]
    if isinstance(element, (tuple, list)):
        if len(element) < 2:
            raise ValueError("ab_prior expects (L, ab) pairs, or ab alone, from the dataset.")
        return element[1]
    return element


def smooth_prior(counts, bins, sigma=SIGMA):
    """Normalizes `counts` [Q] and spreads each bin's mass over the bins with a Gaussian of
    `sigma` (Lab units) in ab space; every bin's mass is conserved (the kernel's columns sum to
    1), so the result sums to 1. sigma=0 only normalizes."""
    counts = np.asarray(counts, dtype=np.float64)
    bins = np.asarray(bins, dtype=np.float64)
    if counts.shape != (bins.shape[0],):
        raise ValueError(f"counts must have shape [{bins.shape[0]}], received {counts.shape}.")
    if np.any(counts < 0) or not np.isfinite(counts).all() or counts.sum() <= 0:
        raise ValueError("counts must be finite, non-negative and not all zero.")
    if sigma < 0:
        raise ValueError(f"sigma must be >= 0, received sigma={sigma!r}.")
    prior = counts / counts.sum()
    if sigma > 0:
        d2 = ((bins[:, None, :] - bins[None, :, :]) ** 2).sum(-1)
        kernel = np.exp(-d2 / (2.0 * sigma * sigma))
        kernel /= kernel.sum(axis=0, keepdims=True)  # column r: where bin r's mass goes
        prior = kernel @ prior
    return prior / prior.sum()


def ab_prior(dataset, bins, sigma=SIGMA, max_batches=None, chunk_pixels=32768, verbose=False):
    """The smoothed empirical ab distribution [Q] (float64, sums to 1) of a dataset.

    One streaming pass over `dataset` (an iterable of (L, ab) batches with normalized ab
    [B, H, W, 2], e.g. `data.pipeline.pretext_dataset`; bare ab batches also work) that counts
    *hard* nearest-bin assignments, as the paper's histogram does; only the [Q] counts are kept.
    The counts are then smoothed with a Gaussian of `sigma` in ab space (`smooth_prior`) and
    normalized. `max_batches` bounds the pass; it is needed for endless training streams.
    `verbose` shows a progress bar over the `max_batches` batches.
    """
    if max_batches is not None and (not isinstance(max_batches, (int, np.integer)) or max_batches < 1):
        raise ValueError(f"max_batches must be None or an int >= 1, received {max_batches!r}.")
    bins_np = np.asarray(bins, dtype=np.float32)
    bins_tf = _bins_tensor(bins_np)
    counts = np.zeros(bins_np.shape[0], dtype=np.int64)
    progress = keras.utils.Progbar(max_batches, unit_name="batch") if verbose and max_batches else None
    for i, element in enumerate(itertools.islice(dataset, max_batches), start=1):
        ab = tf.reshape(tf.cast(_batch_ab(element), tf.float32), [-1, 2])
        total = int(ab.shape[0])
        for start in range(0, total, chunk_pixels):  # bounds the [pixels, Q] distance matrix
            counts += _count_nearest(ab[start:start + chunk_pixels], bins_tf).numpy()
        if progress:
            progress.update(i)
    if counts.sum() == 0:
        raise ValueError("ab_prior saw no pixels: the dataset is empty.")
    return smooth_prior(counts, bins_np, sigma)


def rebalancing_weights(prior, lam=LAMBDA):
    """Class-rebalancing weights [Q]: w ∝ ((1 - lam) p + lam / Q)^-1, scaled so that
    sum_q p_q w_q = 1. lam = 1 gives all-ones (no rebalancing); smaller lam favours rare bins."""
    prior = np.asarray(prior, dtype=np.float64)
    if prior.ndim != 1 or prior.size == 0:
        raise ValueError(f"prior must be a non-empty vector, received shape {prior.shape}.")
    if np.any(prior < 0) or not np.isfinite(prior).all() or prior.sum() <= 0:
        raise ValueError("prior must be finite, non-negative and not all zero.")
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"lam must be in [0, 1], received lam={lam!r}.")
    prior = prior / prior.sum()
    mixture = (1.0 - lam) * prior + lam / prior.size
    if np.any(mixture <= 0):
        raise ValueError("lam=0 needs a prior with no zero entries.")
    weights = 1.0 / mixture
    return weights / np.sum(prior * weights)


class ZhangStats(NamedTuple):
    """What `load_zhang_stats` returns: bins [Q, 2], prior [Q], weights [Q] and the metadata."""

    bins: np.ndarray
    prior: np.ndarray
    weights: np.ndarray
    meta: dict


def _jsonable(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def save_zhang_stats(path, bins, prior, weights, **meta):
    """Writes bins, prior and weights (and `meta`, JSON-able values) to a JSON file, atomically."""
    bins = np.asarray(bins, dtype=np.float64)
    prior = np.asarray(prior, dtype=np.float64)
    weights = np.asarray(weights, dtype=np.float64)
    q = len(bins)
    if bins.ndim != 2 or bins.shape[1] != 2 or prior.shape != (q,) or weights.shape != (q,):
        raise ValueError(
            f"expected bins [Q, 2], prior [Q], weights [Q]; received {bins.shape}, {prior.shape}, "
            f"{weights.shape}."
        )
    record = {
        "format": STATS_FORMAT, "num_bins": int(len(bins)), "bins": bins.tolist(),
        "prior": prior.tolist(), "weights": weights.tolist(), "meta": meta,
    }
    path = os.fspath(path)
    folder = os.path.dirname(path)
    if folder:
        os.makedirs(folder, exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(record, handle, default=_jsonable)
    os.replace(tmp, path)
    return path


def load_zhang_stats(path):
    """Reads a file written by `save_zhang_stats` into a `ZhangStats`."""
    with open(os.fspath(path), encoding="utf-8") as handle:
        record = json.load(handle)
    if record.get("format") != STATS_FORMAT:
        raise ValueError(f"{path} is not a {STATS_FORMAT} file (format={record.get('format')!r}).")
    stats = ZhangStats(
        np.asarray(record["bins"], dtype=np.float32).reshape(-1, 2),
        np.asarray(record["prior"], dtype=np.float64),
        np.asarray(record["weights"], dtype=np.float64),
        dict(record.get("meta", {})),
    )
    if not len(stats.bins) == len(stats.prior) == len(stats.weights) == record["num_bins"]:
        raise ValueError(f"{path}: bins, prior and weights disagree on Q.")
    return stats


def class_rebalanced_loss(bins, weights, k=SOFT_K, sigma=SIGMA, global_batch_size=None):
    """Returns loss(ab_true [B, H, W, 2] normalized, logits [B, H, W, Q]) -> scalar.

    Per pixel: the cross-entropy between the soft-encoded target Z (k nearest bins, Gaussian
    sigma) and softmax(logits), times v(Z) = w_{q*}, the weight of the pixel's nearest bin (the
    paper's Eq. 2-3); averaged over pixels, then over examples. With `global_batch_size` the
    per-example means go through `tf.nn.compute_average_loss` (sum / global batch), for
    tf.distribute replicas. Z is never materialized: the k target log-probabilities are gathered.
    Logits are taken in float32 (mixed precision safe). Works under tf.function and XLA.
    """
    bins_tf = _bins_tensor(np.asarray(bins, dtype=np.float32))
    weights = np.asarray(weights, dtype=np.float32)
    if weights.shape != (bins_tf.shape[0],):
        raise ValueError(f"weights must have shape [{bins_tf.shape[0]}], received {weights.shape}.")
    weights_tf = tf.constant(weights)
    num_bins = int(bins_tf.shape[0])

    def loss(ab_true, logits):
        logits = tf.cast(logits, tf.float32)
        if logits.shape[-1] is not None and logits.shape[-1] != num_bins:
            raise ValueError(f"logits have {logits.shape[-1]} classes, the bins {num_bins}.")
        ab_true = tf.stop_gradient(tf.cast(ab_true, tf.float32))
        indices, target = _nearest_bins(ab_true, bins_tf, k, sigma)
        log_probs = tf.nn.log_softmax(logits, axis=-1)
        rank = logits.shape.rank
        picked = tf.gather(log_probs, indices, batch_dims=rank - 1)  # [..., k]
        cross_entropy = -tf.reduce_sum(target * picked, axis=-1)
        pixel_loss = tf.gather(weights_tf, indices[..., 0]) * cross_entropy  # [B, H, W]
        per_example = tf.reduce_mean(pixel_loss, axis=list(range(1, rank - 1)))
        if global_batch_size is not None:
            return tf.nn.compute_average_loss(per_example, global_batch_size=global_batch_size)
        return tf.reduce_mean(per_example)

    return loss


def annealed_mean(logits, bins, temperature=TEMPERATURE):
    """Normalized ab [..., 2] from logits [..., Q]: the expectation of the bin centres under
    softmax(logits / T) (= softmax(log p / T) of the predicted p), divided by 128. T = 1 gives
    the mean of the predicted distribution, T -> 0 its mode; the paper uses T = 0.38."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, received temperature={temperature!r}.")
    bins = _bins_tensor(bins)
    probs = tf.nn.softmax(tf.cast(logits, tf.float32) / temperature, axis=-1)
    return tf.tensordot(probs, bins, axes=1) / color.AB_SCALE
