"""GPU check: the GAN train step at 256 px in float32, mixed_float16 and mixed_bfloat16, with and
without XLA, at batch 32 and at the largest batch that fits, against the GPU's peak; and the input
pipeline from the decoded-image cache with every host core. Under 5 minutes on one GPU; one JSON.

    python benchmarks/gpu_check.py --feed folder:/data/train2014 --json runs/gpu_check.json
        # (2,048 of the folder's photos, sampled into a fresh cache: --feed-files)
    python benchmarks/gpu_check.py --tiny      # the same path on a CPU at 32 px, in about a minute
"""

import argparse
import json
import os
import sys

from cgan_colorization import runtime
from cgan_colorization.config import Range, add_alias, bounded, comma_subset

PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")


def _xla(text):
    choices = {"off": False, "on": True}
    names = [n for n in text.split(",") if n]
    if not names or any(n not in choices for n in names):
        raise argparse.ArgumentTypeError(f"expected off, on or off,on, received {text!r}")
    return tuple(choices[n] for n in names)


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    positive = bounded(int, Range(1))
    parser.add_argument("--tiny", action="store_true",
                        help="32 px, 4 filters, batch 2 (largest batch searched up to 8): a CPU rehearsal")
    parser.add_argument("--image-size", type=positive, help="default 256 (32 with --tiny)")
    parser.add_argument("--base-filters", type=positive, help="default 64, the paper's width (4 with --tiny)")
    parser.add_argument("--batch-size", type=positive, help="default 32 (2 with --tiny)")
    parser.add_argument("--max-batch", type=positive, help="the largest-batch search stops here (default 1024)")
    parser.add_argument("--precisions", type=comma_subset(PRECISIONS), default=PRECISIONS, help="default all three")
    parser.add_argument("--xla", type=_xla, default=(False, True), help="off, on or off,on (default)")
    parser.add_argument("--steps", type=positive, help="timed steps per measurement (default 10)")
    parser.add_argument("--feed", default="", help="photo folder for the pipeline part (folder:PATH or coco:PATH); "
                                                   "default: JPEGs made from the synthetic scenes, 480 x 360")
    parser.add_argument("--feed-files", type=positive, default=None,
                        help="photos of --feed sampled (seeded) into a fresh cache, so a COCO-sized folder is never "
                             "decoded whole (default 2048)")
    parser.add_argument("--cache", default="", help="cache of --feed at the size (default: a temporary one); given "
                                                    "without --feed, a complete cache whose read rate is measured")
    add_alias(parser, "--cache-dir", "cache")
    parser.add_argument("--budget-s", type=bounded(float, Range(1)), default=240.0,
                        help="no measurement starts that would end after this many seconds, judged by the longest "
                             "one of its kind so far (the rest is reported as skipped)")
    parser.add_argument("--json", default="runs/gpu_check.json", help="where to write the results")
    return parser


def main(argv=None):
    runtime.configure()  # before TensorFlow loads
    parser = build_parser()
    args = parser.parse_args(argv)

    from benchmarks.gpu import TINY, CheckConfig, run_check

    values = dict(TINY) if args.tiny else {}
    for name in ("image_size", "base_filters", "batch_size", "max_batch", "steps", "feed_files"):
        if getattr(args, name) is not None:
            values[name] = getattr(args, name)
    check = CheckConfig(precisions=args.precisions, xla=args.xla, feed=args.feed, cache_dir=args.cache,
                        budget_s=args.budget_s, **values)
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
