"""`report.md` of a reproduction: Table 3 and Table 4 shapes with mean and spread over seeds, the
sample grid, the loss curves and the resolved configuration."""

import json
import os
import shutil
import subprocess

import numpy as np

from cgan_colorization.apps.inference import describe_checkpoint
from cgan_colorization.constants import DEFAULT_CHECKPOINT
from cgan_colorization.engine.plots import plt, save_loss_curves
from cgan_colorization.pretexts import registry
from cgan_colorization.pretexts.registry import PAPER_PRETEXT
from transfer.feature_eval import format_table as format_probe_table

PAPER = {  # Treneska et al. 2022, Tables 3 and 4
    "psnr": (20.94, 8.82, 42.61), "ssim": (0.85, 0.31, 0.99),
    "classification": {"random": 47.18, "colorization": 52.83},
    "segmentation": {"random": 44.66, "colorization": 47.07},
}
TASK_METRICS = {
    "classification": [("mAP", "mAP"), ("exact_match_accuracy", "exact-match acc"),
                       ("per_label_accuracy", "per-label acc"), ("sample_f1", "sample F1")],
    "segmentation": [("mIoU", "mIoU"), ("pixel_accuracy", "pixel acc")],
}
SINGLE_LABEL_METRICS = [("top1", "top-1"), ("top5", "top-5"), ("mean_class_accuracy", "mean class acc")]
PAPER_FLOOR = registry.PRETEXTS[PAPER_PRETEXT].floor
_FLOOR_LABELS = {b.random_name: b.random_label for b in registry.BACKBONES.values()}


def task_metrics(results, task):
    """The measures of a task's table: top-1 / top-5 for a single-label classification set (whose runs
    report them), else the paper's task measures."""
    if task == "classification" and any(r["task"] == task and "top1" in r["test"] for r in results):
        return SINGLE_LABEL_METRICS
    return TASK_METRICS[task]


def _mean_std(values):
    values = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=np.float64)
    if not len(values):
        return "n/a"
    return f"{100 * values.mean():.2f} ± {100 * values.std(ddof=1 if len(values) > 1 else 0):.2f}"


def _pretext(result):
    """The init's row name: the random floor, or the pretext with "@best" when its best-validation
    generator was transferred."""
    name = result.get("pretext") or ("random" if result["init"] == "random" else PAPER_PRETEXT)
    if result["init"] != "colorization":
        return name
    # Runs from before the checkpoint was recorded loaded generator_best.weights.h5 whenever it existed.
    return registry.checkpoint_label(name, (result.get("colorizer") or {}).get("checkpoint", "best"))


def _commit():
    """The package's git commit (with "+ uncommitted changes" when the tree differs), or "unknown"."""
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        commit = subprocess.run(["git", "-C", here, "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                check=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", here, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return commit + (" + uncommitted changes" if dirty else "")


def _label(name, single):
    """Row label: the paper's two inits keep their names when only the GAN pretext ran."""
    if name in _FLOOR_LABELS:
        return _FLOOR_LABELS[name]
    return "colorization" if single else f"{name} pretext"


def _distinct(pretexts):
    """The first `registry.PretextRef` of each label, in order: a table pools the runs of a pretext (its
    pretext seeds) in one row."""
    first = {}
    for ref in pretexts:
        first.setdefault(ref.label, ref)
    return list(first.values())


def _inits(pretexts):
    """Table rows: the from-scratch floors of the architectures of `pretexts` (`registry.PretextRef`s),
    then the pretexts' labels."""
    return list(dict.fromkeys([*(ref.entry.floor for ref in pretexts), *(ref.label for ref in pretexts)]))


def _paired(results, task, name, floor, fraction=1.0):
    """(run of init `name`, run of `floor` at the same downstream seed) for every run of `name`, across its
    pretext runs: the floor run of seed s pairs with seed s of every pretext run."""
    control = {r["seed"]: r for r in _by(results, task, floor, fraction)}
    return [(r, control[r["seed"]]) for r in _by(results, task, name, fraction) if r["seed"] in control]


def _by(results, task, pretext, fraction=1.0):
    """The runs of one task and init on `fraction` of the training labels, by seed."""
    return sorted((r for r in results if r["task"] == task and _pretext(r) == pretext
                   and r.get("label_fraction", 1.0) == fraction), key=lambda r: r["seed"])


def label_efficiency(results, task, pretexts, figures):
    """The task's main measure by share of training labels, one row per init (mean ± std over
    seeds), and its plot; None when every run used all the labels."""
    fractions = sorted({r.get("label_fraction", 1.0) for r in results if r["task"] == task})
    if len(fractions) < 2:
        return None
    key, label = task_metrics(results, task)[0]
    rows = ["| init | " + " | ".join(f"{100 * f:g} % of the labels" for f in fractions) + " |",
            "|---|" + "---|" * len(fractions)]
    fig, ax = plt.subplots(figsize=(6, 4))
    single = len(_distinct(pretexts)) == 1
    for name in _inits(pretexts):
        cells, means, stds = [], [], []
        for fraction in fractions:
            values = [r["test"].get(key) for r in _by(results, task, name, fraction)]
            cells.append(_mean_std(values))
            finite = [v for v in values if v is not None and np.isfinite(v)]
            means.append(100 * np.mean(finite) if finite else np.nan)
            stds.append(100 * np.std(finite, ddof=1) if len(finite) > 1 else 0.0)
        rows.append(f"| {_label(name, single)} | " + " | ".join(cells) + " |")
        ax.errorbar([100 * f for f in fractions], means, yerr=stds, marker="o", capsize=3,
                    label=_label(name, single), linestyle="--" if name in _FLOOR_LABELS else "-")
    ax.set_xscale("log")
    ax.set_xlabel("% of the training labels")
    ax.set_ylabel(f"test {label} (%)")
    ax.set_title(f"{task}: label efficiency")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = os.path.join(figures, f"{task}_label_efficiency.png")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return "\n".join(rows), os.path.relpath(path, os.path.dirname(figures))


def table3(results, scored_on=None):
    """{objective: evaluation} -> the Table 3 layout, one row per pretext. `scored_on` names the
    held-out data of pretexts trained on other data than the first one (e.g. the multitask ones)."""
    scored_on = scored_on or {}
    rows = ["| | PSNR mean | PSNR min | PSNR max | SSIM mean | SSIM min | SSIM max | colourfulness "
            "| dead bottleneck units | bottleneck spread |", "|---|---|---|---|---|---|---|---|---|---|"]
    line = lambda label, r, extra="| |": (  # noqa: E731
        f"| {label} | {r['psnr']['mean']:.2f} | {r['psnr']['min']:.2f} | {r['psnr']['max']:.2f} | "
        f"{r['ssim']['mean']:.3f} | {r['ssim']['min']:.3f} | {r['ssim']['max']:.3f} | "
        f"{r['colourfulness']['mean']:.1f} {extra}")
    for name, result in results.items():
        b = result.get("bottleneck")
        extra = f"| {100 * b['dead_fraction']:.0f} % | {b['spread']:.4f} |" if b else "| |"
        label = "colorizer" if len(results) == 1 else f"{name} colorizer"
        label += f", {describe_checkpoint(result['checkpoint'])}" if result.get("checkpoint") else ""
        label += f" (scored on `{scored_on[name]}`)" if name in scored_on else ""
        rows.append(line(label, result["model"], extra) if "model" in result
                    else f"| {label} (no colour: a supervised ceiling) | | | | | | | {extra}")
    scored = [r for r in results.values() if "model" in r]
    if not scored:
        return "\n".join(rows)
    any_result = scored[0]
    rows.append(line("grey baseline (ab = 0)", any_result["grey_baseline"]))
    rows.append(f"| originals | | | | | | | {any_result['original']['colourfulness']['mean']:.1f} | | |")
    (pm, pn, px), (sm, sn, sx) = PAPER["psnr"], PAPER["ssim"]
    rows.append(f"| paper (COCO, 256 px) | {pm} | {pn} | {px} | {sm} | {sn} | {sx} | | | |")
    return "\n".join(rows) + (
        f"\n\n{any_result['num_images']} held-out images. The last two columns describe the 1 x 1 bottleneck, "
        "all that the classifier sees: the share of its ReLU units that are zero on every image, and how much "
        "the code varies across images (near 0: every image gets the same code, and the classifier can learn "
        "nothing from the transferred encoder).")


def _sample_grid(run_dir, checkpoint):
    """The run's sample grid of the epoch whose generator was loaded (the last one without a record)."""
    folder = os.path.join(run_dir, "samples")
    grids = sorted(os.listdir(folder)) if os.path.isdir(folder) else []
    epoch = (checkpoint or {}).get("epoch")
    if epoch and f"epoch_{epoch:03d}.png" in grids:
        return os.path.join(folder, f"epoch_{epoch:03d}.png")
    return os.path.join(folder, grids[-1]) if grids else None


def _batchnorm(results):
    """The BatchNorm setting of the runs: momenta, and the transferred layers' mode in phase 2."""
    momenta = sorted({m for r in results for m in r.get("bn_momenta", [])})
    modes = sorted({r["unfrozen_bn"] for r in results if r.get("unfrozen_bn")})
    return (f"BatchNorm momentum {', '.join(f'{m:g}' for m in momenta) or 'n/a'}, transferred BatchNorm layers in "
            f"phase 2: {', '.join(modes) or 'n/a'} mode")


def weights_table(results):
    """Which generator each pretext row loaded: file, checkpoint, epoch and the start of its SHA-256."""
    rows = ["| pretext | weights file | checkpoint | SHA-256 |", "|---|---|---|---|"]
    for name, result in results.items():
        info = result.get("checkpoint") or {}
        rows.append(f"| {name} | `{info.get('file', 'unrecorded')}` | {describe_checkpoint(info)} | "
                    f"{info.get('sha256', '')[:12]} |")
    return "\n".join(rows) + (
        f"\n\n`last` is the generator at the end of training (the default, as in the paper and pix2pix); `best` the "
        "one of the epoch with the lowest validation value of the pretext's monitor. A pretext written NAME@best "
        f"loads the latter; every other row the {DEFAULT_CHECKPOINT} one. Every file above was made by this "
        "study's pretext step (`transfer.reproduce.run_pretext`), which trains each colorizer in that file's run "
        "folder (its `config.json` re-runs it) or reads back the finished run it finds there; the fine-tuning runs "
        "and the probes only load these files and train no colorizer.")


def table4(results, task, pretexts):
    metrics = task_metrics(results, task)
    paper_measures = metrics == TASK_METRICS[task]  # the paper's figures sit beside its own measures only
    single = len(_distinct(pretexts)) == 1
    header = "| init | " + " | ".join(label for _, label in metrics) + " | runs | paper |"
    rows = [header, "|" + "---|" * (len(metrics) + 3)]
    for name in _inits(pretexts):
        runs = _by(results, task, name)
        cells = [_mean_std([r["test"].get(key) for r in runs]) for key, _ in metrics]
        paper = {PAPER_FLOOR: PAPER[task]["random"], PAPER_PRETEXT: PAPER[task]["colorization"]}.get(name, "") \
            if paper_measures else ""
        rows.append(f"| {_label(name, single)} | " + " | ".join(cells) + f" | {len(runs)} | {paper} |")
    for ref in _distinct(pretexts):
        name, floor = ref.label, ref.entry.floor
        pairs = _paired(results, task, name, floor)
        gains = [[c["test"].get(key, np.nan) - r["test"].get(key, np.nan) for c, r in pairs] for key, _ in metrics]
        paper = f"{PAPER[task]['colorization'] - PAPER[task]['random']:.2f}" \
            if name == PAPER_PRETEXT and paper_measures else ""
        rows.append(f"| gain ({_label(name, single)} - {_label(floor, single)}) | "
                    + " | ".join(_mean_std(g) for g in gains) + f" | {len(pairs)} | {paper} |")
    sizes = sorted({r["test"].get("num_images", r["test"].get("num_samples")) for r in results
                    if r["task"] == task and r.get("label_fraction", 1.0) == 1.0} - {None})
    if sizes:
        n = str(sizes[0]) if len(sizes) == 1 else f"{sizes[0]}-{sizes[-1]}"
        rows.append(f"\nn = {n} test images per run" + (" (too few for these figures to mean much)"
                                                         if sizes[0] < 30 else "") + ".")
    return "\n".join(rows)


def gain_intervals(results, tasks, pretexts):
    """Rows of the gains table: each pretext over its floor in each task's main measure (all the labels),
    with the 95 % interval of the hierarchical bootstrap (`transfer.stats`: its pretext runs, then the
    paired downstream seeds, then the test images) and the verdict against a 1-point smallest effect;
    a pretext whose runs lack per-image data (or their run folders) has no row."""
    from transfer import stats

    single = len(_distinct(pretexts)) == 1
    rows = []
    for task in tasks:
        key, label = task_metrics(results, task)[0]
        for ref in _distinct(pretexts):
            name, floor = ref.label, ref.entry.floor
            runs = {}  # {pretext seed: {downstream seed: (run, floor run)}}
            for run, control in _paired(results, task, name, floor):
                runs.setdefault(run.get("pretext_seed"), {})[run["seed"]] = (run, control)
            seeds = sorted(set.intersection(*(set(by_seed) for by_seed in runs.values()))) if runs else []
            if not seeds:
                continue
            try:
                arm = [[stats.load_per_image(by_seed[s][0]["folder"]) for s in seeds] for by_seed in runs.values()]
                control = [stats.load_per_image(next(iter(runs.values()))[s][1]["folder"]) for s in seeds]
            except (KeyError, FileNotFoundError):
                continue
            gain = stats.hierarchical_bootstrap(arm, control, key)
            rows.append(f"| {task} | {label} | {_label(name, single)} - {_label(floor, single)} | {gain.gain:+.2f} | "
                        f"[{gain.ci95[0]:+.2f}, {gain.ci95[1]:+.2f}] | {gain.pretext_runs} x {gain.seeds} x "
                        f"{gain.images} | {gain.verdict()} |")
    if not rows:
        return None
    return "\n".join(["| task | measure | contrast | gain (points) | 95 % CI | pretext runs x seeds x test images "
                      "| verdict |", "|---|---|---|---|---|---|---|", *rows])


def _mean_curves(results, task, figures, pretexts):
    series = {}
    for init in _inits(pretexts):
        curves = [r["history"].get("loss", []) for r in _by(results, task, init)]
        curves = [c for c in curves if c]
        if curves:
            length = min(len(c) for c in curves)
            series[f"{init} init (train)"] = np.mean([c[:length] for c in curves], axis=0).tolist()
        val = [r["history"].get("val_loss", []) for r in _by(results, task, init)]
        val = [c for c in val if c]
        if val:
            length = min(len(c) for c in val)
            series[f"{init} init (val)"] = np.mean([c[:length] for c in val], axis=0).tolist()
    path = os.path.join(figures, f"{task}_loss.png")
    if series:
        save_loss_curves(series, path, f"{task}: loss, mean over seeds")
    return os.path.relpath(path, os.path.dirname(figures))


def write_report(study, colorizers, table3_results, results, seconds, probes=None):
    """Writes OUT/report.md (and OUT/figures/) of a `transfer.study.Study` and returns its path.
    `colorizers` maps each of its pretexts (`registry.PretextRef`) to its run folder and `table3_results`
    to its evaluation."""
    pretexts = list(colorizers)
    step = study.pretext
    scored_on = {ref.run_label: step.multitask_dataset for ref in pretexts
                 if ref.entry.needs_masks and step.multitask_dataset}
    scores = {ref.run_label: table3_results[ref] for ref in pretexts}
    out = study.out
    figures = os.path.join(out, "figures")
    os.makedirs(figures, exist_ok=True)
    colorizer_dir = colorizers[pretexts[0]]
    tasks = study.downstream.tasks
    data = "".join(f"; {task} data: `{study.downstream.datasets[task]}`" for task in tasks)
    lines = [f"# Reproduction report ({study.preset} preset)", "",
             f"Code: commit {_commit()}. Pretext data: `{step.dataset}`"
             + (f" (multitask pretexts: `{step.multitask_dataset}`)" if step.multitask_dataset else "")
             + f"{data}; {study.seeds} downstream seed(s) (0-{study.seeds - 1})"
             + (f", {study.pretext_seeds} runs of each pretext (pretext seeds 0-{study.pretext_seeds - 1})"
                if study.pretext_seeds > 1 else "")
             + f"; {_batchnorm(results)}; total time {seconds / 60:.1f} min.", "",
             "## Colorizer weights", "", weights_table(scores), "",
             "## Colorization (the paper's Table 3)", "",
             "PSNR (dB) and SSIM between colorized and original images in sRGB with max_val 1, over the "
             "colorizer's held-out images; the grey baseline predicts ab = 0. Colourfulness (Hasler and "
             "Suesstrunk) shows how far a pretext desaturates.", "", table3(scores, scored_on), ""]
    for index, ref in enumerate(pretexts):
        name = ref.run_label
        grid = _sample_grid(colorizers[ref], table3_results[ref].get("checkpoint"))
        if grid:
            target = "samples.png" if index == 0 else f"samples_{name}.png"
            shutil.copy(grid, os.path.join(figures, target))
            caption = "grey input, colorization, original" if index == 0 else \
                f"{name} pretext: grey input, colorization, original"
            lines += [f"![{caption}](figures/{target})", f"*{os.path.relpath(grid, out)}*", ""]
    for name in ("loss_l1.png", "loss_adversarial.png"):
        if os.path.isfile(os.path.join(colorizer_dir, name)):
            shutil.copy(os.path.join(colorizer_dir, name), os.path.join(figures, f"colorizer_{name}"))
            lines += [f"![colorizer {name}](figures/colorizer_{name})", ""]
    lines += ["## Downstream tasks (the paper's Table 4)", "",
              "Test-split scores in %, mean ± standard deviation over seeds (and pretext runs; `runs` counts "
              "both). The paper reports one run: "
              "an undefined 'Acc' for classification and mIoU for segmentation.", ""]
    for task in tasks:
        lines += [f"### {task.capitalize()}", "", table4(results, task, pretexts), "",
                  f"![{task} loss curves]({_mean_curves(results, task, figures, pretexts)})", ""]
    intervals = gain_intervals(results, tasks, pretexts)
    if intervals:
        lines += ["### Gains with confidence intervals", "",
                  "Each pretext over random init in the task's main measure: the mean over its pretext runs of the "
                  "gain paired by downstream seed, with the 95 % interval of a hierarchical bootstrap (pretext runs, "
                  "then seeds, then test images; docs/method.md) and what it says against a smallest effect of "
                  "interest of 1 point: helps or hurts (the interval excludes 0), equivalent (the 90 % interval lies "
                  "inside ±1), else inconclusive.", "", intervals, ""]
    efficiency = {task: label_efficiency(results, task, pretexts, figures) for task in tasks}
    if any(efficiency.values()):
        lines += ["## Label efficiency", "",
                  "Test scores (%) when fine-tuning on a share of the training labels (the first ones of the "
                  "split's seeded order, so the shares nest; each share is repeated to take as many steps as all "
                  "the labels), mean ± standard deviation over seeds.", ""]
        for task, outcome in efficiency.items():
            if outcome:
                lines += [f"### {task.capitalize()} ({task_metrics(results, task)[0][1]})", "", outcome[0], "",
                          f"![{task} label efficiency]({outcome[1]})", ""]
    if probes:
        for name in ("probes.png", "low_shot.png"):
            source = os.path.join(out, "probes", name)
            if os.path.isfile(source):
                shutil.copy(source, os.path.join(figures, name))
        lines += ["## Linear probes on frozen features", "",
                  "Goyal et al. 2019's benchmark on the classification data: for each encoder level, one linear SVM "
                  "per class on the frozen, pooled, L2-normalized features; test mAP (%). Random floors: mean ± "
                  "standard deviation over their seeds.", "", format_probe_table(probes), "",
                  "![test mAP by encoder level](figures/probes.png)", "",
                  "![low-shot linear probe](figures/low_shot.png)", ""]
    lines += ["## Pretexts", ""] + [f"- `{name}`: {entry.summary}"
                                     for name, entry in {ref.name: ref.entry for ref in pretexts}.items()] + [""]
    lines += ["The paper's classification 'Acc' (47.18 / 52.83 %) is not defined there; mAP, exact-match "
              "accuracy, per-label accuracy and sample F1 are all given above so that its numbers can be "
              "matched on Pascal VOC. Per-label accuracy on VOC is dominated by absent labels (above 90 % "
              "even for weak models), so it cannot be the paper's measure.", "",
              "## Configuration", "", "```json", json.dumps(study.record(), indent=2), "```", ""]
    path = os.path.join(out, "report.md")
    with open(path, "w") as f:
        f.write("\n".join(lines))
    return path
