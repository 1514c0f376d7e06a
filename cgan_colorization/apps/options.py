"""The options of the colorizer's user-facing scripts besides training (evaluate, colorize, cache, export,
demo), each a dataclass whose fields are `schema.option`s: the scripts' parsers are generated from them."""

import argparse
import dataclasses

from cgan_colorization.constants import (CHECKPOINT_HELP, CHECKPOINTS, DEFAULT_CHECKPOINT, DEFAULT_COLORIZER,
                                         DEFAULT_EXPORT_FORMATS, EXPORT_FORMATS, TEXT_CHOICES)
from cgan_colorization.engine.schema import Range, option

COLORIZER_HELP = "colorizer run folder written by train_colorizer.py, or a generator weights file (.weights.h5 "\
                 "with config.json beside it, or .keras)"
CACHE_HELP = "folder of a decoded-image cache (cache_images.py)"


@dataclasses.dataclass
class ColorizerChoice:
    """Which colorizer, and which generator of its run folder."""

    colorizer: str = option(DEFAULT_COLORIZER, COLORIZER_HELP, aliases=("--run", "--weights"))
    checkpoint: str = option(DEFAULT_CHECKPOINT, CHECKPOINT_HELP, choices=CHECKPOINTS)


@dataclasses.dataclass
class ModelOptions(ColorizerChoice):
    """A colorizer to load, with its size and width for a weights file without a config.json beside it."""

    image_size: int = option(None, "model size, when no config.json is at hand", Range(4))
    base_filters: int = option(None, "model width, when no config.json is at hand", Range(1))


DROPOUT_HELP = "keep dropout on when colorizing (pix2pix's stochastic inference)"


@dataclasses.dataclass
class EvaluateOptions(ModelOptions):
    """evaluate_colorizer.py."""

    dataset: str = option(None, "dataset to score on (unset: the run's own)")
    split: str = option(None, "the run's held-out split, or every file of a folder dataset (unset: 'val' on the run's "
                              "own dataset, 'all' on a dataset it never trained on)", choices=("val", "all"))
    max_images: int = option(None, "score at most this many images", Range(1))
    batch_size: int = option(16, "images per batch", Range(1))
    cache: str = option(None, CACHE_HELP + " of the dataset at the model's size: score its held-out images (or all with "
                              "--split all) instead of decoding")
    dropout_at_inference: bool = option(False, DROPOUT_HELP)
    out: str = option(None, "JSON file to write (unset: RUN/eval_<dataset>.json, RUN/eval_<dataset>_best.json for "
                            "--checkpoint best; runs/eval_<name>_<dataset>.json for a shipped pretrained:<name>)")


@dataclasses.dataclass
class ColorizeOptions(ModelOptions):
    """colorize.py."""

    inputs: tuple = option((), "image files and/or folders (searched recursively)", positional=True, required=True)
    out: str = option("colorized", "output folder of the colorized photos")
    dropout_at_inference: bool = option(False, DROPOUT_HELP)


@dataclasses.dataclass
class CacheOptions:
    """cache_images.py."""

    dataset: str = option(None, "'folder:PATH' or 'coco:PATH' (comma-separated folders); required unless --verify")
    verify: bool = option(False, "only check an existing cache: every shard's size and SHA-256 against its manifest")
    cache: str = option(None, CACHE_HELP + " to write: new, empty, or an interrupted build", aliases=("--out",),
                        required=True)
    image_size: int = option(256, "square size of the images", Range(4))
    resize_mode: str = option("resize", "'resize' squashes the photo to the size (the paper); 'crop' takes the centre "
                                        "crop", choices=TEXT_CHOICES["resize_mode"])
    keep_greyscale: bool = option(False, "keep greyscale photos")
    color_space: str = option("lab", "what the cache stores: Lab's L and ab (the U-Net pretexts) or YUV's Y and UV "
                                     "(MobileNetV2)", choices=TEXT_CHOICES["color_space"])
    val_fraction: float = option(0.05, "fraction of the photos held out", Range(0, 1, low_open=True, high_open=True))
    seed: int = option(0, "seed of the split", Range(0))
    files_per_shard: int = option(1024, "photos per shard file", Range(1))


@dataclasses.dataclass
class DemoOptions(ColorizerChoice):
    """demo.py: the colorizer shown first, and where the page serves."""

    runs_dir: str = option("runs", "the colorizer run folders under it can be chosen on the page")
    host: str = option("127.0.0.1", "address to serve on (0.0.0.0: every interface)")
    port: int = option(7860, "port to serve on", Range(1, 65535))
    share: bool = option(False, "also open a public Gradio link")


def export_formats(text):
    """`--format`: a comma-separated subset of `EXPORT_FORMATS` (or "none") -> a tuple in their order."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    if names == ["none"]:
        return ()
    unknown = [name for name in names if name not in EXPORT_FORMATS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"takes a comma-separated subset of {','.join(EXPORT_FORMATS)} (or none), "
                                         f"received {text!r}")
    return tuple(name for name in EXPORT_FORMATS if name in names)


export_formats.__name__ = "comma-separated formats"


@dataclasses.dataclass
class ExportOptions(ModelOptions):
    """export_colorizer.py."""

    format: tuple = option(DEFAULT_EXPORT_FORMATS, f"what to write the generator as: a comma-separated subset of "
                                                      f"{','.join(EXPORT_FORMATS)}, or none (with --encoder)",
                           parse=export_formats)
    out: str = option("exported", "folder to write the files and export.json into")
    encoder: bool = option(False, "also write the encoder (enc* and bottleneck* layers, L to the 1 x 1 bottleneck) as "
                                  "encoder.keras, which keras.saving.load_model opens without this package")
