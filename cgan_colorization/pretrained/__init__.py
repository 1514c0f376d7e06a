"""Colorizers shipped with the package, loaded by name wherever a colorizer is read:
`--colorizer pretrained:tiny64-gan` (colorize.py, evaluate_colorizer.py, the fine-tuning scripts, the page).

Each is a folder beside this file holding what a run folder holds for loading (`config.json` and
`generator.weights.h5`, the weights stored as float16 to halve the download; they load into the
float32 model) and `MODEL_CARD.md` (data, command, commit, steps, checkpoint, SHA-256, measured scores,
limits). `ship(run folder, name)` makes one from a finished run.
"""

import json
import os
import shutil

import numpy as np

PREFIX = "pretrained:"
HERE = os.path.dirname(os.path.abspath(__file__))
# name -> one line on what it is (the model card says the rest).
SHIPPED = {
    "tiny64-gan": "the paper's cGAN at 64 px, 32 filters, trained 12,000 steps on the 50,500 Tiny ImageNet photos",
}


def is_pretrained(spec):
    return isinstance(spec, str) and spec.startswith(PREFIX)


def folder(spec):
    """The folder of a shipped colorizer named `pretrained:NAME`, or a one-sentence error."""
    name = spec[len(PREFIX):]
    if name not in SHIPPED:
        raise ValueError(f"{spec!r} is not a shipped colorizer: the package ships {', '.join(PREFIX + n for n in SHIPPED)}.")
    path = os.path.join(HERE, name)
    if not os.path.isfile(os.path.join(path, "generator.weights.h5")):
        raise FileNotFoundError(f"the weights of {spec} are missing from {path}: reinstall the package.")
    return path


def float16_weights(source, target):
    """Writes the Keras weights file `source` again as `target` with every float32 array in float16
    (groups, names and attributes unchanged), so it loads into the same float32 model."""
    import h5py

    def copy(src, dst):
        for key, value in src.attrs.items():
            dst.attrs[key] = value
        for name, item in src.items():
            if isinstance(item, h5py.Group):
                copy(item, dst.create_group(name))
            else:
                data = item[()]
                dst.create_dataset(name, data=data.astype(np.float16) if data.dtype == np.float32 else data)
                for key, value in item.attrs.items():
                    dst[name].attrs[key] = value

    with h5py.File(source, "r") as src, h5py.File(target + ".partial", "w") as dst:
        copy(src, dst)
    os.replace(target + ".partial", target)


def ship(run_dir, name, weights="generator.weights.h5", card=None, root=None):
    """Copies a finished run's config and its generator `weights` (as float16) into the folder `name`
    of the package (or of `root`); `card`, the model card's text, is written beside them. Returns the folder."""
    out = os.path.join(root or HERE, name)
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(run_dir, "config.json")) as f:
        config = json.load(f)
    config.update(out="", keep_steps="")  # where it was trained is not where it lives now
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(config, f, indent=2, sort_keys=True)
    float16_weights(os.path.join(run_dir, weights), os.path.join(out, "generator.weights.h5"))
    for extra in ("zhang_stats.json", "labels.json"):  # what some pretexts load beside their weights
        if os.path.isfile(os.path.join(run_dir, extra)):
            shutil.copy(os.path.join(run_dir, extra), out)
    if card is not None:
        with open(os.path.join(out, "MODEL_CARD.md"), "w") as f:
            f.write(card)
    return out
