"""The data-scaling study on Tiny ImageNet: does colorization pretraining help more as its photos grow?

Pretexts (the paper's `gan` and Zhang's `classification` by default) are trained on nested subsets
of Tiny ImageNet's training photos, N photos of each class (5, 50 and all 250: about 1k, 10k and 50k
photos), with the same step budget at every size; a supervised ceiling (`supervised`: the same
encoder trained with the labels of all the photos) and random init (the floor, over the seeds) sit
beside them. Each is scored the same way: Table 3 on the held-out photos; linear top-1 per encoder
level on Tiny ImageNet (`transfer.linear_eval`, the blind guess beside it); Tiny ImageNet fine-tuning
on a share of the labels (top-1); CamVid segmentation at two shares of the labels (mIoU). The
report gives the tables, the share of the random-to-ceiling gap each pretext closes in linear top-1,
and one figure: gain over random init against the number of pretext photos.

Every part is a run folder that is read back when finished, so the study resumes where it stopped
(it takes hours on a 2-core CPU) and prints each part's time. The command (README, docs):

    python scaling_study.py --tiny ../shared/realdata/tiny-imagenet-200 \\
        --labelled "seg-folder:CAMVID/train,CAMVID/trainannot;CAMVID/val,CAMVID/valannot" --void-index 11
"""

import dataclasses
import json
import os
import sys
import time

import numpy as np

from cgan_colorization.engine.plots import plt
from cgan_colorization.pretexts import registry
from data import tinyimagenet
from data.diskfull import write_json
from transfer import options, reproduce
from transfer.report import _mean_std, weights_table
from transfer.study import Downstream, PretextStep, Probes, Study

CEILING = "supervised"  # the registered pretext that is the study's supervised ceiling


def size_study(args, pretexts, per_class, num_classes):
    """The study of one pretext size (its own folder, `pretexts` trained on `per_class` photos a class), or
    of the random floor (per_class None, no pretexts)."""
    tiny = f"tinyimagenet:{args.tiny}"
    train = args.train_per_class * num_classes
    return Study(
        preset="fast", out=os.path.join(args.out, "random" if per_class is None else f"{per_class}-per-class"),
        seeds=args.seeds, pretexts=tuple(pretexts),
        pretext=PretextStep(dataset=tiny, image_size=args.image_size, base_filters=args.base_filters,
                            epochs=args.pretext_epochs, steps_per_epoch=args.pretext_steps,
                            max_photos_per_class=per_class),
        downstream=Downstream(
            datasets={"classification": tiny, "segmentation": args.labelled}, void_index=args.void_index,
            epoch_scale=args.downstream_scale, train_size=args.segmentation_train_size,
            task_fractions={"classification": (args.tiny_fraction,), "segmentation": tuple(args.camvid_fractions)},
            # Tiny ImageNet: a class-balanced training set, the held-out 10 a class to validate, all val photos to test.
            task_overrides={"classification": dict(train_size=train, val_size=0, test_size=0)}),
        probes=Probes(train_size=train, test_size=0, random_seeds=args.seeds if per_class is None else 0))


def _timed(times, key, function, *args, **kwargs):
    start = time.time()
    result = function(*args, **kwargs)
    times[key] = times.get(key, 0.0) + round(time.time() - start, 1)
    print(f"[scaling] {key}: {time.time() - start:.0f} s", flush=True)
    return result


def run(args):
    """Every part of the study, largest size first (its curves decide nothing afterwards: the step
    budget is fixed by the flags), then the report. Returns the report's path."""
    num_classes = len(tinyimagenet.read_wnids(args.tiny))
    named = registry.parse_pretexts(args.pretexts, colorizing=True, checkpoints=())
    pretexts = [ref.name for ref in named]
    refs = registry.with_seeds(named, args.pretext_seeds)
    os.makedirs(args.out, exist_ok=True)
    write_json(os.path.join(args.out, "config.json"), dataclasses.asdict(args))  # --config OUT/config.json re-runs it
    times_path = os.path.join(args.out, "times.json")
    times = json.load(open(times_path)) if os.path.isfile(times_path) else {}
    sizes = sorted(args.per_class, reverse=True)
    colorizers, table3, results, probes = {}, {}, {}, {}
    for per_class in sizes:
        ceiling = (registry.PretextRef.named(CEILING),) if per_class == sizes[0] and not args.no_ceiling else ()
        study = size_study(args, refs + ceiling, per_class, num_classes)
        here = {}
        for ref in study.pretexts:
            key = (per_class, ref.run_label)
            here[ref], table3[key] = _timed(times, f"pretext {ref.run_label}, {per_class} a class",
                                            reproduce.run_pretext, study, ref)
            colorizers[key] = here[ref]
        results[per_class] = _timed(times, f"downstream, {per_class} a class", reproduce.run_downstream, study, here,
                                    floors=False)
        probes[per_class] = _timed(times, f"linear probes, {per_class} a class", reproduce.run_probes, study, here)
        write_json(times_path, times)
    floor = size_study(args, (), None, num_classes)
    first = {refs[0]: colorizers[(sizes[0], refs[0].run_label)]}  # the floor takes the first colorizer's architecture
    results[None] = _timed(times, "downstream, random init", reproduce.run_downstream, floor, first,
                           colorizations=False)
    probes[None] = _timed(times, "linear probes, random init", reproduce.run_probes, floor, {})
    write_json(times_path, times)
    return write_report(args, num_classes, pretexts, colorizers, table3, results, probes, times)



# ----------------------------------------------------------------------------------------------
# The report
# ----------------------------------------------------------------------------------------------


def _scores(runs, task, fraction, key, pretext=None):
    """{(pretext seed, seed): score} of the runs of one task, label share and init ("random" or a pretext),
    over every run of the pretext."""
    chosen = {}
    for r in runs:
        name = r.get("pretext") if r["init"] == "colorization" else "random"
        if r["task"] == task and r.get("label_fraction", 1.0) == fraction and name == (pretext or "random"):
            chosen[r.get("pretext_seed"), r["seed"]] = r["test"].get(key)
    return chosen


def _best_level_top1(outcome):
    """Test top-1 at the level whose validation top-1 is highest (the level is chosen without the test)."""
    level = outcome["best_level"]
    return outcome["levels"][level]["top1"], level


def measures(args, pretexts, results, probes):
    """{measure: {"random": [values by seed], (per_class, pretext): [values by seed], "supervised": [...]}}
    for the four measures of the figure."""
    tasks = [("linear top-1 (Tiny ImageNet)", None, None, None),
             (f"fine-tuned top-1, {100 * args.tiny_fraction:g} % of the labels", "classification", args.tiny_fraction,
              "top1")]
    tasks += [(f"CamVid mIoU, {100 * f:g} % of the labels", "segmentation", f, "mIoU") for f in args.camvid_fractions]
    table = {}
    largest = max(args.per_class)
    for label, task, fraction, key in tasks:
        row = {}
        if task is None:
            row["random"] = [_best_level_top1(o)[0] for o in probes[None]["inits"].get("random", [])]
            for per_class, outcome in probes.items():
                if per_class is None:
                    continue
                for name, runs in outcome["inits"].items():
                    target = CEILING if name == CEILING else (per_class, name)
                    row[target] = [_best_level_top1(o)[0] for o in runs]
        else:
            row["random"] = list(_scores(results[None], task, fraction, key).values())
            for per_class in args.per_class:
                for name in pretexts:
                    row[(per_class, name)] = list(_scores(results[per_class], task, fraction, key, name).values())
            if not args.no_ceiling:
                row[CEILING] = list(_scores(results[largest], task, fraction, key, CEILING).values())
        table[label] = row
    return table


def blind_guess(tiny_root):
    """Top-1 of always answering the most frequent test class (Tiny ImageNet's val photos)."""
    labels = [label for _, label in tinyimagenet.val_labels(tiny_root, tinyimagenet.read_wnids(tiny_root))]
    return float(np.bincount(labels).max() / len(labels)) if labels else float("nan")


def _gap_closed(row, key):
    floor, ceiling, value = (np.mean(row.get(k) or [np.nan]) for k in ("random", CEILING, key))
    return (value - floor) / (ceiling - floor) if np.isfinite(ceiling) and ceiling != floor else float("nan")


def plot_scaling(args, num_classes, pretexts, table, path, caption=""):
    """Gain over random init against the pretext photos (log axis): a panel per measure, a line per
    pretext (mean ± std over seeds), the supervised ceiling's gain dashed; `caption` (what produced
    it) along the bottom."""
    fig, axes = plt.subplots(1, len(table), figsize=(4.2 * len(table), 4.1), squeeze=False)
    photos = [n * num_classes for n in args.per_class]
    for ax, (label, row) in zip(axes[0], table.items()):
        floor = np.mean(row["random"]) if row.get("random") else np.nan
        for name in pretexts:
            values = [100 * (np.asarray(row.get((n, name)) or [np.nan]) - floor) for n in args.per_class]
            ax.errorbar(photos, [v.mean() for v in values], yerr=[v.std(ddof=1) if len(v) > 1 else 0 for v in values],
                        marker="o", capsize=3, label=name)
        if row.get(CEILING):
            ax.axhline(100 * (np.mean(row[CEILING]) - floor), linestyle="--", color="grey",
                       label="supervised ceiling")
        ax.axhline(0.0, color="black", linewidth=0.8)
        ax.set_xscale("log")
        ax.set_xlabel("pretext photos")
        ax.set_ylabel("gain over random init (points)")
        ax.set_title(label, fontsize=9)
        ax.legend(fontsize=7)
    fig.text(0.01, 0.01, caption, fontsize=7, color="dimgrey")
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_report(args, num_classes, pretexts, colorizers, table3, results, probes, times):
    """OUT/report.md and OUT/scaling.png; returns the report's path."""
    from transfer.report import _commit

    table = measures(args, pretexts, results, probes)
    runs = f" x pretext seeds 0-{args.pretext_seeds - 1}" if args.pretext_seeds > 1 else ""
    figure = os.path.join(args.out, "scaling.png")
    plot_scaling(args, num_classes, pretexts, table, figure,
                 caption=f"commit {_commit()}; {', '.join(pretexts)} on {', '.join(map(str, args.per_class))} photos a "
                         f"class, {args.pretext_epochs} x {args.pretext_steps} steps of 16, {args.image_size} px, "
                         f"{args.base_filters} filters, last checkpoint of each colorizer; downstream seeds "
                         f"0-{args.seeds - 1}{runs} (mean ± std); {args.out}/report.md names each weights file")
    guess = blind_guess(args.tiny)
    columns = list(table)
    lines = [f"# Data-scaling study (Tiny ImageNet, {num_classes} classes)", "",
             f"Code: commit {_commit()}. Pretexts {', '.join(pretexts)} on {', '.join(map(str, args.per_class))} "
             f"photos a class, {args.pretext_epochs} x {args.pretext_steps} steps of 16 at every size, "
             f"{args.image_size} px, {args.base_filters} filters, last checkpoint; downstream seeds 0-{args.seeds - 1}{runs}; "
             f"blind guess (most frequent test class): top-1 {100 * guess:.2f} %.", "",
             "## Colorizer weights", "",
             weights_table({f"{label}, {n} a class": table3[(n, label)] for (n, label) in colorizers}), "",
             "## Every measure (mean ± std over seeds and pretext runs, %)", "",
             "| init | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
    keys = ["random"] + [(n, name) for name in pretexts for n in args.per_class] + [CEILING]
    for key in keys:
        if not any(table[c].get(key) for c in columns):
            continue
        label = key if isinstance(key, str) else f"{key[1]}, {key[0] * num_classes:,} photos"
        lines.append(f"| {label} | " + " | ".join(_mean_std(table[c].get(key) or []) for c in columns) + " |")
    lines += ["", "## Share of the random-to-ceiling gap closed in linear top-1", "",
              "| pretext | " + " | ".join(f"{n * num_classes:,} photos" for n in args.per_class) + " |",
              "|---|" + "---|" * len(args.per_class)]
    linear = table[columns[0]]
    for name in pretexts:
        lines.append(f"| {name} | " + " | ".join(f"{100 * _gap_closed(linear, (n, name)):.0f} %"
                                                 for n in args.per_class) + " |")
    lines += ["", f"![gain over random init against pretext photos]({os.path.basename(figure)})", "",
              "## Linear top-1 per encoder level", ""]
    for per_class in [None] + list(args.per_class):
        outcome = probes.get(per_class)
        if outcome:
            lines += [f"### {'random init' if per_class is None else f'{per_class} photos a class'}", "",
                      reproduce.feature_eval.format_table(outcome), ""]
    lines += ["## Time of each part", "", "| part | minutes |", "|---|---|"]
    lines += [f"| {part} | {seconds / 60:.1f} |" for part, seconds in times.items()]
    lines += ["", f"Total: {sum(times.values()) / 3600:.2f} h.", ""]
    path = os.path.join(args.out, "report.md")
    with open(path, "w") as f:
        f.write("\n".join(lines))
    return path


def main(argv=None):
    args = options.scaling_parser().parse(argv)
    try:
        path = run(args)
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    print(f"report: {path}")
    return path
