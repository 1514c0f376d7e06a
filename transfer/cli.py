"""Command-line entry points of the downstream scripts."""

import argparse
import json
import os
import sys

from cgan_colorization import registry, runtime
from cgan_colorization.config import (COLLECTIVE_TIMEOUT_HELP, PRECISION_HELP, PRESET_NAMES, STRATEGY_HELP, Range,
                                      bounded, build_parser, comma_separated,
                                      config_from_args)
from cgan_colorization.constants import CHECKPOINT_HELP, CHECKPOINTS, DEFAULT_COLORIZER, TEXT_CHOICES
from data import TASKS
from transfer import options
from transfer.config import RANGES, STATISTICS_BATCHES, TASK_PRESETS, FinetuneConfig, ProbeConfig

_HELP = {
    "init": "'colorization' (transfer the colorizer's weights, two phases) or 'random' (N(0, 0.02), from scratch)",
    "colorizer": f"colorizer run folder, generator weights file or shipped pretrained:NAME (must exist; nothing is "
                 f"trained here); without it, {DEFAULT_COLORIZER}, which train_colorizer.py writes by default",
    "checkpoint": CHECKPOINT_HELP,
    "dataset": "'synthetic' (embedded), 'voc:PATH' (VOCdevkit/VOC2012), 'tfds:voc/2012' (classification) or "
               "'seg-folder:IMAGES,MASKS' (a labelled folder; see README)",
    "image_size": "input size; by default the colorizer's",
    "base_filters": "U-Net width; by default the colorizer's",
    "batch_size": "images per step",
    "baseline_epochs": "epochs of the from-scratch baseline",
    "frozen_epochs": "phase 1: epochs with the transferred layers frozen",
    "unfrozen_epochs": "phase 2: epochs with everything trainable",
    "lr": "Adam learning rate of the baseline and of phase 1",
    "unfrozen_lr": "Adam learning rate of phase 2",
    "dense_units": "units of the classifier's two hidden dense layers",
    "seed": "seed of weights, data order and splits",
    "out": "parent folder; this run goes to OUT/<run name>",
    "split_mode": "'paper' (70/20/10 stratified re-split), 'official' (VOC train/val lists) or 'sequence' (video "
                  "frames of a seg-folder set such as CamVid, split by the name's prefix before '_': test is one "
                  "whole sequence, val the end of another; docs/data.md)",
    "test_sequence": "--split-mode sequence: the sequence held out whole as the test split (the default is "
                     "one of CamVid's)",
    "val_sequence": "--split-mode sequence: the sequence whose last frames (0.15 of those outside the test sequence, "
                    "after a gap of 5) are the validation split (unset: the longest one besides the test sequence)",
    "include_difficult": "count VOC objects marked difficult in the image labels",
    "void_index": "mask value to ignore in a labelled folder (CamVid: 11); VOC uses 255",
    "min_fraction": "a class is an image-level label when it covers at least this fraction of a mask",
    "num_classes": "classes of a labelled folder (default: from its masks)",
    "synthetic_classes": "object classes of the synthetic scenes",
    "train_size": "at most this many training images (0: the whole split)",
    "val_size": "at most this many validation images (0: the whole split)",
    "test_size": "at most this many test images (0: the whole split)",
    "scale_shorter": "segmentation: first scale image and mask so the shorter side has this many pixels "
                     "(0: the input size, so crops cover the scene; unset: the stored resolution, as the paper)",
    "run_name": "name of this run's folder under --out (default: the init, '-best' for --checkpoint best, "
                "'-labelsP' for a share of the labels, and the seed, e.g. colorization-seed0)",
    "label_fraction": "train on this share of the training labels, the first ones of the split's seeded order (so "
                      "smaller shares nest in larger ones), repeated so that every share takes as many steps",
    "strategy": STRATEGY_HELP,
    "collective_timeout": COLLECTIVE_TIMEOUT_HELP,
    "save_weights": "write the fine-tuned model's weights to the run folder (model.weights.h5)",
    "mixed_precision": PRECISION_HELP,
    "backbone": " or ".join(f"{b.name} (the {b.label}, reading {'Lab L' if b.color_space == 'lab' else 'YUV Y'})"
                            for b in registry.BACKBONES.values()) + "; by default the colorizer's",
    "bn_momentum": "MobileNetV2: momentum of every BatchNorm (unset: 0.9, which suits these short schedules; "
                   "Keras' own 0.999 is for long runs from ImageNet weights, or add --recalibrate-bn)",
    "unfrozen_bn": "phase 2: the transferred BatchNorm layers stay in 'inference' mode with the colorizer's "
                   "statistics and scale (Keras' guide; measured better, README) or 'train' (normalize with each "
                   "batch, update their statistics and scale)",
    "recalibrate_bn": "before the test, re-estimate the moving statistics of the BatchNorm layers that trained "
                      "on this many training batches (0: keep the moving averages of training)",
}


def train_main(argv=None):
    """`python train_colorizer.py` (`cgan-train`): the colorizer's training, with its `--probe` (a feature
    probe belongs to this layer, so the entry point that offers it is here)."""

    def probe(config, run_dir):
        from transfer.online_probe import make_probe  # TensorFlow loads here, after the runtime settings

        return make_probe(config, run_dir)

    from cgan_colorization.cli import train_main as train_colorizer

    return train_colorizer(argv, probe=probe)


def classifier_main(argv=None):
    """`python finetune_classifier.py` (`cgan-finetune-classifier`)."""
    return finetune_main("classification", argv)


def segmenter_main(argv=None):
    """`python finetune_segmenter.py` (`cgan-finetune-segmenter`)."""
    return finetune_main("segmentation", argv)


def reproduce_main(argv=None):
    """`python reproduce.py` (`cgan-reproduce`): the whole protocol and its report."""
    runtime.configure()
    options.reproduce_parser().parse_args(argv)  # a bad value is refused before TensorFlow loads
    from transfer.reproduce import main  # TensorFlow loads here, after the runtime settings

    return main(argv)


def scaling_main(argv=None):
    """`python scaling_study.py` (`cgan-scaling-study`): the data-scaling study on Tiny ImageNet."""
    runtime.configure()
    options.scaling_parser().parse_args(argv)  # a bad value is refused before TensorFlow loads
    from transfer.scaling import main  # TensorFlow loads here, after the runtime settings

    return main(argv)


def _presets(task):
    return {name: TASK_PRESETS[(task, name)] for name in PRESET_NAMES}


def finetune_parser(task, description=None):
    """The parser of the fine-tuning flags of `task` (presets, help, ranges and choices of the
    fine-tuning scripts)."""
    what = "multi-label classifier (encoder + 2 x Dense 4096)" if task == "classification" else \
        "U-Net segmenter (the whole generator + a softmax output)"
    description = description or (
        f"Fine-tune a {what} from the colorizer's weights in two phases (frozen, then unfrozen), or from scratch "
        "with --init random, and score it on the test split. --preset paper sets the paper's epochs, rates and "
        "batch size.")
    return build_parser(description, FinetuneConfig, _presets(task), _HELP, exclude=("task",), ranges=RANGES)


def _finetune_config(task, args):
    config = config_from_args(args, FinetuneConfig, _presets(task))
    config.task = task
    return config


def diagnose_parser(task="segmentation"):
    """The fine-tuning flags of `task` plus the diagnosis' own `--task` and `--statistics-batches`."""
    parser = finetune_parser(
        task, "Train one downstream model as the fine-tuning scripts do, then score the same weights in inference "
        "mode, with batch statistics and with re-estimated BatchNorm statistics (encoder, decoder, all), and "
        "measure how far the moving statistics are from the data's. The presets' values below are those of "
        "--task segmentation unless --task classification is given.")
    parser.add_argument("--task", choices=TASKS, default="segmentation",
                        help="which downstream model to train and diagnose (default segmentation)")
    parser.add_argument("--statistics-batches", type=bounded(int, Range(1)), default=STATISTICS_BATCHES,
                        help=f"training batches that estimate the data's statistics (default {STATISTICS_BATCHES})")
    return parser


def diagnose_main(argv=None):
    """`python diagnose_batchnorm.py` (`cgan-diagnose-batchnorm`): one run, then the same weights scored in
    inference mode, with batch statistics and with re-estimated BatchNorm statistics."""
    runtime.configure()
    pre = argparse.ArgumentParser(add_help=False)  # the task decides the presets of the full parser
    pre.add_argument("--task", choices=TASKS, default="segmentation")
    task = pre.parse_known_args(argv)[0].task
    args = diagnose_parser(task).parse_args(argv)
    config = _finetune_config(task, args)
    from transfer.bn_diagnosis import diagnose  # TensorFlow loads here, after the runtime settings

    try:
        result = diagnose(config, args.statistics_batches)
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2)
    print(json.dumps(result["inspection"], indent=2))
    return result


def finetune_main(task, argv=None):
    """`python finetune_classifier.py` / `python finetune_segmenter.py`."""
    runtime.configure()
    config = _finetune_config(task, finetune_parser(task).parse_args(argv))
    from cgan_colorization.distribute import peer_failure
    from transfer.experiment import run_finetune

    try:
        result = run_finetune(config)
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2)
    except Exception as error:  # noqa: BLE001 - a lost worker is explained; anything else is re-raised
        message = peer_failure(error, " (the run starts over)")
        if message is None:
            raise
        print(f"error: {message}", file=sys.stderr, flush=True)
        os._exit(2)  # the interpreter's shutdown can block on the lost worker's collectives
    print(json.dumps({k: v for k, v in result["test"].items() if not isinstance(v, (dict, list))}, indent=2))
    return result


def features_parser():

    defaults = ProbeConfig()
    parser = argparse.ArgumentParser(
        description="Linear probes on frozen features (Goyal et al. 2019): for every encoder level of each "
        "colorizer and of the random init of its backbone, one linear SVM per class on pooled, L2-normalized "
        "features, cost by 3-fold cross-validation; test mAP per level, and low-shot curves (on a single-label set "
        "such as tinyimagenet:PATH instead one linear softmax classifier per level, rate and weight decay chosen "
        "on the validation split: test top-1, and a weighted kNN classifier on the same features: test kNN top-1). "
        "Writes OUT/probes.json, OUT/probes.png and OUT/low_shot.png.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    count = bounded(int, Range(0))
    parser.add_argument("--colorizer", action="append", default=[],
                        help="a colorizer run folder (repeat for several); none: the random floor alone")
    parser.add_argument("--checkpoint", choices=(*CHECKPOINTS, "both"), default=defaults.checkpoint,
                        help=CHECKPOINT_HELP + "; 'both' probes each colorizer at both")
    parser.add_argument("--dataset", default=defaults.dataset, help=_HELP["dataset"])
    parser.add_argument("--out", default=defaults.out, help="output folder")
    parser.add_argument("--seed", type=count, default=defaults.seed, help="seed of splits, draws and random init")
    parser.add_argument("--random-seeds", type=bounded(int, Range(1)), default=defaults.random_seeds,
                        help="random inits of each backbone (the floor's spread)")
    parser.add_argument("--train-size", type=count, default=defaults.train_size,
                        help="at most this many training (train + val) images; 0: all")
    parser.add_argument("--test-size", type=count, default=defaults.test_size,
                        help="at most this many test images; 0: all")
    parser.add_argument("--batch-size", type=bounded(int, Range(1)), default=defaults.batch_size)
    parser.add_argument("--shots", type=comma_separated(int, Range(1), allow_empty=True, sort=False),
                        default=defaults.shots,
                        help="low-shot positives per class, comma-separated (empty: no low-shot)")
    parser.add_argument("--draws", type=bounded(int, Range(1)), default=defaults.draws,
                        help="random draws per low-shot k")
    parser.add_argument("--split-mode", choices=TEXT_CHOICES["split_mode"], default=defaults.split_mode,
                        help=_HELP["split_mode"])
    parser.add_argument("--test-sequence", default=defaults.test_sequence, help=_HELP["test_sequence"])
    parser.add_argument("--val-sequence", default=defaults.val_sequence, help=_HELP["val_sequence"])
    parser.add_argument("--void-index", type=bounded(int, RANGES["void_index"]),
                        help=_HELP["void_index"])
    parser.add_argument("--min-fraction", type=bounded(float, RANGES["min_fraction"]),
                        default=defaults.min_fraction, help=_HELP["min_fraction"])
    parser.add_argument("--knn-k", type=bounded(int, Range(1)), default=defaults.knn_k,
                        help="single-label sets: training images nearest to each test image that vote in the kNN "
                             "top-1 (Wu et al. 2018; DINO's 20); capped at the number of training images")
    parser.add_argument("--knn-temperature", type=bounded(float, Range(0, low_open=True)),
                        default=defaults.knn_temperature,
                        help="single-label sets: temperature T of the kNN votes, each weighted exp(cosine / T) "
                             "(DINO's 0.07; smaller: the nearest neighbours count more)")
    return parser


def features_main(argv=None):
    """`python evaluate_features.py` (`cgan-evaluate-features`): linear probes per encoder level."""
    runtime.configure()
    args = features_parser().parse_args(argv)
    checkpoints = CHECKPOINTS if args.checkpoint == "both" else (args.checkpoint,)
    config = ProbeConfig(colorizers=tuple((path, c) for path in args.colorizer for c in checkpoints),
                         dataset=args.dataset, out=args.out, seed=args.seed, random_seeds=args.random_seeds,
                         train_size=args.train_size, test_size=args.test_size, batch_size=args.batch_size,
                         shots=args.shots, draws=args.draws, split_mode=args.split_mode,
                         test_sequence=args.test_sequence, val_sequence=args.val_sequence,
                         void_index=args.void_index, min_fraction=args.min_fraction, knn_k=args.knn_k,
                         knn_temperature=args.knn_temperature)
    from transfer.feature_eval import check_inits, run_probes

    try:
        return run_probes(check_inits(config))
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2)
