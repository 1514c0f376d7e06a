"""Command-line entry points of the downstream scripts."""

import json
import sys

from cgan_colorization import registry, runtime
from cgan_colorization.config import PRECISION_HELP, PRESET_NAMES, STRATEGY_HELP, build_parser, config_from_args
from transfer.config import RANGES, TASK_PRESETS, FinetuneConfig

_HELP = {
    "init": "'colorization' (transfer the colorizer's weights, two phases) or 'random' (N(0, 0.02), from scratch)",
    "colorizer": "colorizer run folder or generator weights; trained first with the fast default when absent",
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
    "out": "parent folder; this run goes to OUT/<init>",
    "split_mode": "'paper' (70/20/10 stratified re-split) or 'official' (VOC train/val lists)",
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
    "run_name": "name of this run's folder under --out (default: the init)",
    "strategy": STRATEGY_HELP,
    "mixed_precision": PRECISION_HELP,
    "backbone": " or ".join(f"{b.name} (the {b.label}, reading {'Lab L' if b.color_space == 'lab' else 'YUV Y'})"
                            for b in registry.BACKBONES.values()) + "; by default the colorizer's",
}


def classifier_main(argv=None):
    """`python finetune_classifier.py` (`cgan-finetune-classifier`)."""
    return finetune_main("classification", argv)


def segmenter_main(argv=None):
    """`python finetune_segmenter.py` (`cgan-finetune-segmenter`)."""
    return finetune_main("segmentation", argv)


def reproduce_main(argv=None):
    """`python reproduce.py` (`cgan-reproduce`): the whole protocol and its report."""
    runtime.configure()
    from transfer.reproduce import main  # TensorFlow loads here, after the runtime settings

    return main(argv)


def finetune_main(task, argv=None):
    """`python finetune_classifier.py` / `python finetune_segmenter.py`."""
    runtime.configure()
    presets = {name: TASK_PRESETS[(task, name)] for name in PRESET_NAMES}
    what = "multi-label classifier (encoder + 2 x Dense 4096)" if task == "classification" else \
        "U-Net segmenter (the whole generator + a softmax output)"
    parser = build_parser(
        f"Fine-tune a {what} from the colorizer's weights in two phases (frozen, then unfrozen), or from "
        "scratch with --init random, and score it on the test split. --preset paper sets the paper's epochs, "
        "rates and batch size.", FinetuneConfig, presets, _HELP, exclude=("task",), ranges=RANGES)
    args = parser.parse_args(argv)
    config = config_from_args(args, FinetuneConfig, presets)
    config.task = task
    from transfer.experiment import run_finetune

    try:
        result = run_finetune(config)
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2)
    print(json.dumps({k: v for k, v in result["test"].items() if not isinstance(v, (dict, list))}, indent=2))
    return result
