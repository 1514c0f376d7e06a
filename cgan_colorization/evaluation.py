"""Colorization quality: PSNR and SSIM in sRGB (max_val 1), as the paper's Table 3, plus
colourfulness, beside the same figures for the grey baseline (ab = 0)."""

import keras
import numpy as np
import tensorflow as tf

from data.color import join_rgb, split_rgb

MAX_PSNR_DB = 100.0  # identical images have infinite PSNR; this cap keeps means finite


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


def summarize(values):
    """mean / min / max (and std) of a list of per-image scores."""
    values = np.asarray(values, dtype=np.float64)
    return {"mean": float(values.mean()), "min": float(values.min()), "max": float(values.max()),
            "std": float(values.std())}


def evaluate_colorizer(predict_ab, dataset, max_images=None, color_space="lab", total=None):
    """Scores `predict_ab(L) -> ab` on a dataset of normalized (L, ab) batches; with
    `color_space="yuv"`, `predict(Y) -> UV` on (Y, UV) batches (the MobileNetV2 model).

    Returns {"model": {...}, "grey_baseline": {...}, "original": {...}, "num_images": n}, with
    PSNR/SSIM/colourfulness summaries; "original" gives the ground truth's colourfulness. The grey
    baseline is the photo's Lab lightness with ab = 0 in both colour spaces, so it is one floor for
    every colorizer. With `total` (the expected number of images), a progress bar counts them.
    """
    progress = keras.utils.Progbar(total, unit_name="image") if total else None
    scores = {key: [] for key in ("psnr", "ssim", "colourfulness", "grey_psnr", "grey_ssim",
                                  "original_colourfulness")}
    seen = 0
    for gray, ab in dataset:
        if max_images is not None and seen >= max_images:
            break
        if max_images is not None:
            gray, ab = gray[: max_images - seen], ab[: max_images - seen]
        original = join_rgb(gray, ab, color_space)
        colorized = join_rgb(gray, predict_ab(gray), color_space)
        lightness = gray if color_space == "lab" else split_rgb(original, "lab")[0]
        grey = join_rgb(lightness, tf.zeros([*lightness.shape[:-1], 2], lightness.dtype), "lab")
        scores["psnr"] += psnr(colorized, original).numpy().tolist()
        scores["ssim"] += ssim(colorized, original).numpy().tolist()
        scores["colourfulness"] += colourfulness(colorized).numpy().tolist()
        scores["grey_psnr"] += psnr(grey, original).numpy().tolist()
        scores["grey_ssim"] += ssim(grey, original).numpy().tolist()
        scores["original_colourfulness"] += colourfulness(original).numpy().tolist()
        seen += int(gray.shape[0])
        if progress:
            progress.update(min(seen, total))
    if not seen:
        raise ValueError("the evaluation dataset yielded no images; check --dataset and --split.")
    return {
        "num_images": seen,
        "model": {k: summarize(scores[k]) for k in ("psnr", "ssim", "colourfulness")},
        "grey_baseline": {"psnr": summarize(scores["grey_psnr"]), "ssim": summarize(scores["grey_ssim"]),
                          "colourfulness": summarize([0.0])},
        "original": {"colourfulness": summarize(scores["original_colourfulness"])},
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
    """The paper's Table 3 layout (mean / min / max) for the model and the grey baseline."""
    lines = [f"{'':<16}{'PSNR mean':>10}{'min':>8}{'max':>8}{'SSIM mean':>11}{'min':>7}{'max':>7}"
             f"{'colourful':>11}"]
    for name in ("model", "grey_baseline"):
        p, s, c = (result[name][k] for k in ("psnr", "ssim", "colourfulness"))
        lines.append(f"{name:<16}{p['mean']:>10.2f}{p['min']:>8.2f}{p['max']:>8.2f}"
                     f"{s['mean']:>11.3f}{s['min']:>7.3f}{s['max']:>7.3f}{c['mean']:>11.1f}")
    lines.append(f"{'original':<16}{'':>52}{result['original']['colourfulness']['mean']:>11.1f}")
    lines.append(f"({result['num_images']} images; paper, COCO 256 px: PSNR 20.94 / 8.82 / 42.61, "
                 "SSIM 0.85 / 0.31 / 0.99)")
    b = result.get("bottleneck")
    if b:
        lines.append(f"bottleneck: {100 * b['dead_fraction']:.0f} % of {b['units']} units dead, spread across "
                     f"images {b['spread']:.4f}")
    return "\n".join(lines)
