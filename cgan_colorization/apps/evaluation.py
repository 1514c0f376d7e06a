"""Colorization quality: PSNR and SSIM in sRGB (max_val 1), as the paper's Table 3, plus
colourfulness, and the colorization literature's measures in Lab: Zhang et al. 2016's AuC of the
cumulative per-pixel ab error curve (plain and class-rebalanced) and the mean CIEDE2000 difference;
each beside the same figure for the grey baseline (ab = 0). docs/colorizer.md gives the formulas."""

import keras
import numpy as np
import tensorflow as tf

from cgan_colorization.pretexts import zhang
from data.color import AB_SCALE, join_rgb, rgb_to_lab, split_rgb

MAX_PSNR_DB = 100.0  # identical images have infinite PSNR; this cap keeps means finite
# Zhang et al. 2016's AuC: ab error thresholds 0..150 Lab units, step 1.
AB_THRESHOLDS = np.arange(0.0, 151.0, 1.0)
# Rebalanced AuC: weight 1 / p(q) of the true colour's bin (lambda = 0: no mix with the uniform
# distribution, unlike the training loss' lambda = 0.5), with p the smoothed prior of the scored images.
AUC_REBALANCE_LAMBDA = 0.0
_BIN_CHUNK = 32768  # pixels per nearest-bin search, bounding its [pixels, Q] distance matrix


def psnr(rgb_a, rgb_b):
    """Per-image PSNR in dB of sRGB batches in [0, 1], capped at `MAX_PSNR_DB`."""
    mse = tf.reduce_mean(tf.square(rgb_a - rgb_b), axis=[-3, -2, -1])
    return tf.minimum(-10.0 * tf.math.log(tf.maximum(mse, 1e-10)) / tf.math.log(10.0), MAX_PSNR_DB)


def ssim(rgb_a, rgb_b):
    """Per-image SSIM (11 x 11 Gaussian window, sigma 1.5, averaged over RGB) with max_val 1."""
    return tf.image.ssim(rgb_a, rgb_b, max_val=1.0)


def colourfulness(rgb):
    """Hasler and Suesstrunk's colourfulness M of each sRGB image (0 for grey, ~100+ for vivid)."""
    rgb = rgb * 255.0
    rg = rgb[..., 0] - rgb[..., 1]
    yb = 0.5 * (rgb[..., 0] + rgb[..., 1]) - rgb[..., 2]
    axes = [-2, -1]
    std = tf.sqrt(tf.math.reduce_variance(rg, axes) + tf.math.reduce_variance(yb, axes))
    mean = tf.sqrt(tf.square(tf.reduce_mean(rg, axes)) + tf.square(tf.reduce_mean(yb, axes)))
    return std + 0.3 * mean


@tf.function(reduce_retracing=True)  # ~3x faster than eager on whole batches
def ciede2000(lab1, lab2, k_l=1.0, k_c=1.0, k_h=1.0):
    """CIEDE2000 colour difference [...] of two CIE Lab tensors [..., 3] (Sharma, Wu and Dalal 2005).

    Pure TensorFlow in the inputs' dtype (float64 for reference precision); follows the paper's
    equations, including its conventions when a chroma is 0 (hue difference 0, mean hue h1' + h2').
    Not differentiable where a chroma is 0; it is a measure, not a loss.
    """
    lab1 = tf.convert_to_tensor(lab1)
    if not lab1.dtype.is_floating:
        raise ValueError(f"ciede2000 expects float Lab tensors, received dtype={lab1.dtype}.")
    lab2 = tf.cast(tf.convert_to_tensor(lab2), lab1.dtype)
    l1, a1, b1 = lab1[..., 0], lab1[..., 1], lab1[..., 2]
    l2, a2, b2 = lab2[..., 0], lab2[..., 1], lab2[..., 2]
    pi = tf.constant(np.pi, lab1.dtype)
    pow25_7 = 25.0 ** 7

    c_mean = 0.5 * (tf.sqrt(a1 * a1 + b1 * b1) + tf.sqrt(a2 * a2 + b2 * b2))
    g = 0.5 * (1.0 - tf.sqrt(c_mean ** 7 / (c_mean ** 7 + pow25_7)))
    a1p, a2p = (1.0 + g) * a1, (1.0 + g) * a2
    c1p, c2p = tf.sqrt(a1p * a1p + b1 * b1), tf.sqrt(a2p * a2p + b2 * b2)
    h1p, h2p = tf.atan2(b1, a1p), tf.atan2(b2, a2p)
    h1p, h2p = (tf.where(h < 0.0, h + 2.0 * pi, h) for h in (h1p, h2p))  # hue in [0, 2 pi)

    product = c1p * c2p
    achromatic = tf.equal(product, 0.0)
    # A hue difference within a few ulps of pi counts as pi: Sharma's pairs 10 and 12 sit exactly on it,
    # where atan2 implementations differ by one ulp and would otherwise pick the other branch.
    half_turn = pi + 16.0 * np.finfo(lab1.dtype.as_numpy_dtype).eps
    dh = h2p - h1p
    dh = tf.where(dh > half_turn, dh - 2.0 * pi, tf.where(dh < -half_turn, dh + 2.0 * pi, dh))
    dh = tf.where(achromatic, tf.zeros_like(dh), dh)
    d_l, d_c = l2 - l1, c2p - c1p
    d_h = 2.0 * tf.sqrt(product) * tf.sin(dh / 2.0)

    l_mean = 0.5 * (l1 + l2)
    cp_mean = 0.5 * (c1p + c2p)
    h_sum = h1p + h2p
    h_mean = tf.where(tf.abs(h1p - h2p) <= half_turn, h_sum / 2.0,
                      tf.where(h_sum < 2.0 * pi, (h_sum + 2.0 * pi) / 2.0, (h_sum - 2.0 * pi) / 2.0))
    h_mean = tf.where(achromatic, h_sum, h_mean)
    deg = pi / 180.0
    t = (1.0 - 0.17 * tf.cos(h_mean - 30.0 * deg) + 0.24 * tf.cos(2.0 * h_mean)
         + 0.32 * tf.cos(3.0 * h_mean + 6.0 * deg) - 0.20 * tf.cos(4.0 * h_mean - 63.0 * deg))
    d_theta = 30.0 * deg * tf.exp(-tf.square((h_mean / deg - 275.0) / 25.0))
    r_c = 2.0 * tf.sqrt(cp_mean ** 7 / (cp_mean ** 7 + pow25_7))
    l50 = tf.square(l_mean - 50.0)
    s_l = 1.0 + 0.015 * l50 / tf.sqrt(20.0 + l50)
    s_c = 1.0 + 0.045 * cp_mean
    s_h = 1.0 + 0.015 * cp_mean * t
    r_t = -tf.sin(2.0 * d_theta) * r_c
    term_l, term_c, term_h = d_l / (k_l * s_l), d_c / (k_c * s_c), d_h / (k_h * s_h)
    return tf.sqrt(tf.maximum(term_l ** 2 + term_c ** 2 + term_h ** 2 + r_t * term_c * term_h, 0.0))


def ab_error(ab_true, ab_pred):
    """Per-pixel Euclidean ab error [...] of two ab arrays [..., 2] in Lab units (float64 numpy)."""
    diff = np.asarray(ab_pred, np.float64) - np.asarray(ab_true, np.float64)
    return np.sqrt(np.sum(diff * diff, axis=-1))


def true_colour_bins(ab_true, bins):
    """Index [...] (int64 numpy) of the nearest of Zhang's ab bins [Q, 2] to each ab [..., 2] (Lab units),
    as `zhang.nearest_bin`.

    The bins are centres of `zhang.GRID` cells, so the nearest one to a colour is the centre of the cell
    it lies in whenever that cell is a bin, as it is for every sRGB colour: a table look-up, ~20x faster
    than the search. Colours whose cell is not a bin are searched with `zhang.nearest_bin`.
    """
    ab_true = np.asarray(ab_true, np.float64)
    bins = np.asarray(bins, np.float64)
    cells = np.rint(ab_true.reshape(-1, 2) / zhang.GRID).astype(np.int64)
    bin_cells = np.rint(bins / zhang.GRID).astype(np.int64)
    low = bin_cells.min(axis=0)
    table = np.full(tuple(bin_cells.max(axis=0) - low + 1), -1, np.int64)
    table[tuple((bin_cells - low).T)] = np.arange(len(bins))
    index = cells - low
    inside = np.all((index >= 0) & (index < table.shape), axis=1)
    found = np.full(len(cells), -1, np.int64)
    found[inside] = table[tuple(index[inside].T)]
    missing = np.flatnonzero(found < 0)
    flat = ab_true.reshape(-1, 2)[missing].astype(np.float32) / AB_SCALE  # `zhang.nearest_bin` takes normalized ab
    for i in range(0, len(missing), _BIN_CHUNK):
        found[missing[i:i + _BIN_CHUNK]] = zhang.nearest_bin(flat[i:i + _BIN_CHUNK], bins).numpy()
    return found.reshape(ab_true.shape[:-1])


class AbErrorCurve:
    """Zhang et al. 2016's cumulative curve of per-pixel ab errors, accumulated over batches.

    Keeps only a [Q, T + 1] histogram: pixels counted by the bin of their true colour (rows) and the
    first threshold their error is <= to (columns; the last one: above every threshold). The curve at
    threshold t is the share of pixels with error <= t; the AuC is its mean over the thresholds, 1 for
    a perfect colorization. The rebalanced curve weights each pixel by 1 / p of its true colour's bin,
    p the smoothed prior (`zhang.smooth_prior`) of the true colours of all the pixels seen.
    """

    def __init__(self, bins, thresholds=AB_THRESHOLDS):
        self.bins = np.asarray(bins, np.float32)
        self.thresholds = np.asarray(thresholds, np.float64)
        if self.thresholds.ndim != 1 or not self.thresholds.size or np.any(np.diff(self.thresholds) <= 0):
            raise ValueError(f"thresholds must be a non-empty increasing vector, received {thresholds!r}.")
        self.histogram = np.zeros((len(self.bins), self.thresholds.size + 1), np.int64)

    def update(self, ab_true, ab_pred, true_bins=None):
        """Adds the pixels of ab arrays [..., 2] in Lab units; `true_bins` ([...], from
        `true_colour_bins`) saves the bin search when several predictions share one ground truth."""
        if true_bins is None:
            true_bins = true_colour_bins(ab_true, self.bins)
        columns = np.searchsorted(self.thresholds, ab_error(ab_true, ab_pred).ravel(), side="left")
        cells = np.asarray(true_bins, np.int64).ravel() * self.histogram.shape[1] + columns
        self.histogram += np.bincount(cells, minlength=self.histogram.size).reshape(self.histogram.shape)

    def pixel_weights(self, rebalanced=False):
        """[Q] weight of a pixel by its true colour's bin: all ones, or 1 / p (scaled so E_p[w] = 1)."""
        counts = self.histogram.sum(axis=1)
        if not rebalanced:
            return np.ones(len(counts))
        prior = zhang.smooth_prior(counts, self.bins)
        weights = np.zeros(len(counts))
        seen = counts > 0  # only these carry pixels; elsewhere the smoothed prior may underflow to 0
        weights[seen] = zhang.rebalancing_weights(prior[seen], lam=AUC_REBALANCE_LAMBDA)
        return weights

    def curve(self, rebalanced=False):
        """[T] share of the (weighted) pixels whose ab error is <= each threshold."""
        mass = self.pixel_weights(rebalanced) @ self.histogram
        if mass.sum() <= 0:
            raise ValueError("the ab error curve has seen no pixels.")
        return np.cumsum(mass)[:-1] / mass.sum()

    def auc(self, rebalanced=False):
        """Area under the curve, normalized to [0, 1]: the curve's mean over the thresholds."""
        return float(self.curve(rebalanced).mean())


def summarize(values):
    """mean / min / max (and std) of a list of per-image scores."""
    values = np.asarray(values, dtype=np.float64)
    return {"mean": float(values.mean()), "min": float(values.min()), "max": float(values.max()),
            "std": float(values.std())}


def evaluate_colorizer(predict_ab, dataset, max_images=None, color_space="lab", total=None):
    """Scores `predict_ab(L) -> ab` on a dataset of normalized (L, ab) batches; with
    `color_space="yuv"`, `predict(Y) -> UV` on (Y, UV) batches (the MobileNetV2 model).

    Returns {"model": {...}, "grey_baseline": {...}, "original": {...}, "num_images": n,
    "protocol": {...}}. Per image (mean / min / max / std over the images): PSNR, SSIM and
    colourfulness in sRGB, and the mean CIEDE2000 difference to the original in Lab; over all pixels
    pooled: Zhang's AuC of the ab error curve ("ab_auc"), its rebalanced variant and the curve itself.
    The Lab measures compare the sRGB images as shown (Lab of the clipped sRGB), so both colour
    spaces are scored alike. "original" gives the ground truth's colourfulness. The grey baseline is
    the photo's Lab lightness with ab = 0 in both colour spaces, so it is one floor for every
    colorizer. With `total` (the expected number of images), a progress bar counts them.
    """
    progress = keras.utils.Progbar(total, unit_name="image") if total else None
    names = ("model", "grey_baseline")
    scores = {name: {key: [] for key in ("psnr", "ssim", "colourfulness", "ciede2000")} for name in names}
    original_colourfulness = []
    bins = zhang.ab_gamut_bins()
    curves = {name: AbErrorCurve(bins) for name in names}
    seen, size = 0, None
    for gray, ab in dataset:
        if max_images is not None and seen >= max_images:
            break
        if max_images is not None:
            gray, ab = gray[: max_images - seen], ab[: max_images - seen]
        original = join_rgb(gray, ab, color_space)
        colorized = join_rgb(gray, predict_ab(gray), color_space)
        lightness = gray if color_space == "lab" else split_rgb(original, "lab")[0]
        grey = join_rgb(lightness, tf.zeros([*lightness.shape[:-1], 2], lightness.dtype), "lab")
        lab_true = tf.cast(rgb_to_lab(original), tf.float64)
        true_bins = true_colour_bins(lab_true[..., 1:].numpy(), bins)
        for name, rgb in (("model", colorized), ("grey_baseline", grey)):
            lab = tf.cast(rgb_to_lab(rgb), tf.float64)
            scores[name]["psnr"] += psnr(rgb, original).numpy().tolist()
            scores[name]["ssim"] += ssim(rgb, original).numpy().tolist()
            scores[name]["colourfulness"] += colourfulness(rgb).numpy().tolist()
            scores[name]["ciede2000"] += tf.reduce_mean(ciede2000(lab_true, lab), axis=[1, 2]).numpy().tolist()
            curves[name].update(lab_true[..., 1:].numpy(), lab[..., 1:].numpy(), true_bins)
        original_colourfulness += colourfulness(original).numpy().tolist()
        seen += int(gray.shape[0])
        size = [int(gray.shape[1]), int(gray.shape[2])]
        if progress:
            progress.update(min(seen, total))
    if not seen:
        raise ValueError("the evaluation dataset yielded no images; check --dataset and --split.")
    result = {"num_images": seen, "original": {"colourfulness": summarize(original_colourfulness)}}
    for name in names:
        result[name] = {key: summarize(values) for key, values in scores[name].items()}
        result[name].update(ab_auc=curves[name].auc(), ab_auc_rebalanced=curves[name].auc(rebalanced=True),
                            ab_error_cdf=[round(float(v), 6) for v in curves[name].curve()])
    result["protocol"] = evaluation_protocol(seen, size, color_space, len(bins))
    return result


def evaluation_protocol(num_images, image_size, color_space, num_bins):
    """What the scores depend on and papers disagree about, recorded beside them."""
    t = AB_THRESHOLDS
    return {
        "num_images": num_images,
        "image_size": image_size,
        "model_color_space": color_space,
        "psnr_ssim_colourfulness_space": "sRGB in [0, 1] (max_val 1)",
        "psnr_cap_db": MAX_PSNR_DB,
        "ssim_window": "11 x 11 Gaussian, sigma 1.5, mean over R, G, B",
        "lab_measures_space": "CIE Lab (D65, 2-degree observer) of the sRGB images as shown (out-of-gamut colours "
                              "clipped), ab in Lab units (the model's ab x 128)",
        "ab_error_thresholds": {"start": float(t[0]), "stop": float(t[-1]), "step": float(t[1] - t[0]),
                                "count": int(t.size)},
        "ab_auc": "mean over the thresholds of the share of pixels (pooled over all images) whose Euclidean ab "
                  "error is <= the threshold (Zhang et al. 2016); 1 for a perfect colorization",
        "ab_auc_rebalanced": {
            "weight": "each pixel weighted by 1 / p of the ab bin nearest its true colour",
            "prior": "smoothed empirical ab distribution of the scored images' own true colours, not of a "
                     "training set",
            "bins": num_bins, "bin_grid": zhang.GRID, "prior_sigma": zhang.SIGMA, "lambda": AUC_REBALANCE_LAMBDA,
        },
        "ciede2000": "per-image mean over pixels of CIEDE2000 (kL = kC = kH = 1) between colorized and original "
                     "Lab (L, a, b)",
    }


def bottleneck_health(network, dataset, layer="bottleneck_relu", max_batches=8):
    """How much a backbone's bottleneck (for the U-Net the 1 x 1 code, all the paper's classifier
    sees) says about its input: the fraction of its ReLU units that are zero on every image
    ("dead"), and the mean standard deviation of the units across images (0 when every image gets
    the same code). None when `layer` is None (a backbone without one, see `registry.Backbone`)."""
    if layer is None:
        return None
    probe = keras.Model(network.input, network.get_layer(layer).output)
    codes = []
    for i, (gray, _) in enumerate(dataset):
        if i >= max_batches:
            break
        codes.append(probe(gray, training=False).numpy().reshape(int(gray.shape[0]), -1))
    codes = np.concatenate(codes)
    return {"dead_fraction": float((codes.max(axis=0) <= 0).mean()),
            "spread": float(codes.std(axis=0).mean()), "units": int(codes.shape[1]),
            "images": int(codes.shape[0])}


def format_table(result):
    """The paper's Table 3 layout (mean / min / max) for the model and the grey baseline, then the
    Lab measures (Zhang's AuC, plain and rebalanced, and CIEDE2000)."""
    lines = [f"{'':<16}{'PSNR mean':>10}{'min':>8}{'max':>8}{'SSIM mean':>11}{'min':>7}{'max':>7}"
             f"{'colourful':>11}"]
    for name in ("model", "grey_baseline"):
        p, s, c = (result[name][k] for k in ("psnr", "ssim", "colourfulness"))
        lines.append(f"{name:<16}{p['mean']:>10.2f}{p['min']:>8.2f}{p['max']:>8.2f}"
                     f"{s['mean']:>11.3f}{s['min']:>7.3f}{s['max']:>7.3f}{c['mean']:>11.1f}")
    lines.append(f"{'original':<16}{'':>52}{result['original']['colourfulness']['mean']:>11.1f}")
    lines.append(f"({result['num_images']} images; paper, COCO 256 px: PSNR 20.94 / 8.82 / 42.61, "
                 "SSIM 0.85 / 0.31 / 0.99)")
    lines.append(f"{'':<16}{'AuC ab':>10}{'rebal.':>8}{'CIEDE2000 mean':>16}{'min':>8}{'max':>8}")
    for name in ("model", "grey_baseline"):
        r, d = result[name], result[name]["ciede2000"]
        lines.append(f"{name:<16}{r['ab_auc']:>10.3f}{r['ab_auc_rebalanced']:>8.3f}{d['mean']:>16.2f}"
                     f"{d['min']:>8.2f}{d['max']:>8.2f}")
    t = result["protocol"]["ab_error_thresholds"]
    lines.append(f"(AuC over ab error thresholds {t['start']:g}..{t['stop']:g} step {t['step']:g}, Lab units; "
                 "rebalanced by the scored images' own colour prior)")
    b = result.get("bottleneck")
    if b:
        lines.append(f"bottleneck: {100 * b['dead_fraction']:.0f} % of {b['units']} units dead, spread across "
                     f"images {b['spread']:.4f}")
    return "\n".join(lines)
