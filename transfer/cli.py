"""Command-line entry points of the downstream scripts."""

import json
import sys

from cgan_colorization.config import build_parser, config_from_args
from transfer.config import TASK_PRESETS, FinetuneConfig

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
    "strategy": "tf.distribute strategy: auto (mirrored over several GPUs), one, mirrored, multiworker or tpu",
    "mixed_precision": "auto (mixed_float16 on GPUs, float32 on CPUs), float32, mixed_float16 or mixed_bfloat16",
    "backbone": "unet (the paper's encoder / U-Net, reading Lab's L) or mobilenetv2 (the multitask MobileNetV2 "
                "models, reading YUV's Y); by default the colorizer's",
}


def finetune_main(task, argv=None):
    """`python finetune_classifier.py` / `python finetune_segmenter.py`."""
    presets = {name: TASK_PRESETS[(task, name)] for name in ("fast", "paper")}
    what = "multi-label classifier (encoder + 2 x Dense 4096)" if task == "classification" else \
        "U-Net segmenter (the whole generator + a softmax output)"
    parser = build_parser(
        f"Fine-tune a {what} from the colorizer's weights in two phases (frozen, then unfrozen), or from "
        "scratch with --init random, and score it on the test split. --preset paper sets the paper's epochs, "
        "rates and batch size.", FinetuneConfig, presets, _HELP, exclude=("task",))
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
