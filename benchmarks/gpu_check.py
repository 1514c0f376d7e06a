"""GPU check: the GAN train step at 256 px in float32, mixed_float16 and mixed_bfloat16, with and
without XLA, at batch 32 and at the largest batch that fits, against the GPU's peak; and the input
pipeline from the decoded-image cache with every host core. Under 5 minutes on one GPU; one JSON.

    python benchmarks/gpu_check.py --feed folder:/data/train2014 --json runs/gpu_check.json
        # (2,048 of the folder's photos, sampled into a fresh cache: --feed-files)
    python benchmarks/gpu_check.py --tiny      # the same path on a CPU at 32 px, in about a minute
"""

import argparse
import dataclasses
import json
import os
import sys

from cgan_colorization.engine import runtime
from cgan_colorization.engine.schema import Range, build_parser as build_options_parser, comma_subset, option

PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")


def _xla(text):
    choices = {"off": False, "on": True}
    names = [n for n in text.split(",") if n]
    if not names or any(n not in choices for n in names):
        raise argparse.ArgumentTypeError(f"expected off, on or off,on, received {text!r}")
    return tuple(choices[n] for n in names)


_xla.__name__ = "off, on or off,on"


@dataclasses.dataclass
class GpuCheckOptions:
    """The check's command line; an option left unset takes `benchmarks.gpu.CheckConfig`'s value (its `TINY`
    one with --tiny)."""

    tiny: bool = option(False, "32 px, 4 filters, batch 2 (largest batch searched up to 8): a CPU rehearsal")
    image_size: int = option(None, "image size (unset: the check's or --tiny's)", Range(1))
    base_filters: int = option(None, "U-Net width (unset: the check's or --tiny's)", Range(1))
    batch_size: int = option(None, "images per step (unset: the check's or --tiny's)", Range(1))
    max_batch: int = option(None, "the largest-batch search stops here (unset: the check's or --tiny's)", Range(1))
    precisions: tuple = option(PRECISIONS, "comma-separated precisions to time", parse=comma_subset(PRECISIONS))
    xla: tuple = option((False, True), "off, on or off,on", parse=_xla)
    steps: int = option(None, "timed steps per measurement (unset: the check's or --tiny's)", Range(1))
    feed: str = option("", "photo folder for the pipeline part (folder:PATH or coco:PATH); empty: JPEGs made from the "
                           "synthetic scenes, 480 x 360")
    feed_files: int = option(None, "photos of --feed sampled (seeded) into a fresh cache, so a COCO-sized folder is "
                                   "never decoded whole (unset: the check's)", Range(1))
    cache: str = option("", "cache of --feed at the size (empty: a temporary one); given without --feed, a complete "
                            "cache whose read rate is measured", aliases=("--cache-dir",))
    budget_s: float = option(None, "no measurement starts that would end after this many seconds, judged by the "
                                   "longest one of its kind so far (the rest is reported as skipped; unset: the "
                                   "check's)", Range(1))
    json: str = option("runs/gpu_check.json", "where to write the results")


def build_parser():
    return build_options_parser(__doc__, GpuCheckOptions, raw_description=True)


def main(argv=None):
    runtime.configure()  # before TensorFlow loads
    args = build_parser().parse(argv)

    from benchmarks.gpu import TINY, CheckConfig, run_check

    values = dict(TINY) if args.tiny else {}
    for name in ("image_size", "base_filters", "batch_size", "max_batch", "steps", "feed_files", "budget_s"):
        if getattr(args, name) is not None:
            values[name] = getattr(args, name)
    check = CheckConfig(precisions=args.precisions, xla=args.xla, feed=args.feed, cache_dir=args.cache, **values)
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)

    def save(result):  # after every measurement, atomically: a kill or a failure keeps every figure taken
        with open(args.json + ".tmp", "w") as f:
            json.dump(result, f, indent=2)
        os.replace(args.json + ".tmp", args.json)

    try:
        result = run_check(check, save=save)
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2)
    for failure in result["failures"]:
        print(f"failed: {failure['part']}: {failure['error']}", file=sys.stderr)
    best = result["best"]
    if best:
        print(f"best: {best['images_per_s']:.0f} images/s ({best['precision']}, XLA {'on' if best['xla'] else 'off'}, "
              f"batch {best['batch']}), target {result['target_images_per_s']}")
    print(f"wrote {args.json} ({result['total_seconds']:.0f} s)")
    return result


if __name__ == "__main__":
    main()
