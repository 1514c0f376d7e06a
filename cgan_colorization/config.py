"""Run configuration: the presets, the command-line flags that override them, and the run folder."""

import argparse
import dataclasses
import json
import os

PAPER_DATASET = "coco"


@dataclasses.dataclass
class TrainConfig:
    """Everything that defines a colorizer training run; saved as `config.json` in the run folder."""

    objective: str = "gan"
    dataset: str = "synthetic"
    image_size: int = 64
    base_filters: int = 32
    batch_size: int = 16
    epochs: int = 6
    steps_per_epoch: int = 100
    lr: float = 2e-4
    beta_1: float = 0.5
    l1_weight: float = 100.0
    seed: int = 0
    out: str = "runs/colorizer"
    val_fraction: float = 0.05
    val_size: int = 256
    num_classes: int = 6
    resize_mode: str = "resize"
    random_crop: bool = False
    flip: bool = False
    keep_greyscale: bool = False
    backup_every: int = 50
    sample_count: int = 6
    jit_compile: bool = False
    strategy: str = "auto"
    mixed_precision: str = "auto"
    steps_per_execution: int = 1
    backbone: str = "unet"
    backbone_weights: str = ""
    temperature: float = 0.38
    prior_batches: int = 50
    color_weight: float = 1.0
    seg_weight: float = 1.0


# Treneska et al. 2022, section 4.1, with the learning rate of the authors' code (the text's 0.002
# is ten times larger; see README).
PRESETS = {
    "fast": {},
    "paper": dict(dataset=PAPER_DATASET, image_size=256, base_filters=64, batch_size=32, epochs=20,
                  steps_per_epoch=None, lr=2e-4, beta_1=0.5, l1_weight=100.0, val_size=4000),
}

OBJECTIVES = ("gan", "l1", "classification", "multitask")
BACKBONES = ("unet", "mobilenetv2")


def color_space(backbone):
    """The colour space a backbone's networks read and predict: 'yuv' (Y in, UV out) for the
    MobileNetV2 multitask model, as its source (Dabholkar, seed 003); 'lab' (the paper's L in, ab
    out) for the U-Net."""
    return "yuv" if backbone == "mobilenetv2" else "lab"


def pretext_name(objective, backbone):
    """How reports name a pretext (or 'random'): the objective, with '-mobilenetv2' for that backbone."""
    return objective + ("-mobilenetv2" if backbone == "mobilenetv2" else "")


def check_backbone(config):
    """A one-sentence error for a backbone the objective or the size cannot take."""
    if config.backbone not in BACKBONES:
        raise ValueError(f"--backbone must be one of {BACKBONES}, received {config.backbone!r}.")
    if config.backbone == "mobilenetv2":
        if config.objective != "multitask":
            raise ValueError(f"--backbone mobilenetv2 is the multitask model of its source: use it with "
                             f"--objective multitask, received --objective {config.objective!r}.")
        if config.image_size < 32 or config.image_size % 32:
            raise ValueError(f"--backbone mobilenetv2 needs --image-size a multiple of 32 (its deepest features are "
                             f"at 1/32), received {config.image_size}.")
    elif config.backbone_weights:
        raise ValueError("--backbone-weights is the MobileNetV2 weights file: it needs --backbone mobilenetv2.")

_HELP = {
    "objective": "gan (the paper: pix2pix cGAN), l1 (the same U-Net, L1 alone), classification (Zhang et al. "
                 "2016: Q ab bins, rebalanced soft cross-entropy) or multitask (colour + segmentation heads "
                 "trained jointly; needs masks: synthetic or pets)",
    "backbone": "unet (pix2pix) or mobilenetv2 (multitask only: MobileNetV2 encoder, Y in, UV out, MSE)",
    "backbone_weights": "a local MobileNetV2 weights file (e.g. Keras' ..._no_top.h5) to start from; "
                        "empty: random init (nothing is downloaded)",
    "temperature": "annealed-mean temperature T of the classification objective",
    "prior_batches": "batches of the one streaming pass that estimates the ab prior (classification)",
    "color_weight": "weight of the colour loss (multitask)",
    "seg_weight": "weight of the segmentation loss (multitask)",
    "dataset": "'synthetic' (embedded, default), 'coco' (TFDS coco/2014), 'coco:PATH' or 'folder:PATH'",
    "image_size": "square training size, a power of two",
    "base_filters": "filters of the first U-Net level; later levels double up to 8x",
    "batch_size": "images per step",
    "epochs": "training epochs",
    "steps_per_epoch": "steps per epoch; 0 means one pass over the training files",
    "lr": "Adam learning rate of G and D (the paper's text says 2e-3, its code 2e-4)",
    "beta_1": "Adam beta_1",
    "l1_weight": "lambda, the weight of the L1 term in G's loss",
    "seed": "seed of weights, data order and dropout",
    "out": "run folder; an interrupted run in it is resumed",
    "val_fraction": "fraction of a photo folder held out for validation and evaluation",
    "val_size": "held-out synthetic scenes (or COCO validation images) used for validation",
    "num_classes": "object classes of the synthetic scenes (1-8)",
    "resize_mode": "'resize' squashes to the size; 'crop' keeps the aspect and crops",
    "random_crop": "random instead of centre crops when --resize-mode crop",
    "flip": "random horizontal flips",
    "keep_greyscale": "keep greyscale photos (they carry no colour to learn)",
    "backup_every": "steps between backups that let a killed run resume mid-epoch",
    "sample_count": "images in the per-epoch sample grid",
    "jit_compile": "compile the train step with XLA (slower on CPUs, measured; try it on GPUs)",
    "strategy": "tf.distribute strategy: auto (mirrored over several GPUs), one, mirrored, multiworker "
                "(TF_CONFIG) or tpu",
    "mixed_precision": "auto (mixed_float16 on GPUs, float32 on CPUs), float32, mixed_float16 or mixed_bfloat16",
    "steps_per_execution": "train steps run per call into the compiled function",
}


def build_parser(description, config_cls=TrainConfig, presets=None, helps=None, exclude=()):
    """An argparse parser with `--preset` and one flag per field of the `config_cls` dataclass, every
    flag defaulting to 'take it from the preset'."""
    presets = PRESETS if presets is None else presets
    helps = _HELP if helps is None else helps
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--preset", choices=sorted(presets), default="fast",
                        help="'fast' runs on a CPU in minutes; 'paper' sets every value of the paper")
    defaults = config_cls()
    for field in dataclasses.fields(config_cls):
        if field.name in exclude:
            continue
        flag = "--" + field.name.replace("_", "-")
        default = presets["fast"].get(field.name, getattr(defaults, field.name))
        paper = presets.get("paper", {}).get(field.name, default)
        shown = f"default {default}" + (f", paper {paper}" if paper != default else "")
        helptext = f"{helps.get(field.name, '')} ({shown})"
        if isinstance(default, bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=helptext)
        else:
            kind = type(default) if default is not None else (
                field.type if isinstance(field.type, type) else str)
            parser.add_argument(flag, type=kind, default=None, help=helptext)
    return parser


def config_from_args(args, config_cls=TrainConfig, presets=None):
    """Preset values, overridden by every flag given on the command line."""
    presets = PRESETS if presets is None else presets
    values = dataclasses.asdict(config_cls())
    values.update(presets[args.preset])
    for name in values:
        given = getattr(args, name, None)
        if given is not None:
            values[name] = given
    if values.get("steps_per_epoch") == 0:
        values["steps_per_epoch"] = None
    return config_cls(**values)


def save_config(config, run_dir, name="config.json", **extra):
    """Writes the resolved config (and any extra facts) as JSON into the run folder."""
    os.makedirs(run_dir, exist_ok=True)
    payload = dict(dataclasses.asdict(config), **extra)
    with open(os.path.join(run_dir, name), "w") as f:
        json.dump(payload, f, indent=2, sort_keys=True)
    return payload


def load_config(run_dir, name="config.json"):
    """Reads a run folder's `config.json` back into a `TrainConfig`."""
    path = os.path.join(run_dir, name)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} does not exist: is {run_dir!r} a run folder written by train_colorizer.py?")
    with open(path) as f:
        values = json.load(f)
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    return TrainConfig(**{k: v for k, v in values.items() if k in known})
