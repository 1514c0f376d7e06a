"""`evaluate_features.py`: the linear probes of `probes` for several colorizers and the random init
of each of their backbones, on one labelled data set; writes `probes.json`, a plot of the test
score by encoder level (one line per init) and the low-shot curves.

A multi-label set (VOC, CamVid's derived labels, the synthetic scenes) is probed with one linear SVM
per class (test mAP, `probes`); a single-label one (Tiny ImageNet) with one linear softmax
classifier (test top-1, `linear_eval`), its rate and weight decay chosen on the validation split, and
with a weighted kNN classifier on the same pooled features (test kNN top-1, `knn_eval`) whose bank is
the training split alone, the images the linear classifier is fit on (val stays out of the bank: it
chooses the best level by kNN, as it does for the linear classifier).
"""

import dataclasses
import json
import os
import time

import keras
import numpy as np

from cgan_colorization.apps.inference import load_colorizer
from cgan_colorization.engine.config import TrainConfig
from cgan_colorization.engine.plots import plt
from cgan_colorization.pretexts import registry
from data import labelled
from transfer import knn_eval, linear_eval, probes
from transfer.experiment import check_colorizer, colorizer_pretext

# Values per level for the linear top-1 probe: ~2k (not the SVMs' 9k), so that one level of 10k training
# images takes about a minute here (linear_eval's measured cost) and a study can probe ten networks.
LINEAR_POOLED_SIZE = 2048


def _labelled_source(config):
    return labelled.parse_labelled(config.dataset, "classification", seed=config.seed, split_mode=config.split_mode,
                                   test_sequence=config.test_sequence, val_sequence=config.val_sequence,
                                   void_index=config.void_index, min_fraction=config.min_fraction,
                                   synthetic_classes=config.synthetic_classes)


def _images(source, split, image_size, color_space, config, size):
    return labelled.classification_dataset(source, split, image_size=image_size, batch_size=config.batch_size,
                                           seed=config.seed, training=False, size=size or None,
                                           color_space=color_space)


def _features(model, names, source, image_size, color_space, config):
    """Pooled features of the training images (train + val, capped) and of the test images."""
    train = _images(source, "train", image_size, color_space, config, None).concatenate(
        _images(source, "val", image_size, color_space, config, None))
    if config.train_size:
        train = train.unbatch().take(config.train_size).batch(config.batch_size)
    x_train, y_train = probes.extract(model, names, train, progress=False)
    x_test, y_test = probes.extract(model, names, _images(source, "test", image_size, color_space, config,
                                                          config.test_size), progress=False)
    return x_train, y_train, x_test, y_test


def _colorizer_specs(config):
    """[(run folder, checkpoint)] of `config.colorizers` (plain paths take `config.checkpoint`)."""
    return [tuple(spec) if isinstance(spec, (tuple, list)) else (spec, config.checkpoint)
            for spec in config.colorizers]


def _linear_levels(model, names, source, image_size, color_space, config, log):
    """Linear and kNN top-1 of every level on a single-label set. The linear classifier is trained on
    the first `train_size` training images (class-balanced), its rate and weight decay chosen on the
    validation split, and scored on the test split; the best level is the one with the highest
    validation top-1. The kNN classifier's bank is those same training images (not val), its k and
    temperature are `config.knn_k` (capped at the bank's size, the k used recorded) and
    `config.knn_temperature`, and it is scored on the test split ("knn_top1") and on the validation
    split ("knn_val_top1", which picks "knn_best_level")."""
    pooled = config.pooled_size or LINEAR_POOLED_SIZE
    splits = {}
    for split, size in (("train", config.train_size), ("val", None), ("test", config.test_size)):
        x, y = probes.extract(model, names, _images(source, split, image_size, color_space, config, size),
                              progress=False, pooled_size=pooled)
        splits[split] = (x, y.argmax(axis=1))
    (x_train, y_train), (x_val, y_val), (x_test, y_test) = splits["train"], splits["val"], splits["test"]
    knn_k = min(config.knn_k, len(y_train))
    if knn_k < config.knn_k:
        log(f"  kNN: k = {knn_k}, all the training images (--knn-k {config.knn_k} is more than the bank holds)")
    levels = {}
    for name in names:
        levels[name] = linear_eval.linear_top1(x_train[name], y_train, x_val[name], y_val, x_test[name], y_test,
                                               source.num_classes, seed=config.seed)
        knn = {split: knn_eval.knn_top1(x_train[name], y_train, x, y, source.num_classes, k=knn_k,
                                        temperature=config.knn_temperature)
               for split, (x, y) in (("val", (x_val[name], y_val)), ("test", (x_test[name], y_test)))}
        levels[name].update(knn_top1=knn["test"]["top1"], knn_top5=knn["test"]["top5"],
                            knn_val_top1=knn["val"]["top1"])
        log(f"  {name:<22} dim {x_train[name].shape[1]:>6}  val top-1 {100 * levels[name]['val_top1']:6.2f}  "
            f"test top-1 {100 * levels[name]['top1']:6.2f}  kNN val {100 * levels[name]['knn_val_top1']:6.2f}  "
            f"test {100 * levels[name]['knn_top1']:6.2f}")
    best = max(levels, key=lambda name: levels[name]["val_top1"])
    knn_best = max(levels, key=lambda name: levels[name]["knn_val_top1"])
    return {"levels": levels, "best_level": best, "knn_best_level": knn_best,
            "knn": {"k": int(knn_k), "temperature": float(config.knn_temperature), "bank": "train"},
            "num_train": int(len(y_train)), "num_test": int(len(y_test))}


def inits(config, log=print):
    """[(init name, backbone, image size, U-Net width, colorizer network or None, seed, checkpoint
    info or None)]: every colorizer, then `random_seeds` random inits of each backbone at its first
    colorizer's size."""
    runs, floors = [], {}
    for path, checkpoint in _colorizer_specs(config):
        colorizer = load_colorizer(path, checkpoint=checkpoint)
        entry = colorizer_pretext(colorizer)
        size = colorizer.image_size
        width = colorizer.config.base_filters if colorizer.config else TrainConfig().base_filters
        name = base = registry.checkpoint_label(entry.name, checkpoint)
        while name in {r[0] for r in runs}:
            name = f"{base} ({os.path.basename(os.path.normpath(path))})"
        runs.append((name, entry.backbone, size, width, colorizer.network, config.seed, colorizer.checkpoint))
        floors.setdefault(entry.backbone, (size, width))
    if not floors:
        fast = TrainConfig()
        floors[fast.backbone] = (fast.image_size, fast.base_filters)
    for backbone, (size, width) in floors.items():
        for seed in range(config.random_seeds):
            runs.append((registry.BACKBONES[backbone].random_name, backbone, size, width, None, config.seed + seed,
                         None))
    return runs


def run_probes(config, log=print):
    """Probes every init on `config.dataset`; writes OUT/probes.json and the figures; returns the result."""
    start = time.time()
    source = _labelled_source(config)
    os.makedirs(config.out, exist_ok=True)
    result = {"config": dataclasses.asdict(config), "class_names": list(source.class_names), "inits": {}}
    for name, backbone, size, width, network, seed, weights in inits(config, log):
        log(f"[probe] {name} ({backbone}, {size} px, seed {seed})")
        keras.utils.set_random_seed(seed)
        model, names = probes.encoder_levels(backbone, size, width, network, seed=seed)
        color_space = registry.BACKBONES[backbone].color_space
        if getattr(source, "single_label", False):
            outcome = _linear_levels(model, names, source, size, color_space, config, log)
        else:
            x_train, y_train, x_test, y_test = _features(model, names, source, size, color_space, config)
            outcome = probes.probe(x_train, y_train, x_test, y_test, shots=config.shots, draws=config.draws,
                                   seed=config.seed, log=log)
            outcome.update(num_train=int(len(y_train)), num_test=int(len(y_test)))
        outcome.update(backbone=backbone, seed=seed, colorizer=weights)
        result["inits"].setdefault(name, []).append(outcome)
    result["seconds"] = round(time.time() - start, 1)
    with open(os.path.join(config.out, "probes.json"), "w") as f:
        json.dump(result, f, indent=2, default=float)
    plot_levels(result, os.path.join(config.out, "probes.png"))
    if config.shots and not getattr(source, "single_label", False):  # low-shot: the multi-label SVM probes
        plot_low_shot(result, os.path.join(config.out, "low_shot.png"))
    log(format_table(result))
    return result


def measure(outcomes):
    """The score a probe result holds: "top1" (linear softmax, single-label) or "mAP" (SVMs, multi-label)."""
    first = next(iter(outcomes[0]["levels"].values()))
    return "top1" if "top1" in first else "mAP"


def _level_stats(outcomes, level, key=None):
    values = [o["levels"][level][key or measure(outcomes)] for o in outcomes if level in o["levels"]]
    return float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def _score_table(result, key, best_key, best_label):
    """Markdown rows: the score `key` (%) by init and level, and each init's `best_key` level."""
    levels = list(dict.fromkeys(level for outcomes in result["inits"].values() for o in outcomes
                                for level in o["levels"]))
    rows = ["| init | " + " | ".join(levels) + f" | {best_label} |", "|---|" + "---|" * (len(levels) + 1)]
    for name, outcomes in result["inits"].items():
        cells = []
        for level in levels:
            if all(level not in o["levels"] for o in outcomes):
                cells.append("")
                continue
            mean, std = _level_stats(outcomes, level, key)
            cells.append(f"{100 * mean:.2f}" + (f" ± {100 * std:.2f}" if len(outcomes) > 1 else ""))
        rows.append(f"| {name} | " + " | ".join(cells) + f" | {outcomes[0][best_key]} |")
    return rows


def format_table(result):
    """Markdown: test mAP or linear top-1 (%) by init and level, and on a single-label set a second table
    of kNN top-1; random floors give mean ± std over their seeds."""
    any_inits = next(iter(result["inits"].values()))
    any_init = any_inits[0]
    rows = _score_table(result, measure(any_inits), "best_level", "best level (by CV)")
    if measure(any_inits) == "top1":
        rows.append(f"\nTest top-1 (%). {any_init['num_train']} training and {any_init['num_test']} test images; one "
                    "linear softmax classifier on standardized features average-pooled to about "
                    f"{(result['config'].get('pooled_size') or LINEAR_POOLED_SIZE):,} values, rate and weight decay "
                    "chosen on the validation split; best level by validation top-1.")
        if "knn_best_level" in any_init:
            knn = any_init["knn"]
            rows += ["", *_score_table(result, "knn_top1", "knn_best_level", "best level (by val kNN)")]
            rows.append(f"\nTest kNN top-1 (%). The same pooled features, L2-normalized; each test image's k = "
                        f"{knn['k']} most cosine-similar of the {any_init['num_train']} training images vote for "
                        f"their class with weight exp(cosine / {knn['temperature']:g}); best level by validation "
                        "kNN top-1.")
    else:
        rows.append(f"\nTest mAP (%). {any_init['num_train']} training and {any_init['num_test']} test images; "
                    "linear SVM per class on L2-normalized features average-pooled to about 9k values, cost by "
                    "3-fold cross-validation.")
    return "\n".join(rows)


def plot_levels(result, path):
    """Test mAP by encoder level, one line per init (random floors: mean with a band of ± std)."""
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, outcomes in result["inits"].items():
        levels = list(outcomes[0]["levels"])
        stats = [_level_stats(outcomes, level) for level in levels]
        mean = 100 * np.array([s[0] for s in stats])
        std = 100 * np.array([s[1] for s in stats])
        ax.plot(range(len(levels)), mean, marker="o", label=name, linestyle="--" if name.startswith("random") else "-")
        if len(outcomes) > 1:
            ax.fill_between(range(len(levels)), mean - std, mean + std, alpha=0.2)
        ax.set_xticks(range(len(levels)), levels, rotation=30, fontsize=8)
    ax.set_ylabel(f"test {'top-1' if measure(next(iter(result['inits'].values()))) == 'top1' else 'mAP'} (%)")
    ax.set_title("linear probe on frozen features, by encoder level")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_low_shot(result, path):
    """Test mAP against positives per class, at each init's best level (chosen by cross-validation)."""
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, outcomes in result["inits"].items():
        level = outcomes[0]["best_level"]
        curve = outcomes[0]["levels"][level].get("low_shot")
        if not curve:
            continue
        shots = sorted(int(k) for k in curve)
        mean = [100 * curve[k]["mean"] if k in curve else 100 * curve[str(k)]["mean"] for k in shots]
        std = [100 * curve[k]["std"] if k in curve else 100 * curve[str(k)]["std"] for k in shots]
        ax.errorbar(shots, mean, yerr=std, marker="o", capsize=3, label=f"{name} ({level})")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("positives per class (k)")
    ax.set_ylabel("test mAP (%), mean ± std over draws")
    ax.set_title("low-shot linear probe")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def check_inits(config):
    """One-sentence errors for colorizers that do not exist (`experiment.check_colorizer`: the command
    that trains one, or the shipped alternative); nothing is trained here."""
    for path, _ in _colorizer_specs(config):
        check_colorizer(path)
    return config

