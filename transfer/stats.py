"""Telling a transfer finding from noise: a paired, hierarchical bootstrap of a gain, its verdict
against a smallest effect of interest, Holm's adjustment over a family of contrasts, and a forest
plot (docs/method.md, "Statistics of a transfer study").

The unit of analysis is the pretext run. A contrast compares an arm (e.g. GAN-pretrained, P pretext
runs with S downstream seeds each) with a control (random init: S seeds; or a pretrained control
with its own pretext runs). Downstream seed s means the same data order and head init in every
pretext run and in the control, so seeds pair; runs scored on the same test images pair image by
image. Each run brings its `per_image.npz` (written by `transfer.experiment.run_finetune`):

* `correct` int8 [N]: single-label classification, top-1 right or not;
* `scores`, `labels` [N, C]: multi-label classification (mAP is recomputed on resampled images);
* `confusion` int32 [N, C, C]: segmentation, one pixel confusion matrix per image, void excluded;
* `items` (the test images' names, where the source has them) and `seed`, to check the pairing.
"""

import dataclasses
import os
from collections.abc import Mapping

import numpy as np

__all__ = ["Measure", "TOP1", "MIOU", "MAP", "MEASURES", "SCHEMES", "top1", "miou", "mean_ap", "load_per_image",
           "Gain", "hierarchical_bootstrap", "verdict", "holm", "forest_plot"]

_CHUNK = 250  # bootstrap draws computed at once: bounds the [images, draws] arrays to a few MB


# --------------------------------------------------------------------------------------------------
# Scores of one run on a (resampled) set of test images
# --------------------------------------------------------------------------------------------------


def _counts(index, n):
    """How often each of the n images is drawn, as [n, 1]: all once when `index` is None."""
    counts = np.ones(n) if index is None else np.bincount(np.asarray(index), minlength=n).astype(np.float64)
    return counts[:, None]


def top1(run, index=None):
    """Top-1 accuracy (a fraction) of the run's test images `index` (all of them when None)."""
    correct = np.asarray(run["correct"])
    return float(correct.mean()) if index is None else float(correct[np.asarray(index)].mean())


def _miou_rows(tp, row, col):
    """mIoU from per-class true positives, truth and prediction totals ([..., C] each): IoU = tp /
    (row + col - tp), averaged over the classes present in the truth or the prediction."""
    union = row + col - tp
    present = union > 0
    iou = np.where(present, tp / np.where(present, union, 1), 0.0)
    count = present.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, iou.sum(axis=-1) / count, np.nan)


def miou(run, index=None):
    """mIoU (a fraction) of the summed per-image confusion matrices of the test images `index`; the
    same arithmetic as `transfer.metrics.mean_iou`, so that all images give metrics.json's mIoU."""
    confusion = np.asarray(run["confusion"])
    cm = (confusion if index is None else confusion[np.asarray(index)]).sum(axis=0, dtype=np.int64)
    cm = cm.astype(np.float64)
    tp = np.diag(cm)
    union = cm.sum(axis=0) + cm.sum(axis=1) - tp
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, tp / union, np.nan)
    finite = ~np.isnan(iou)
    return float(iou[finite].mean()) if finite.any() else float("nan")


def _ap_plan(run):
    """Per class, what a resampled average precision needs, in decreasing score: the positive images;
    for each, the index of the last positive tied with it (ties are one threshold, as in scikit-learn)
    and of the segment of images that ends where its tie ends; the images up to the last positive's
    tie, and where each segment starts."""
    scores, labels = np.asarray(run["scores"], np.float64), np.asarray(run["labels"])
    if scores.ndim == 1:
        scores, labels = scores[:, None], labels[:, None]
    plan = []
    for c in range(scores.shape[1]):
        order = np.argsort(-scores[:, c], kind="stable")
        ordered = scores[order, c]
        tie = np.r_[0, np.cumsum(np.diff(ordered) != 0)]  # the threshold of each sorted position
        tie_end = np.r_[np.flatnonzero(np.diff(ordered)), len(ordered) - 1]
        positive = np.flatnonzero(labels[order, c] == 1)
        if not len(positive):
            plan.append(None)
            continue
        last_tied = np.searchsorted(tie[positive], tie[positive], side="right") - 1
        ends, segment = np.unique(tie_end[tie[positive]], return_inverse=True)
        plan.append((order[positive], last_tied, segment, order[:ends[-1] + 1], np.r_[0, ends[:-1] + 1]))
    return plan


def _map_rows(plan, counts):
    """mAP of each column of `counts` [N, B] (image multiplicities). Per class, AP = the sum over
    positives of the precision at their threshold, over the positives: precision = positives / images
    drawn at or above it. Classes without a drawn positive are left out."""
    counts = counts.astype(np.float32)  # whole numbers below 2**24: exact, and half the memory traffic
    aps = np.full((len(plan), counts.shape[1]), np.nan)
    for c, class_plan in enumerate(plan):
        if class_plan is None:
            continue
        positives, last_tied, segment, prefix, starts = class_plan
        weight = counts[positives]  # [positives, B]
        true_positives = np.cumsum(weight, axis=0, dtype=np.float64)[last_tied]
        drawn = np.cumsum(np.add.reduceat(counts[prefix], starts, axis=0), axis=0, dtype=np.float64)[segment]
        total = true_positives[-1]
        with np.errstate(invalid="ignore", divide="ignore"):
            precision = true_positives / np.where(drawn > 0, drawn, 1.0)
            aps[c] = np.where(total > 0, (weight * precision).sum(axis=0) / total, np.nan)
    finite = ~np.isnan(aps)
    count = finite.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, np.where(finite, aps, 0.0).sum(axis=0) / count, np.nan)


def mean_ap(run, index=None):
    """mAP (a fraction) of a multi-label run's test images `index`: the mean over classes with a
    positive among them of the average precision (`transfer.metrics.mean_average_precision`)."""
    return float(_map_rows(_ap_plan(run), _counts(index, len(run["labels"])))[0])


@dataclasses.dataclass(frozen=True)
class Measure:
    """A test score computed from per-image data: `score(run, index)` on explicit image indices;
    `prepare(run)` once per run, then `resampled(prepared, counts)` for many draws at once, `counts`
    [N, B] being how often each image is drawn in each of B draws."""

    name: str  # its key in metrics.json's "test"
    keys: tuple  # the arrays of per_image.npz it reads
    score: callable
    prepare: callable
    resampled: callable

    def __call__(self, run, index=None):
        return self.score(run, index)


def _iou_terms(run):
    """Per image, all that the IoUs read from its confusion matrix: true positives, truth totals and
    prediction totals per class, [N, 3C] (float64 keeps their resampled sums exact)."""
    confusion = np.asarray(run["confusion"]).astype(np.float64)
    return np.concatenate([np.diagonal(confusion, axis1=1, axis2=2), confusion.sum(axis=2), confusion.sum(axis=1)],
                          axis=1)


def _miou_resampled(terms, counts):
    tp, row, col = np.split(counts.T @ terms, 3, axis=1)
    return _miou_rows(tp, row, col)


TOP1 = Measure("top1", ("correct",), top1, lambda run: np.asarray(run["correct"], np.float64),
               lambda correct, counts: correct @ counts / len(correct))
MIOU = Measure("mIoU", ("confusion",), miou, _iou_terms, _miou_resampled)
MAP = Measure("mAP", ("scores", "labels"), mean_ap, _ap_plan, _map_rows)
MEASURES = {m.name: m for m in (TOP1, MIOU, MAP)}


def load_per_image(run_dir):
    """The per-image test data of the fine-tuning run folder `run_dir` as a dict of arrays."""
    path = os.path.join(run_dir, "per_image.npz")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} does not exist: runs fine-tuned before per-image data was saved must be "
                                "run again to enter a bootstrap.")
    with np.load(path) as data:
        return {key: data[key] for key in data.files}


# --------------------------------------------------------------------------------------------------
# The bootstrap
# --------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Gain:
    """A paired gain of an arm over a control, in points (100 x fraction), with its bootstrap."""

    gain: float
    ci95: tuple
    ci90: tuple
    p_value: float  # two-sided bootstrap p-value of "no gain"
    per_pretext: tuple  # the gain of each of the arm's pretext runs (its mean over seeds)
    n_boot: int
    seeds: int
    images: int  # test images per run (the largest test set where seeds have their own)
    control_runs: int = 1  # the control's pretext runs (1 for random init)
    paired: bool = True
    scheme: str = "joint"
    run_scale: float = 1.0  # "separate": the factor on the run-level deviations (see hierarchical_bootstrap)

    @property
    def pretext_runs(self):
        return len(self.per_pretext)

    def verdict(self, sesoi=1.0):
        return verdict(self.ci95, self.ci90, sesoi)


SCHEMES = ("joint", "separate")


def _nested(runs, name):
    """Runs as [pretext run][seed]; a flat list of per-image mappings is one pretext run's (random init)."""
    runs = list(runs)
    if not runs:
        raise ValueError(f"the {name} has no runs.")
    if isinstance(runs[0], Mapping):
        runs = [runs]
    runs = [list(seeds) for seeds in runs]
    if any(len(seeds) != len(runs[0]) or not seeds for seeds in runs):
        raise ValueError(f"every pretext run of the {name} needs the same number of seeds, received "
                         f"{[len(seeds) for seeds in runs]}.")
    return runs


def _test_set(run, measure):
    """What identifies the test images of a run: their names where saved, else their number."""
    missing = [key for key in measure.keys if key not in run]
    if missing:
        raise ValueError(f"the {measure.name} measure needs the per-image arrays {list(measure.keys)}; a run has "
                         f"only {sorted(run)}.")
    n = len(run[measure.keys[0]])
    return (n, tuple(np.asarray(run["items"]).tolist())) if "items" in run else (n, None)


def _image_groups(arm, control, measure):
    """The distinct test sets and, per seed, the index of the one that its runs share. Runs of one seed
    (arm and control) must share their test images; different seeds may have different ones (a
    split re-drawn with the seed), and then draw their images independently."""
    sets, per_seed = [], []
    for s in range(len(arm[0])):
        runs = [seeds[s] for seeds in arm + control]
        found = {_test_set(run, measure) for run in runs}
        if len(found) > 1:
            raise ValueError(f"the runs of seed index {s} were scored on different test images ({len(found)} test "
                             "sets): pairing needs one test set per seed, so fine-tune them with the same split.")
        seeds = {int(run["seed"]) for run in runs if "seed" in run}
        if len(seeds) > 1:
            raise ValueError(f"seed index {s} holds runs of the downstream seeds {sorted(seeds)}: order the arm's and "
                             "the control's runs by seed so that each index pairs one seed.")
        test_set = found.pop()
        if test_set not in sets:
            sets.append(test_set)
        per_seed.append(sets.index(test_set))
    return [n for n, _ in sets], np.array(per_seed)


def _percentiles(draws, level):
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(draws, [tail, 100 - tail])
    return float(low), float(high)


def _pick(scores, runs, seeds):
    """Mean of `scores` [B, runs, seeds] over the resampled pretext runs [B, P] and seeds [B, S] of each draw."""
    rows = np.arange(len(runs))[:, None, None]
    return scores[rows, runs[:, :, None], seeds[:, None, :]].mean(axis=(1, 2))


def hierarchical_bootstrap(arm, control, measure, n_boot=2000, seed=0, paired=True, scheme="joint",
                           same_pretext=False):
    """The gain of `arm` over `control` with its 95 % and 90 % percentile intervals and p-value.

    The observed gain is the mean over the arm's pretext runs of the mean over seeds of
    score(arm run, seed) - score(control, seed), the control's score at a seed being the mean over
    its pretext runs (or, with `same_pretext`, that of the same pretext run). A draw resamples with
    replacement the arm's pretext runs (and the control's, where it has several: the same ones with
    `same_pretext`); downstream seeds, one draw for all runs (seed s is the same data order and
    head init everywhere: the pairing); and test images, one draw per test set, shared by every run
    scored on it.

    The levels are crossed (every run is scored on the same images), so resampling all of them in one
    draw (`scheme="joint"`, the default) counts the run-by-image noise (which images a run happens to
    get right) at every level, up to 7 times its share of the variance: a conservative interval
    when that noise dominates, and one that stays near its nominal coverage when 2 or 3 pretext runs
    differ a lot. `scheme="separate"` adds two independent deviations instead: the gain of all runs
    on resampled images (each image-level part counted once), and the gain of resampled pretext runs
    and seeds on all images, scaled by sqrt(1 - noise / total), the noise share being what the same
    run resampling gives on the image draws' deviations. It is nominal when the pretext runs agree
    and too narrow with 2 or 3 that do not (docs/method.md gives the simulated coverage of both).

    Args:
        arm: per-image mappings (see the module docstring) as [pretext run][seed].
        control: the same as [pretext run][seed], or a flat [seed] list (random init).
        measure: a `Measure` or its name ("top1", "mIoU", "mAP").
        n_boot: bootstrap draws.
        seed: seed of the draws.
        paired: False draws the control's seeds independently of the arm's (an unpaired analysis,
            for comparison); the test images stay shared.
        scheme: "joint" or "separate" (above).
        same_pretext: the control's pretext run p is the arm's pretext run p (e.g. the same colorizer
            at fewer steps), so that they pair and are drawn together.

    Returns:
        a `Gain`, in points.
    """
    measure = MEASURES[measure] if isinstance(measure, str) and measure in MEASURES else measure
    if not isinstance(measure, Measure):
        raise ValueError(f"measure must be a Measure or one of {sorted(MEASURES)}, received {measure!r}.")
    if scheme not in SCHEMES:
        raise ValueError(f"scheme must be one of {SCHEMES}, received {scheme!r}.")
    if int(n_boot) < 1:
        raise ValueError(f"n_boot must be a positive integer, received {n_boot!r}.")
    arm, control = _nested(arm, "arm"), _nested(control, "control")
    n_seeds = len(arm[0])
    if len(control[0]) != n_seeds:
        raise ValueError(f"the arm has {n_seeds} seeds per pretext run and the control {len(control[0])}: each arm "
                         "seed needs its control run.")
    sizes, group = _image_groups(arm, control, measure)
    p, q = len(arm), len(control)
    if same_pretext and p != q:
        raise ValueError(f"same_pretext pairs the arm's and the control's pretext runs one to one, but the arm has {p} "
                         f"and the control {q}.")

    observed_arm = np.array([[measure.score(run) for run in seeds] for seeds in arm])  # [P, S]
    observed_control = np.array([[measure.score(run) for run in seeds] for seeds in control])  # [Q, S]
    per_pretext = (observed_arm - (observed_control if same_pretext else observed_control.mean(axis=0))).mean(axis=1)
    gain = float(per_pretext.mean())

    prepared_arm = [[measure.prepare(run) for run in seeds] for seeds in arm]
    prepared_control = [[measure.prepare(run) for run in seeds] for seeds in control]
    rng = np.random.default_rng(seed)
    deviations, runs, noise = [], [], []
    for start in range(0, int(n_boot), _CHUNK):
        b = min(_CHUNK, int(n_boot) - start)
        counts = []
        for n in sizes:  # `b` draws of n images with replacement, as multiplicities [n, b]
            index = rng.integers(0, n, (b, n)) + n * np.arange(b)[:, None]
            counts.append(np.bincount(index.ravel(), minlength=b * n).reshape(b, n).T.astype(np.float64))
        arm_scores, control_scores = (
            np.moveaxis(np.array([[measure.resampled(prep, counts[group[s]]) for s, prep in enumerate(seeds)]
                                  for seeds in prepared]), -1, 0)  # [b, runs, seeds]
            for prepared in (prepared_arm, prepared_control))
        arm_runs = rng.integers(0, p, (b, p))
        control_runs = arm_runs if same_pretext else rng.integers(0, q, (b, q))
        arm_seeds = rng.integers(0, n_seeds, (b, n_seeds))
        control_seeds = arm_seeds if paired else rng.integers(0, n_seeds, (b, n_seeds))

        def resampled_gain(arm_values, control_values):
            return _pick(arm_values, arm_runs, arm_seeds) - _pick(control_values, control_runs, control_seeds)

        if scheme == "joint":
            deviations.append(resampled_gain(arm_scores, control_scores) - gain)
            continue
        arm_noise, control_noise = arm_scores - observed_arm, control_scores - observed_control
        all_runs_noise = arm_noise.mean(axis=(1, 2)) - control_noise.mean(axis=(1, 2))
        deviations.append(all_runs_noise)  # the gain of all runs on the drawn images, less the observed gain
        runs.append(resampled_gain(np.broadcast_to(observed_arm, (b, p, n_seeds)),
                                   np.broadcast_to(observed_control, (b, q, n_seeds))) - gain)
        noise.append(resampled_gain(arm_noise, control_noise) - all_runs_noise)
    draws, scale = np.concatenate(deviations), 1.0
    if scheme == "separate":
        runs, noise = np.concatenate(runs), np.concatenate(noise)
        total = float(np.mean(runs ** 2))
        scale = float(np.sqrt(max(0.0, 1.0 - float(np.mean(noise ** 2)) / total))) if total > 0 else 0.0
        draws = draws + scale * runs
    draws = 100 * (gain + draws)
    p_value = 2 * min(float(np.mean(draws <= 0)), float(np.mean(draws >= 0)))
    return Gain(gain=100 * gain, ci95=_percentiles(draws, 0.95), ci90=_percentiles(draws, 0.90),
                p_value=float(np.clip(p_value, 1 / len(draws), 1.0)),
                per_pretext=tuple(float(value) for value in 100 * per_pretext), n_boot=len(draws), seeds=n_seeds,
                images=int(max(sizes)), control_runs=q, paired=bool(paired), scheme=scheme, run_scale=scale)


# --------------------------------------------------------------------------------------------------
# Verdicts, multiplicity, the figure
# --------------------------------------------------------------------------------------------------


def verdict(ci95, ci90, sesoi=1.0):
    """What an interval says of a gain, with `sesoi` the smallest effect of interest (points).

    "helps" / "hurts": the 95 % interval lies above / below 0. "equivalent": it does not, and the
    90 % interval lies inside (-sesoi, +sesoi) (the two one-sided tests at 5 %). An interval both
    above 0 and inside the band is a real but small effect: "helps (< 1 point)" / "hurts (< 1 point)".
    Anything else is "inconclusive": no evidence of a gain is not evidence of no gain.
    """
    if not sesoi > 0:
        raise ValueError(f"sesoi must be a positive number of points, received {sesoi!r}.")
    (low95, high95), (low90, high90) = ci95, ci90
    inside = -sesoi < low90 and high90 < sesoi
    small = f" (< {sesoi:g} point{'' if sesoi == 1 else 's'})" if inside else ""
    if low95 > 0:
        return "helps" + small
    if high95 < 0:
        return "hurts" + small
    return "equivalent" if inside else "inconclusive"


def holm(pvalues):
    """Holm's step-down adjusted p-values, in the given order: the i-th smallest is multiplied by
    (m - i + 1), then made non-decreasing along the sorted order and capped at 1."""
    pvalues = np.asarray(pvalues, dtype=np.float64)
    if pvalues.ndim != 1 or np.isnan(pvalues).any() or (pvalues < 0).any() or (pvalues > 1).any():
        raise ValueError(f"pvalues must be a 1-D list of numbers in [0, 1], received {pvalues.tolist()}.")
    m = len(pvalues)
    order = np.argsort(pvalues, kind="stable")
    adjusted = np.minimum(1.0, np.maximum.accumulate(pvalues[order] * (m - np.arange(m))))
    result = np.empty(m)
    result[order] = adjusted
    return result


def forest_plot(rows, path, caption, sesoi=1.0, family=None):
    """One row per contrast and measure: the gain, its 95 % interval, the +-sesoi band, 0, and at the
    right the numbers, the verdict and the p-value, Holm-adjusted over the rows of the `family`;
    `caption` (what produced the numbers: commit, config, checkpoints, seeds) along the bottom.

    Args:
        rows: (label, `Gain`) pairs, drawn top to bottom.
        path: the PNG to write.
        caption: text under the axes.
        sesoi: smallest effect of interest, in points.
        family: indices of the rows whose p-values Holm adjusts together (None: all rows); the others
            show their own p-value (secondary contrasts).

    Returns:
        the matplotlib Figure (closed; its axes can still be read).
    """
    from cgan_colorization.engine.plots import plt

    rows = list(rows)
    if not rows:
        raise ValueError("forest_plot needs at least one (label, Gain) row.")
    family = range(len(rows)) if family is None else list(family)
    shown = [f"p {result.p_value:.2g}" for _, result in rows]
    for index, p_holm in zip(family, holm([rows[index][1].p_value for index in family])):
        shown[index] = f"Holm p {p_holm:.2g}"
    y = np.arange(len(rows))
    gains = np.array([result.gain for _, result in rows])
    low = gains - np.array([result.ci95[0] for _, result in rows])
    high = np.array([result.ci95[1] for _, result in rows]) - gains
    fig, ax = plt.subplots(figsize=(10, 1.8 + 0.45 * len(rows)))
    band = f"\u00b1{sesoi:g} point{'' if sesoi == 1 else 's'} (smallest effect of interest)"
    ax.axvspan(-sesoi, sesoi, color="tab:green", alpha=0.15, lw=0, label=band)
    ax.axvline(0, color="black", lw=0.8)
    ax.errorbar(gains, y, xerr=[low, high], fmt="o", color="tab:blue", capsize=3, label="gain, 95 % CI")
    ax.set_yticks(y, [label for label, _ in rows])
    ax.set_ylim(len(rows) - 0.5, -0.5)
    ax.set_xlabel("gain over the control (points)")
    for row, ((_, result), p_text) in enumerate(zip(rows, shown)):
        note = ax.annotate(f"{result.gain:+.2f} [{result.ci95[0]:+.2f}, {result.ci95[1]:+.2f}]  {result.verdict(sesoi)}"
                           f"  ({p_text})", (1.02, row), xycoords=("axes fraction", "data"), va="center", fontsize=8)
        note.set_in_layout(False)  # the layout leaves it the right third of the figure
    ax.legend(loc="lower left", bbox_to_anchor=(0, 1), ncol=2, fontsize=8, frameon=False)
    ax.grid(axis="x", alpha=0.3)
    fig.text(0.01, 0.01, caption, fontsize=7, va="bottom", wrap=True)
    fig.tight_layout(rect=(0, 0.06, 0.64, 1))
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return fig
