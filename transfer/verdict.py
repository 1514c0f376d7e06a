"""The verdict study (docs/verdict-study.md): does the paper's GAN colorization pretraining make
downstream models better, and does the gain grow with pretext photos and steps? Pre-registered
arms on Tiny ImageNet at 64 px, several pretext seeds, trained in a fixed order.

Each part is a set of run folders under OUT that are read back when finished, so the command can be
stopped at any time and run again; `OUT/times.json` keeps each run's wall time. The parts:

    python verdict_study.py --tiny ../shared/realdata/tiny-imagenet-200 --out runs/verdict --part pretext

`pretext` trains every arm of `ARMS` (`--only NAME` for some of them), in the order listed.
"""

import dataclasses
import json
import os
import sys
import time

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
    Arm("supervised", "supervised", 0, 12 * 3_030, (0,), steps_per_epoch=3_030,
        options=(("lr", 1e-3), ("beta_1", 0.9), ("lr_schedule", "cosine"), ("flip", True))),
    Arm("classification-50k", "classification", 0, PRETEXT_STEPS, (0, 1)),
)
ORDER = (("gan-50k", 0), ("gan-50k", 1), ("gan-50k", 2), ("gan-5k", 0), ("l1-50k", 0), ("supervised", 0),
         ("classification-50k", 0), ("gan-5k", 1), ("l1-50k", 1), ("classification-50k", 1))


def arm(name):
    return next(a for a in ARMS if a.name == name)


def run_folder(out, name, seed):
    """OUT/pretext/NAME-seedS: the seed is in every run's name."""
    return os.path.join(out, "pretext", f"{name}-seed{seed}")


def pretext_config(args, spec, seed):
    """The TrainConfig of one pretext run of the study."""
    from cgan_colorization import registry
    from cgan_colorization.config import TrainConfig

    entry = registry.PRETEXTS[spec.pretext]
    steps_per_epoch = min(spec.steps_per_epoch, spec.steps)
    values = dict(entry.overrides, objective=entry.objective, backbone=entry.backbone,
                  dataset=f"tinyimagenet:{args.tiny}", max_photos_per_class=spec.per_class,
                  image_size=IMAGE_SIZE, base_filters=BASE_FILTERS, batch_size=BATCH_SIZE,
                  steps_per_epoch=steps_per_epoch, epochs=spec.steps // steps_per_epoch, seed=seed,
                  keep_steps=",".join(map(str, spec.keep_steps)), out=run_folder(args.out, spec.name, seed),
                  backup_every=500, **dict(spec.options))
    return TrainConfig(**values)


def _times(out):
    path = os.path.join(out, "times.json")
    return path, (json.load(open(path)) if os.path.isfile(path) else {})


def _save(path, payload):
    with open(path + ".tmp", "w") as f:
        json.dump(payload, f, indent=2)
    os.replace(path + ".tmp", path)


def run_pretexts(args, log=print):
    """Trains every pretext run of the study not yet finished, in `ORDER`; returns their folders."""
    from cgan_colorization.training import SUMMARY_FILE, train

    times_path, times = _times(args.out)
    folders = []
    for name, seed in ORDER:
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
        times[key] = round(times.get(key, 0.0) + time.time() - start, 1)  # summed over resumed sessions
        _save(times_path, times)
    return folders


def build_parser():
    import argparse

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", required=True, help="the tiny-imagenet-200 folder")
    parser.add_argument("--out", default="runs/verdict", help="the study's folder (default runs/verdict)")
    parser.add_argument("--part", choices=("pretext",), default="pretext", help="which part of the study to run")
    parser.add_argument("--only", default="", type=lambda text: tuple(n for n in text.split(",") if n),
                        help=f"comma-separated arms to run, of {', '.join(a.name for a in ARMS)} (default: all)")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    unknown = [n for n in args.only if n not in {a.name for a in ARMS}]
    if unknown:
        print(f"error: --only takes arms of {', '.join(a.name for a in ARMS)}, received {', '.join(unknown)}.",
              file=sys.stderr)
        raise SystemExit(2)
    from cgan_colorization import runtime

    runtime.configure()
    try:
        if not os.path.isdir(os.path.join(args.tiny, "train")):
            raise FileNotFoundError(f"--tiny {args.tiny} holds no train/ folder: give the tiny-imagenet-200 folder.")
        os.makedirs(args.out, exist_ok=True)
        run_pretexts(args)
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
