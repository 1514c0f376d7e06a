"""The verdict study (docs/verdict-study.md): does the paper's GAN colorization pretraining make
downstream models better, and does the gain grow with pretext photos and steps? Pre-registered
arms on Tiny ImageNet at 64 px, several pretext seeds, trained in a fixed order.

Each part is a set of run folders under OUT that are read back when finished, so the command can be
stopped at any time and run again; `OUT/times.json` keeps each run's wall time. The parts:

    python verdict_study.py --tiny ../shared/realdata/tiny-imagenet-200 --out runs/verdict --part pretext

`pretext` trains every arm of `ARMS` (`--only NAME` for some of them), in the order listed;
`probes` scores every finished network's frozen features (kNN and linear top-1 per encoder level on
Tiny ImageNet) and its colorizations on the held-out photos; `downstream` fine-tunes the segmenter
on CamVid from every finished network and from random init (also at 3x its steps). Each part takes
only the pretext runs that have finished, so it can run beside a later part's training.
"""

import csv
import dataclasses
import json
import os
import re
import sys
import time

import numpy as np

from cgan_colorization.engine.schema import build_parser as build_options_parser, comma_subset, option
from data.diskfull import write_json

# The study's fixed settings (docs/verdict-study.md, "Protocol"): the fast preset's width at 64 px,
# batch 16, epochs of 250 steps (per-epoch validation and grids then cost under 5 % of a run).
IMAGE_SIZE, BASE_FILTERS, BATCH_SIZE, STEPS_PER_EPOCH = 64, 32, 16, 250
PRETEXT_STEPS = 12_000
KEPT_STEP = 3_000


@dataclasses.dataclass(frozen=True)
class Arm:
    """One pretext condition: the registered pretext, photos a class (0: all 250), optimizer steps,
    pretext seeds, and the steps at which its generator is also kept."""

    name: str
    pretext: str
    per_class: int
    steps: int
    seeds: tuple
    keep_steps: tuple = ()
    steps_per_epoch: int = STEPS_PER_EPOCH
    options: tuple = ()  # (field, value) pairs of the TrainConfig beyond the study's defaults


# In training order: the primary contrasts' runs first, so that a study cut short has them.
ARMS = (
    Arm("gan-50k", "gan", 0, PRETEXT_STEPS, (0, 1, 2), keep_steps=(KEPT_STEP,)),
    Arm("gan-5k", "gan", 25, PRETEXT_STEPS, (0, 1)),
    Arm("l1-50k", "l1", 0, PRETEXT_STEPS, (0, 1)),
    # Adam 2e-4, not the registered 1e-3, which kills the encoder's ReLU bottleneck (docs/verdict-study.md,
    # Amendments).
    Arm("supervised", "supervised", 0, 12 * 3_030, (0,), steps_per_epoch=3_030,
        options=(("lr", 2e-4), ("beta_1", 0.9), ("lr_schedule", "cosine"), ("flip", True))),
    # 6,000 steps: its whole-run step measured 2.4x the GAN's, not within 1.5x (docs/benchmarks.md), the
    # protocol's rule for that case.
    Arm("classification-50k", "classification", 0, PRETEXT_STEPS // 2, (0, 1)),
)
# Frozen-feature evaluation (docs/verdict-study.md): the linear probe trains on the first 100 photos of each
# class of the class-balanced training order; the kNN bank is the whole training split.
LINEAR_PER_CLASS = 100
RANDOM_SEEDS = (0, 1, 2)
# CamVid fine-tuning: label shares, downstream seeds of a pretrained network and of random init, and the
# converged-scratch control's multiple of the steps.
LABEL_FRACTIONS = (0.1, 1.0)
DOWNSTREAM_SEEDS = (0, 1)
RANDOM_DOWNSTREAM_SEEDS = (0, 1, 2)
SCRATCH_MULTIPLE = 3
TEST_SEQUENCE = "0006R0"  # CamVid's test split: this whole video sequence (docs/data.md)
ORDER = (("gan-50k", 0), ("gan-50k", 1), ("gan-50k", 2), ("gan-5k", 0), ("l1-50k", 0), ("supervised", 0),
         ("classification-50k", 0), ("gan-5k", 1), ("l1-50k", 1), ("classification-50k", 1))


def arm(name):
    return next(a for a in ARMS if a.name == name)


def run_folder(out, name, seed):
    """OUT/pretext/NAME-seedS: the seed is in every run's name."""
    return os.path.join(out, "pretext", f"{name}-seed{seed}")


def pretext_config(args, spec, seed):
    """The TrainConfig of one pretext run of the study."""
    from cgan_colorization.engine.config import TrainConfig
    from cgan_colorization.pretexts import registry

    steps_per_epoch = min(spec.steps_per_epoch, spec.steps)
    values = dict(registry.PretextRef.named(spec.pretext, seed=seed).train_values(),
                  dataset=f"tinyimagenet:{args.tiny}", max_photos_per_class=spec.per_class,
                  image_size=IMAGE_SIZE, base_filters=BASE_FILTERS, batch_size=BATCH_SIZE,
                  steps_per_epoch=steps_per_epoch, epochs=spec.steps // steps_per_epoch,
                  keep_steps=",".join(map(str, spec.keep_steps)), out=run_folder(args.out, spec.name, seed),
                  backup_every=500, **dict(spec.options))
    return TrainConfig(**values)


def networks(args):
    """[(network name, weights path or None, pretext run folder or None, seed)] that can be scored now:
    every finished pretext run at its last checkpoint, GAN-50k also at its kept step, then random init."""
    from cgan_colorization.engine.callbacks import KEPT_STEP_FILE
    from cgan_colorization.engine.training import SUMMARY_FILE

    found = []
    for name, seed in ORDER:
        folder = run_folder(args.out, name, seed)
        if not os.path.isfile(os.path.join(folder, SUMMARY_FILE)):
            continue
        found.append((f"{name}-seed{seed}", os.path.join(folder, "generator.weights.h5"), folder, seed))
        for step in arm(name).keep_steps:
            found.append((f"{name}@{step}-seed{seed}", os.path.join(folder, KEPT_STEP_FILE.format(step)), folder,
                          seed))
    return found + [(f"random-seed{seed}", None, None, seed) for seed in RANDOM_SEEDS]


def results_folder(args):
    """Where the scored results go (probes/, camvid/, times.json, report.md): `--results`, else OUT. They are
    small (a few hundred kB a network), so they can be kept (committed) where the checkpoints cannot."""
    return getattr(args, "results", None) or args.out


def _times(args):
    os.makedirs(results_folder(args), exist_ok=True)
    path = os.path.join(results_folder(args), "times.json")
    return path, (json.load(open(path)) if os.path.isfile(path) else {})



def run_pretexts(args, log=print, runs=None):
    """Trains every pretext run of the study not yet finished, in `ORDER` (or `runs`); returns their folders."""
    from cgan_colorization.engine.training import SUMMARY_FILE, train

    times_path, times = _times(args)
    folders = []
    for name, seed in runs or ORDER:
        if args.only and name not in args.only:
            continue
        config = pretext_config(args, arm(name), seed)
        folders.append(config.out)
        if os.path.isfile(os.path.join(config.out, SUMMARY_FILE)):
            log(f"[pretext] {name} seed {seed}: finished, in {config.out}")
            continue
        log(f"[pretext] {name} seed {seed}: {config.epochs} x {config.steps_per_epoch} steps in {config.out}")
        start = time.time()
        train(config, verbose=2)
        key = f"pretext {name} seed {seed}"
        with open(os.path.join(config.out, SUMMARY_FILE)) as f:  # every session's time, killed ones up to their
            seconds = json.load(f).get("seconds")  # last backup; runs from before it was kept: this driver's sum
        times[key] = seconds if seconds is not None else round(times.get(key, 0.0) + time.time() - start, 1)
        write_json(times_path, times)
    keep_pretext_records(args)
    return folders


PRETEXT_RECORDS = ("config.json", "log.csv", "train_summary.json")  # the summary last: "done"


def keep_pretext_records(args):
    """Copies each finished pretext run's config, per-epoch log and summary (not its weights) to
    RESULTS/pretext/NAME-seedS, so that the report's curves and times outlast the checkpoints."""
    for name, seed in ORDER:
        folder, kept = run_folder(args.out, name, seed), run_folder(results_folder(args), name, seed)
        if os.path.isfile(os.path.join(folder, PRETEXT_RECORDS[-1])) and \
                not os.path.isfile(os.path.join(kept, PRETEXT_RECORDS[-1])):  # a finished run's records stay as they are
            _keep(folder, kept, PRETEXT_RECORDS)


def _tiny_images(source, split, size=None):
    from data import labelled

    return labelled.classification_dataset(source, split, image_size=IMAGE_SIZE, batch_size=64, training=False,
                                           size=size)


def _encoder(weights, seed):
    """The encoder levels of a network (its weights by layer name) or of a random init of seed `seed`."""
    import keras

    from cgan_colorization.apps.inference import load_colorizer
    from transfer import probes

    keras.utils.set_random_seed(seed)
    network = load_colorizer(weights).network if weights else None
    return probes.encoder_levels("unet", IMAGE_SIZE, BASE_FILTERS, network, seed=seed)


def _features(source, weights, seed, splits=("train", "val", "test")):
    """The encoder's level names and {split: (pooled features by level, class ids)} of one network."""
    from transfer import probes
    from transfer.feature_eval import LINEAR_POOLED_SIZE

    model, names = _encoder(weights, seed)
    features = {}
    for split in splits:
        x, y = probes.extract(model, names, _tiny_images(source, split), progress=False, pooled_size=LINEAR_POOLED_SIZE)
        features[split] = (x, y.argmax(axis=1))
    return names, features


# The linear probe's convergence check (docs/verdict-study.md, "Frozen features"): on these networks the probe
# also runs at this multiple of its epochs; a rise of the best level's validation top-1 above the threshold
# (points) means every probe of the study is run again at that multiple before any contrast is computed.
CONVERGENCE_NETWORKS = ("gan-50k-seed0", "gan-50k-seed1", "random-seed0")  # seed 1: seed 0's check was cut off (docs)
CONVERGENCE_MULTIPLE, CONVERGENCE_THRESHOLD = 3, 0.5


def convergence_check(args, source, name, weights, seed, log=print):
    """The pre-registered convergence check of one network's linear probe: every level fit again at
    `CONVERGENCE_MULTIPLE` x the epochs, and the best level's validation top-1 compared with probes.json's;
    RESULTS/probes/NAME/convergence.json."""
    from transfer import linear_eval

    path = os.path.join(results_folder(args), "probes", name, "convergence.json")
    if os.path.isfile(path):
        with open(path) as f:
            return json.load(f)
    with open(os.path.join(results_folder(args), "probes", name, "probes.json")) as f:
        probed = json.load(f)
    from transfer.report import _commit

    start = time.time()
    names, features = _features(source, weights, seed, splits=("train", "val"))
    (x_train, y_train), (x_val, y_val) = features["train"], features["val"]
    linear_n = LINEAR_PER_CLASS * source.num_classes
    epochs = CONVERGENCE_MULTIPLE * linear_eval.EPOCHS
    longer = {level: linear_eval.linear_top1(x_train[level][:linear_n], y_train[:linear_n], x_val[level], y_val,
                                             x_val[level], y_val, source.num_classes, epochs=epochs,
                                             seed=seed)["val_top1"]  # no test split is read: val stands in
              for level in names}
    before = probed["levels"][probed["linear_best_level"]]["val_top1"]
    best = max(longer, key=longer.get)
    rise = 100 * (longer[best] - before)
    result = {"network": name, "code": _commit(), "epochs": linear_eval.EPOCHS, "epochs_longer": epochs,
              "best_level": probed["linear_best_level"], "val_top1": before, "best_level_longer": best,
              "val_top1_longer": longer[best], "val_top1_longer_by_level": longer, "rise_points": round(rise, 3),
              "threshold_points": CONVERGENCE_THRESHOLD, "rerun_every_probe_longer": rise > CONVERGENCE_THRESHOLD,
              "seconds": round(time.time() - start, 1)}
    log(f"[probes] {name}: convergence check at {epochs} epochs: best-level validation top-1 "
        f"{100 * before:.2f} -> {100 * longer[best]:.2f} ({rise:+.2f} points)")
    write_json(path, result)
    return result


def probe_network(args, source, name, weights, seed, log=print):
    """kNN and linear top-1 of every encoder level of one network; OUT/probes/NAME/probes.json and the
    test images' predictions of each level in per_image.npz (for the paired bootstrap)."""
    from transfer import knn_eval, linear_eval

    folder = os.path.join(results_folder(args), "probes", name)
    path = os.path.join(folder, "probes.json")
    if os.path.isfile(path):
        with open(path) as f:
            return json.load(f)
    start = time.time()
    names, features = _features(source, weights, seed)
    (x_train, y_train), (x_val, y_val), (x_test, y_test) = features["train"], features["val"], features["test"]
    linear_n = LINEAR_PER_CLASS * source.num_classes  # the first k x C of the balanced order hold k a class
    k = min(knn_eval.KNN_K, len(y_train))  # a toy set's bank may hold fewer photos than k
    levels, predictions = {}, {"labels": y_test}
    for level in names:
        linear = linear_eval.linear_top1(x_train[level][:linear_n], y_train[:linear_n], x_val[level], y_val,
                                         x_test[level], y_test, source.num_classes, seed=seed, predictions=True)
        predictions[f"linear_{level}"] = np.asarray(linear.pop("test_predictions"), np.int16)
        votes = {split: knn_eval.knn_votes(x_train[level], y_train, x, source.num_classes, k=k)
                 for split, x in (("val", x_val[level]), ("test", x_test[level]))}
        knn_val = float(np.mean(votes["val"].argmax(axis=1) == y_val))
        predictions[f"knn_{level}"] = votes["test"].argmax(axis=1).astype(np.int16)
        knn_test = float(np.mean(predictions[f"knn_{level}"] == y_test))
        levels[level] = dict(linear, knn_top1=knn_test, knn_val_top1=knn_val)
        log(f"[probes] {name} {level}: linear val {100 * linear['val_top1']:.2f} test {100 * linear['top1']:.2f}; "
            f"kNN val {100 * knn_val:.2f} test {100 * knn_test:.2f}")
    from transfer.report import _commit

    result = {"network": name, "code": _commit(), "weights": weights, "seed": seed, "levels": levels,
              "linear_best_level": max(levels, key=lambda n: levels[n]["val_top1"]),
              "knn_best_level": max(levels, key=lambda n: levels[n]["knn_val_top1"]),
              "num_train": int(len(y_train)), "num_linear_train": int(linear_n), "num_val": int(len(y_val)),
              "num_test": int(len(y_test)), "knn": {"k": k, "temperature": knn_eval.KNN_TEMPERATURE},
              "seconds": round(time.time() - start, 1)}
    if weights:
        from cgan_colorization.apps.inference import checkpoint_info

        result["checkpoint"] = checkpoint_info(weights)
    os.makedirs(folder, exist_ok=True)
    np.savez_compressed(os.path.join(folder, "per_image.npz"), **predictions)
    write_json(path, result)
    return result


def diagnose_colorizer(args, name, weights, log=print):
    """Table 3 and the bottleneck's health of one colorizing network on the held-out photos
    (OUT/probes/NAME/colorizer.json)."""
    from cgan_colorization.apps.evaluation import bottleneck_health, evaluate_colorizer
    from cgan_colorization.apps.inference import load_colorizer
    from data.pipeline import parse_dataset, pretext_dataset

    path = os.path.join(results_folder(args), "probes", name, "colorizer.json")
    if os.path.isfile(path):
        return
    colorizer = load_colorizer(weights)
    source = parse_dataset(f"tinyimagenet:{args.tiny}")
    ds = pretext_dataset(source, "val", image_size=IMAGE_SIZE, batch_size=64, color_space=colorizer.color_space)
    result = evaluate_colorizer(colorizer.predict_ab, ds, color_space=colorizer.color_space)
    from transfer.report import _commit

    result.update(bottleneck=bottleneck_health(colorizer.network, ds, colorizer.bottleneck),
                  checkpoint=colorizer.checkpoint, code=_commit())
    log(f"[probes] {name}: PSNR {result['model']['psnr']['mean']:.2f} dB (grey {result['grey_baseline']['psnr']['mean']:.2f})")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    write_json(path, result)


def ceiling_test(args, source, name, weights, log=print):
    """The supervised ceiling's own test top-1: its classification head's answers on the test photos
    (RESULTS/probes/NAME/ceiling.json)."""
    from cgan_colorization.apps.inference import checkpoint_info, load_colorizer
    from transfer.report import _commit

    path = os.path.join(results_folder(args), "probes", name, "ceiling.json")
    if os.path.isfile(path):
        return
    network = load_colorizer(weights).network
    answers, labels = [], []
    for gray, onehot in _tiny_images(source, "test"):
        answers.append(np.argmax(network(gray, training=False), axis=-1))
        labels.append(np.argmax(onehot, axis=-1))
    correct = np.concatenate(answers) == np.concatenate(labels)
    log(f"[probes] {name}: its own head's test top-1 {100 * correct.mean():.2f}")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    write_json(path, {"network": name, "code": _commit(), "test_top1": float(correct.mean()),
                      "num_test": int(correct.size), "checkpoint": checkpoint_info(weights)})


def run_probes(args, log=print, wanted=None, convergence=True):
    """The frozen-feature part for every network that can be scored now (those `wanted(name)` accepts), with
    the convergence check of `CONVERGENCE_NETWORKS` unless `convergence` is False."""
    from cgan_colorization.engine.config import load_config, pretext_of
    from data import labelled

    source = labelled.parse_labelled(f"tinyimagenet:{args.tiny}", "classification", verbose=False)
    times_path, times = _times(args)
    for name, weights, folder, seed in networks(args):
        if wanted and not wanted(name):
            continue
        start = time.time()
        probe_network(args, source, name, weights, seed, log)
        entry = pretext_of(load_config(folder)) if weights else None
        if entry and entry.colorizes:
            diagnose_colorizer(args, name, weights, log)
        elif entry and entry.objective == "supervised":
            ceiling_test(args, source, name, weights, log)
        _record_time(times_path, times, f"probes {name}", start)
        if convergence and name in CONVERGENCE_NETWORKS:
            start = time.time()
            convergence_check(args, source, name, weights, seed, log)
            _record_time(times_path, times, f"convergence check {name}", start)


def _record_time(path, times, key, start):
    """Keeps the wall time since `start` as `key` of times.json, unless the part was only read back
    (under 5 s): a part run again after a finished one keeps the finished one's time."""
    if time.time() - start > 5:
        times[key] = round(time.time() - start, 1)
        write_json(path, times)


def camvid_spec(root):
    return f"seg-folder:{root}/train,{root}/trainannot;{root}/val,{root}/valannot"


def downstream_runs(args, wanted=None):
    """[(network, weights or None, seed, label fraction, epochs multiple)] of the CamVid part, primary
    networks first: every pretrained network with DOWNSTREAM_SEEDS, random init with
    RANDOM_DOWNSTREAM_SEEDS at the same steps and at SCRATCH_MULTIPLE x."""
    runs = []
    for name, weights, _, _ in networks(args):
        if weights is None or (wanted and not wanted(name)):
            continue
        runs += [(name, weights, s, f, 1) for s in DOWNSTREAM_SEEDS for f in LABEL_FRACTIONS]
    randoms = [("random", None, s, f, m) for m in (1, SCRATCH_MULTIPLE) for s in RANDOM_DOWNSTREAM_SEEDS
               for f in LABEL_FRACTIONS]
    return (randoms if not wanted or wanted("random") else []) + runs


def run_downstream(args, log=print, wanted=None):
    """The CamVid part: the segmenter fine-tuned from every network (equal optimizer steps: pretrained 1
    frozen + 5 unfrozen epochs, random 6, and random at 3x), its test mIoU with per-image confusions."""
    from cgan_colorization.engine.schema import preset as preset_values
    from transfer.config import FinetuneConfig
    from transfer.experiment import run_finetune

    preset = preset_values("fast", "segmentation")
    epochs = preset["frozen_epochs"] + preset["unfrozen_epochs"]
    assert preset["baseline_epochs"] == epochs, "every init gets the same optimizer steps"
    times_path, times = _times(args)
    for name, weights, seed, fraction, multiple in downstream_runs(args, wanted):
        network = name if multiple == 1 else f"{name}-x{multiple}"
        parent = os.path.join(args.out, "camvid", network)
        run_name = f"labels{100 * fraction:g}-seed{seed}"
        kept = os.path.join(results_folder(args), "camvid", network, run_name)
        if os.path.isfile(os.path.join(kept, "metrics.json")):
            continue
        log(f"[camvid] {network}, {100 * fraction:g} % of the labels, seed {seed}")
        values = dict(preset, baseline_epochs=epochs * multiple)
        config = FinetuneConfig(task="segmentation", init="random" if weights is None else "colorization",
                                colorizer=weights, dataset=camvid_spec(args.camvid), split_mode="sequence",
                                test_sequence=TEST_SEQUENCE, void_index=11, seed=seed, label_fraction=fraction, out=parent, run_name=run_name,
                                image_size=IMAGE_SIZE, base_filters=BASE_FILTERS, **values)
        start = time.time()
        run_finetune(config, verbose=0, log=log)
        _keep(os.path.join(parent, run_name), kept, ("per_image.npz", "metrics.json"))  # metrics.json last: "done"
        times[f"camvid {network} {run_name}"] = round(time.time() - start, 1)
        write_json(times_path, times)


def _keep(run_dir, kept, names):
    """Copies a fine-tuning run's scores (not its weights) to the results folder."""
    import shutil

    if os.path.abspath(run_dir) == os.path.abspath(kept):
        return
    os.makedirs(kept, exist_ok=True)
    for name in names:
        shutil.copyfile(os.path.join(run_dir, name), os.path.join(kept, name + ".tmp"))
        os.replace(os.path.join(kept, name + ".tmp"), os.path.join(kept, name))


def _network_results_done(args, name):
    """Whether every result of one scored network is in the results folder (probes, diagnostics of a colorizer,
    CamVid at every downstream seed and label share)."""
    root = results_folder(args)
    runs = [os.path.join(root, "camvid", name, f"labels{100 * f:g}-seed{s}", "metrics.json")
            for s in DOWNSTREAM_SEEDS for f in LABEL_FRACTIONS]
    return all(os.path.isfile(p) for p in [os.path.join(root, "probes", name, "probes.json"), *runs])


def pretext_names(spec, seed):
    """The scored networks of one pretext run: its last checkpoint and each kept step."""
    return [f"{spec.name}-seed{seed}"] + [f"{spec.name}@{step}-seed{seed}" for step in spec.keep_steps]


def run_all(args, log=print):
    """The study network by network, so that each session leaves finished results: the random-init controls
    first, then each pretext run of `ORDER` trained, probed and fine-tuned before the next one starts. A pretext
    run whose results are all in the results folder is not trained again (its checkpoints may be gone)."""
    randoms = lambda name: name.startswith("random")  # noqa: E731
    run_probes(args, log, wanted=randoms)
    run_downstream(args, log, wanted=randoms)
    for name, seed in ORDER:
        if args.only and name not in args.only:
            continue
        names = pretext_names(arm(name), seed)
        if all(_network_results_done(args, n) for n in names):
            log(f"[all] {name} seed {seed}: every result is in {results_folder(args)}")
            continue
        run_pretexts(args, log, runs=[(name, seed)])
        run_probes(args, log, wanted=names.__contains__, convergence=False)  # the contrasts' scores first
        run_downstream(args, log, wanted=names.__contains__)
        run_probes(args, log, wanted=names.__contains__)  # then the (long) convergence check, where one is due


# ----------------------------------------------------------------------------------------------
# The report: tables, paired contrasts with bootstrap intervals, verdicts, the forest plot
# ----------------------------------------------------------------------------------------------

PROTOCOL_COMMIT = "980b24a"  # the commit that fixed docs/verdict-study.md before the first run
N_BOOT = 10_000
SESOI = 1.0
# (label, measure key, primary): the probes' best-level top-1s and CamVid's mIoU at each label share.
MEASURES = (("linear top-1", "linear", True), ("CamVid mIoU, 100 %", "camvid-1", True),
            ("kNN top-1", "knn", False), ("CamVid mIoU, 10 %", "camvid-0.1", False))
# (name, arm, control, same pretext runs, primary family): the pre-registered contrasts.
CONTRASTS = (("H1", "gan-50k", "random", False, True), ("H2", "gan-50k", "gan-5k", False, True),
             ("H3", "gan-50k", "gan-50k@3000", True, True), ("H4", "gan-50k", "l1-50k", False, False),
             ("ceiling - GAN", "supervised", "gan-50k", False, False),
             ("Zhang - GAN", "classification-50k", "gan-50k", False, False))
SCRATCH_CONTROL = "random-x3"


def scored_networks(args, part, condition):
    """The networks of a condition ("gan-50k", "gan-50k@3000", "random") with results in RESULTS/PART, by
    seed (so that the same seed of two conditions pairs), read from the results folder alone."""
    folder = os.path.join(results_folder(args), part)
    names = [n for n in (os.listdir(folder) if os.path.isdir(folder) else [])
             if "-seed" in n and n.rsplit("-seed", 1)[0] == condition and n.rsplit("-seed", 1)[1].isdigit()]
    return sorted(names, key=lambda n: int(n.rsplit("-seed", 1)[1]))


def _probe_runs(args, network_prefix, key):
    """[[per-image mapping]] of the finished networks of a condition for a probe measure ("linear",
    "knn"): each network's test answers at its own best level (chosen on validation)."""
    runs = []
    for name in scored_networks(args, "probes", network_prefix):
        folder = os.path.join(results_folder(args), "probes", name)
        if not os.path.isfile(os.path.join(folder, "probes.json")):
            continue
        with open(os.path.join(folder, "probes.json")) as f:
            level = json.load(f)[f"{key}_best_level"]
        with np.load(os.path.join(folder, "per_image.npz")) as stored:
            runs.append([{"correct": (stored[f"{key}_{level}"] == stored["labels"]).astype(np.int8)}])
    return runs


def _camvid_runs(args, network_prefix, fraction, seeds):
    """[[per-image mapping by downstream seed]] of a condition's finished CamVid runs at one label share."""
    from transfer.stats import load_per_image

    if network_prefix.startswith("random"):
        names = [network_prefix]
    else:
        names = scored_networks(args, "camvid", network_prefix)
    runs = []
    for name in names:
        folders = [os.path.join(results_folder(args), "camvid", name, f"labels{100 * fraction:g}-seed{s}") for s in seeds]
        if all(os.path.isfile(os.path.join(f, "per_image.npz")) for f in folders):
            runs.append([load_per_image(f) for f in folders])
    return runs


def condition_runs(args, condition, measure):
    """The runs of one condition ("random", "gan-50k", "gan-50k@3000", ...) for one measure key, as
    [pretext run][seed] (random init's network seeds are its runs for the probes)."""
    if measure in ("linear", "knn"):
        return _probe_runs(args, condition, measure)
    fraction = float(measure.split("-", 1)[1])
    if condition.startswith("random"):
        runs = _camvid_runs(args, condition, fraction, DOWNSTREAM_SEEDS)  # the seeds that pair with the arms'
        return runs[0] if runs else []
    return _camvid_runs(args, condition, fraction, DOWNSTREAM_SEEDS)


def contrasts(args, n_boot=N_BOOT):
    """[(contrast, measure label, primary, Gain or None)] of every pre-registered contrast."""
    from transfer.stats import hierarchical_bootstrap

    rows = []
    plan = [(name, arm_, control, same, primary) for name, arm_, control, same, primary in CONTRASTS]
    plan += [(f"{arm_.name} - scratch x3", arm_.name, SCRATCH_CONTROL, False, False) for arm_ in ARMS]
    for name, arm_name, control_name, same, family in plan:
        for label, key, primary in MEASURES:
            if control_name == SCRATCH_CONTROL and key in ("linear", "knn"):
                continue  # the scratch control is a fine-tuning control
            arm_runs, control_runs = condition_runs(args, arm_name, key), condition_runs(args, control_name, key)
            gain = None
            if arm_runs and control_runs and (not same or len(arm_runs) == len(control_runs)):
                gain = hierarchical_bootstrap(arm_runs, control_runs, "top1" if key in ("linear", "knn") else "mIoU",
                                              n_boot=n_boot, seed=0, same_pretext=same)
            rows.append((name, label, family and primary, gain))
    return rows


def _score(args, condition, key):
    """Mean (%) and the number of runs of a condition's measure, from its per-image data."""
    from transfer.stats import MIOU, TOP1

    runs = condition_runs(args, condition, key)
    if not runs:
        return None, 0
    flat = [run for seeds in (runs if isinstance(runs[0], list) else [runs]) for run in seeds]
    measure = TOP1 if key in ("linear", "knn") else MIOU
    return 100 * float(np.mean([measure(run) for run in flat])), len(flat)


def _colorizer_lines(args):
    """The colorizer diagnostics of every scored colorizing network (Table 3's measures on the held-out
    photos and the bottleneck's health), with the grey baseline."""
    folder = os.path.join(results_folder(args), "probes")
    found = [(name, json.load(open(os.path.join(folder, name, "colorizer.json")))) for name in
             sorted(os.listdir(folder) if os.path.isdir(folder) else [])
             if os.path.isfile(os.path.join(folder, name, "colorizer.json"))]
    if not found:
        return []
    cell = lambda m: f"{m['mean']:.2f} ({m['min']:.2f}-{m['max']:.2f})"  # noqa: E731
    lines = ["", f"## Colorizer diagnostics ({found[0][1]['num_images']:,} held-out photos; mean (min-max); dead "
                 "units: bottleneck channels that never fire, spread: their spread across images)", "",
             "| network | checkpoint | PSNR (dB) | SSIM | colourfulness | CIEDE2000 | dead units | spread |",
             "|---|---|---|---|---|---|---|---|"]
    for name, result in found:
        model, health, checkpoint = result["model"], result.get("bottleneck") or {}, result["checkpoint"]
        lines.append(f"| {name} | {checkpoint['checkpoint']}, epoch {checkpoint['epoch']} | {cell(model['psnr'])} | "
                     f"{model['ssim']['mean']:.3f} | {model['colourfulness']['mean']:.1f} | "
                     f"{model['ciede2000']['mean']:.2f} | {health.get('dead_fraction', float('nan')):.1%} | "
                     f"{health.get('spread', float('nan')):.3f} |")
    grey, original = found[0][1]["grey_baseline"], found[0][1]["original"]
    lines.append(f"| grey baseline (ab = 0) | | {cell(grey['psnr'])} | {grey['ssim']['mean']:.3f} | "
                 f"{grey['colourfulness']['mean']:.1f} | {grey['ciede2000']['mean']:.2f} | | |")
    lines.append(f"| the photos | | | | {original['colourfulness']['mean']:.1f} | | | |")
    return lines


def level_scores(args, condition):
    """{measure: {level: [top-1 % of each run]}} of a condition's probed networks ("linear", "knn"), and the
    best level (by validation) of each run's linear probe."""
    scores, best = {"linear": {}, "knn": {}}, []
    for name in scored_networks(args, "probes", condition):
        path = os.path.join(results_folder(args), "probes", name, "probes.json")
        if not os.path.isfile(path):
            continue
        probed = json.load(open(path))
        for level, result in probed["levels"].items():
            scores["linear"].setdefault(level, []).append(100 * result["top1"])
            scores["knn"].setdefault(level, []).append(100 * result["knn_top1"])
        best.append(probed["linear_best_level"])
    return scores, best


def _level_lines(args, conditions):
    """Linear and kNN top-1 at every encoder level, mean over each condition's runs (RESULTS/levels.png)."""
    found = {c: level_scores(args, c) for c in conditions}
    found = {c: v for c, v in found.items() if v[1]}
    if not found:
        return []
    levels = list(next(iter(found.values()))[0]["linear"])
    lines = ["", "## Frozen features at every encoder level (test top-1 %, mean over runs; linear / kNN)", "",
             "| condition | runs | " + " | ".join(levels) + " | best linear level (by validation), per run |",
             "|---|---|" + "---|" * (len(levels) + 1)]
    for condition, (scores, best) in found.items():
        cells = [f"{np.mean(scores['linear'][lv]):.1f} / {np.mean(scores['knn'][lv]):.1f}" for lv in levels]
        lines.append(f"| {condition} | {len(best)} | " + " | ".join(cells) + f" | {', '.join(best)} |")
    _level_plot(found, levels, os.path.join(results_folder(args), "levels.png"))
    return lines + ["", "![linear and kNN top-1 by encoder level](levels.png)"]


def _level_plot(found, levels, path):
    """Two panels (linear, kNN): top-1 by encoder level, a line per condition (mean), its runs' range shaded."""
    from cgan_colorization.engine.plots import plt
    from transfer.report import _commit

    figure, panels = plt.subplots(1, 2, figsize=(10, 4), dpi=100, sharey=True)
    x = np.arange(len(levels))
    for axes, (measure, title) in zip(panels, (("linear", "linear probe"), ("knn", "kNN, k = 20"))):
        for condition, (scores, best) in found.items():
            runs = np.array([scores[measure][level] for level in levels])  # levels x runs
            line, = axes.plot(x, runs.mean(axis=1), marker="o", label=f"{condition} (n = {len(best)})")
            if runs.shape[1] > 1:
                axes.fill_between(x, runs.min(axis=1), runs.max(axis=1), color=line.get_color(), alpha=0.15, lw=0)
        axes.set_xticks(x, levels)
        axes.set_title(f"{title}: test top-1 on 5,058 photos, 202 classes", fontsize=9)
        axes.set_xlabel("encoder level (shallow -> deep)")
    panels[0].set_ylabel("top-1 (%)")
    panels[1].legend(fontsize=7)
    figure.text(0.01, 0.01, f"code {_commit()}, protocol {PROTOCOL_COMMIT}; probes/NAME/probes.json of each run; last "
                            "checkpoints (or kept step); shaded: the runs' range (pretext seeds)", fontsize=6)
    figure.tight_layout(rect=(0, 0.04, 1, 1))
    figure.savefig(path)
    plt.close(figure)


CEILING = "supervised"


def _ceiling_lines(args, linear):
    """Whether the supervised network may be called a ceiling (its linear top-1 above every pretext's), its own
    head's test top-1, and its validation curve (RESULTS/ceiling.png). `linear`: each condition's (mean, runs)."""
    mean, n = linear.get(CEILING, (None, 0))
    if not n:
        return []
    others = {c: v for c, (v, _) in linear.items() if v is not None and c not in (CEILING, "random", SCRATCH_CONTROL)}
    best = max(others, key=others.get) if others else None
    lines = ["", "## The supervised ceiling", ""]
    if best is None or mean > others[best]:
        lines.append(f"Its linear top-1, {mean:.2f} %, beats every pretext's" +
                     (f" (the best: {best}, {others[best]:.2f} %)" if best else "") + ": it is a ceiling.")
    else:
        lines.append(f"Its linear top-1, {mean:.2f} %, does not beat {best}'s ({others[best]:.2f} %): by the protocol "
                     "it is not called a ceiling, only a supervised reference.")
    names = scored_networks(args, "probes", CEILING)
    own = [os.path.join(results_folder(args), "probes", name, "ceiling.json") for name in names]
    for record in (json.load(open(p)) for p in own if os.path.isfile(p)):
        lines.append(f"{record['network']}'s own classification head: test top-1 {100 * record['test_top1']:.2f} % on "
                     f"{record['num_test']:,} photos ({os.path.basename(record['checkpoint']['file'])}, epoch "
                     f"{record['checkpoint']['epoch']}).")
    curves = {}
    for seed in arm(CEILING).seeds:
        path = os.path.join(run_folder(results_folder(args), CEILING, seed), "log.csv")
        if os.path.isfile(path):
            rows = list(csv.DictReader(open(path)))
            curves[f"{CEILING}-seed{seed}"] = [(int(r["epoch"]) + 1, 100 * float(r["val_acc"])) for r in rows
                                               if r.get("val_acc")]
    if any(curves.values()):
        _ceiling_plot(curves, os.path.join(results_folder(args), "ceiling.png"))
        lines += ["", "![its validation top-1 per epoch](ceiling.png)"]
    return lines


def _ceiling_plot(curves, path):
    """The ceiling's validation top-1 after each epoch, one line per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from transfer.report import _commit

    figure, axes = plt.subplots(figsize=(6, 3.6), dpi=100)
    for name, points in curves.items():
        axes.plot(*zip(*points), marker="o", label=name)
    axes.set_xlabel("epoch (3,030 steps of 16 photos)")
    axes.set_ylabel("validation top-1 (%)")
    axes.set_title("The supervised ceiling's own head, on the first 256 validation photos", fontsize=9)
    axes.legend(fontsize=8)
    figure.text(0.01, 0.01, f"code {_commit()}, protocol {PROTOCOL_COMMIT}; log.csv of each run; "
                            f"runs {', '.join(curves)} (pretext seed in the name)", fontsize=6)
    figure.tight_layout(rect=(0, 0.04, 1, 1))
    figure.savefig(path)
    plt.close(figure)


def _direction_lines(rows, adjusted_p):
    """The pre-registered rule of docs/verdict-study.md ("What counts, decided in advance") applied to the
    contrasts: reproduced, against, neither, or not yet decidable while a contrast it needs has not run."""
    gains = {(name, label): gain for name, label, _, gain in rows}
    need = [("H1", label) for label, _, primary in MEASURES if primary] + \
        [(f"gan-50k - scratch x3", "CamVid mIoU, 100 %")] + \
        [(h, label) for h in ("H2", "H3") for label, _, primary in MEASURES if primary]
    missing = [f"{name} on {label}" for name, label in need if gains.get((name, label)) is None]
    lines = ["", "## The paper's direction, by the rule written before the runs", ""]
    if missing:
        return lines + [f"Not yet decidable: {', '.join(missing)} not yet run."]
    primaries = [label for label, _, primary in MEASURES if primary]
    helps = lambda key: gains[key].gain > 0 and adjusted_p[key] < 0.05  # noqa: E731 - helps after Holm
    reproduced = all(helps(("H1", label)) for label in primaries) and \
        gains[("gan-50k - scratch x3", "CamVid mIoU, 100 %")].verdict(SESOI) == "helps"
    against = gains[("H1", "CamVid mIoU, 100 %")].verdict(SESOI) in ("equivalent", "hurts") and \
        all(gains[(h, label)].ci95[1] < SESOI for h in ("H2", "H3") for label in primaries)
    if reproduced:
        lines.append("**Reproduced**: GAN-50k helps over random init on both primary measures after Holm's correction, "
                     "and still helps on CamVid mIoU at 100 % against random init trained 3x longer.")
    elif against:
        lines.append("**Against the paper**: GAN-50k is equivalent to or worse than random init on CamVid mIoU at "
                     "100 %, and neither 10x the photos (H2) nor 4x the steps (H3) buys a point on either primary "
                     "measure (both 95 % intervals below +1).")
    else:
        lines.append("**Neither**: the results meet neither the rule for reproducing the paper's direction nor the "
                     "rule against it; each contrast's verdict is in the table above.")
    return lines


def _cut_lines(args):
    """The pretext runs of the protocol that have no results (cut, or not yet run)."""
    absent = [f"{name} seed {seed}" for name, seed in ORDER
              if not all(_network_results_done(args, n) for n in pretext_names(arm(name), seed))]
    return ["", f"Pretext runs of the protocol without results: {', '.join(absent)}."] if absent else []


def write_report(args, n_boot=N_BOOT, log=print):
    """OUT/report.md and OUT/forest.png from every part that has finished; returns the report's path."""
    from transfer.report import _commit
    from transfer.scaling import blind_guess
    from transfer.stats import forest_plot, holm

    keep_pretext_records(args)
    conditions = ["random", SCRATCH_CONTROL] + [a.name for a in ARMS] + \
        [f"{a.name}@{step}" for a in ARMS for step in a.keep_steps]
    lines = [f"# Verdict study: report (code {_commit()}, protocol {PROTOCOL_COMMIT})", "",
             "Protocol: docs/verdict-study.md. Every condition's networks are its pretext runs at their last "
             "checkpoint (or kept step); random init's are its network seeds (probes) and downstream seeds "
             f"{', '.join(map(str, DOWNSTREAM_SEEDS))} (CamVid, paired by seed). Blind guess (most frequent test "
             f"class): {100 * blind_guess(args.tiny):.2f} %.", "",
             "## Scores (mean over runs, %; n = runs)", "",
             "| condition | " + " | ".join(label for label, _, _ in MEASURES) + " |",
             "|---|" + "---|" * len(MEASURES)]
    scores = {condition: {key: _score(args, condition, key) for _, key, _ in MEASURES} for condition in conditions}
    for condition in conditions:
        cells = list(scores[condition].values())
        if any(n for _, n in cells):
            lines.append(f"| {condition} | " + " | ".join(f"{v:.2f} (n = {n})" if n else "not run" for v, n in cells)
                         + " |")
    rows = contrasts(args, n_boot)
    ran = [row for row in rows if row[3] is not None]
    done = [(f"{name}: {label}", gain) for name, label, _, gain in ran]
    family = [i for i, (name, label, primary, gain) in enumerate(ran) if primary]
    adjusted = dict(zip(family, holm([done[i][1].p_value for i in family]))) if family else {}
    lines += ["", f"## Contrasts (paired hierarchical bootstrap, {n_boot:,} draws; smallest effect of interest "
                  f"{SESOI:g} point; Holm over the primary H1-H3 tests)", "",
              "| contrast | measure | gain (points) | 95 % CI | verdict | p | Holm p |", "|---|---|---|---|---|---|---|"]
    shown = 0
    for name, label, primary, gain in rows:
        if gain is None:
            lines.append(f"| {name} | {label} | not yet run | | | | |")
            continue
        holm_p = f"{adjusted[shown]:.3g}" if shown in adjusted else ""
        lines.append(f"| {name} | {label} | {gain.gain:+.2f} | [{gain.ci95[0]:+.2f}, {gain.ci95[1]:+.2f}] | "
                     f"{gain.verdict(SESOI)} | {gain.p_value:.3g} | {holm_p} |")
        shown += 1
    if done:
        forest_plot(done, os.path.join(results_folder(args), "forest.png"), family=family, sesoi=SESOI,
                    caption=f"code {_commit()}, protocol {PROTOCOL_COMMIT}; {results_folder(args)}; last checkpoints (GAN-50k also "
                            f"step {KEPT_STEP}); pretext seeds per docs/verdict-study.md; downstream seeds "
                            f"{', '.join(map(str, DOWNSTREAM_SEEDS))}; {n_boot:,} bootstrap draws, seed 0")
        lines += ["", "![every contrast with its 95 % interval](forest.png)"]
    lines += _direction_lines(rows, {ran[i][:2]: p for i, p in adjusted.items()}) + _cut_lines(args)
    lines += _ceiling_lines(args, {c: scores[c]["linear"] for c in conditions}) + _level_lines(args, conditions)
    lines += _colorizer_lines(args)
    checks = [os.path.join(results_folder(args), "probes", n, "convergence.json") for n in CONVERGENCE_NETWORKS]
    checks = [json.load(open(p)) for p in checks if os.path.isfile(p)]
    if checks:
        lines += ["", f"## Linear probe convergence check ({CONVERGENCE_MULTIPLE}x the epochs; every probe is run "
                      f"again longer if a best-level validation top-1 rises by more than {CONVERGENCE_THRESHOLD} point)",
                  "", "| network | epochs | val top-1 (%) | longer | rise (points) | rerun every probe |",
                  "|---|---|---|---|---|---|"]
        lines += [f"| {c['network']} | {c['epochs']} -> {c['epochs_longer']} | {100 * c['val_top1']:.2f} | "
                  f"{100 * c['val_top1_longer']:.2f} | {c['rise_points']:+.2f} | "
                  f"{'yes' if c['rerun_every_probe_longer'] else 'no'} |" for c in checks]
    lines += _time_lines(_times(args)[1])
    path = os.path.join(results_folder(args), "report.md")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    log(f"report: {path}")
    return path


# times.json's part prefixes, each a column of the report's time table, with its heading
TIME_COLUMNS = {"pretext": "pretext training", "probes": "probes", "camvid": "CamVid fine-tuning",
                "convergence check": "probe convergence check"}


def time_table(times):
    """{run: {column: (parts, seconds)}} from times.json's parts ("pretext gan-50k seed 0", "probes
    gan-50k@3000-seed0", "camvid gan-50k-seed0 labels10-seed1", ...): a kept step's parts count to its run."""
    table = {}
    for part, seconds in times.items():
        column = next(c for c in TIME_COLUMNS if part.startswith(c + " "))
        words = part[len(column) + 1:].split()
        run = f"{words[0]}-seed{words[2]}" if column == "pretext" else words[0]
        run = re.sub(r"@\d+", "", run)
        count, total = table.setdefault(run, {}).get(column, (0, 0.0))
        table[run][column] = (count + 1, total + seconds)
    return table


def _time_lines(times):
    """The time of each run's parts, in minutes (every part's own time: RESULTS/times.json)."""
    if not times:
        return []
    table = time_table(times)

    def cell(parts):
        count, seconds = parts
        return f"{seconds / 60:.1f}" + (f" ({count})" if count > 1 else "")

    lines = ["", "## Time of each part (minutes; (n): parts summed, e.g. a run's kept step or its CamVid runs; "
                 "each part: times.json)", "",
             "| run | " + " | ".join(TIME_COLUMNS.values()) + " | total |", "|---|" + "---|" * (len(TIME_COLUMNS) + 1)]
    for run in sorted(table):
        total = sum(seconds for _, seconds in table[run].values())
        lines.append(f"| {run} | " + " | ".join(cell(table[run][c]) if c in table[run] else "" for c in TIME_COLUMNS)
                     + f" | {total / 60:.1f} |")
    lines.append("| all | " + " | ".join(f"{sum(t[c][1] for t in table.values() if c in t) / 60:.1f}"
                                         for c in TIME_COLUMNS) + f" | {sum(times.values()) / 60:.1f} |")
    return lines


PARTS = ("pretext", "probes", "downstream", "report", "all")


@dataclasses.dataclass
class VerdictOptions:
    """verdict_study.py's command line: where the data and the study's folders are, and which part and arms run
    (the arms and every protocol value are the constants above, not options). configs/verdict.json holds it."""

    tiny: str = option(None, "the tiny-imagenet-200 folder", required=True)
    out: str = option("runs/verdict", "the study's folder")
    camvid: str = option(None, "the CamVid folder (train, trainannot, val, valannot); needed by --part downstream")
    results: str = option(None, "where the scored results go (probes/, camvid/, times.json, report.md); unset: OUT. "
                                "Pretext checkpoints and fine-tuned weights stay in OUT")
    part: str = option("pretext", "which part of the study to run; 'all': the random-init controls, then each pretext "
                                  "run trained, probed and fine-tuned before the next (a run whose results are all in "
                                  "the results folder is skipped)", choices=PARTS)
    only: tuple = option((), f"comma-separated arms to run, of {', '.join(a.name for a in ARMS)} (none: all)",
                         parse=comma_subset(tuple(a.name for a in ARMS)))


def build_parser():
    return build_options_parser(__doc__, VerdictOptions, raw_description=True)


def main(argv=None):
    args = build_parser().parse(argv)
    from cgan_colorization.engine import runtime

    runtime.configure()
    try:
        if not os.path.isdir(os.path.join(args.tiny, "train")):
            raise FileNotFoundError(f"--tiny {args.tiny} holds no train/ folder: give the tiny-imagenet-200 folder.")
        os.makedirs(args.out, exist_ok=True)
        if args.part in ("downstream", "all") and not (args.camvid and os.path.isdir(os.path.join(args.camvid, "trainannot"))):
            raise FileNotFoundError(f"--part downstream needs --camvid, the CamVid folder with train/ and trainannot/, "
                                    f"received {args.camvid!r}.")
        {"pretext": run_pretexts, "probes": run_probes, "downstream": run_downstream,
         "report": write_report, "all": run_all}[args.part](args)
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
