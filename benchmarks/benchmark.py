"""Throughput benchmark of the colorizer: pipeline, train step, FLOPs vs the measured matmul peak,
memory, and the ratio to a research-style reference loop. Prints a table and writes JSON.

    python benchmarks/benchmark.py --sizes 64,128,256 --batch-size 16
    python benchmarks/benchmark.py --sizes 64 --long-steps 2000      # host-memory slope of a long run
    python benchmarks/benchmark.py --sizes 256 --batch-size 32 --feed folder:photos/ --cache runs/cache256
        # instead: images/s per host core from the photo folder and from its decoded-image cache
"""

import argparse
import dataclasses
import json
import os
import sys

from cgan_colorization.constants import PRECISIONS
from cgan_colorization.engine import runtime
from cgan_colorization.engine.config import PRECISION_HELP
from cgan_colorization.engine.schema import Range, build_parser as build_options_parser, option
from cgan_colorization.pretexts import registry


# The pretexts trained on (L, ab) pairs of any photo source (the multitask ones need masks, the ceiling labels).
BENCHMARKED_OBJECTIVES = tuple(dict.fromkeys(p.objective for p in registry.PRETEXTS.values()
                                             if p.colorizes and not p.needs_masks and not p.needs_labels))


def _sizes(text):
    try:
        sizes = [int(s) for s in text.split(",") if s]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated powers of two, received {text!r}") from None
    if not sizes or any(s < 32 or s & (s - 1) for s in sizes):
        raise argparse.ArgumentTypeError(f"every size must be a power of two >= 32, received {text!r}")
    return tuple(sizes)


_sizes.__name__ = "comma-separated sizes"


@dataclasses.dataclass
class BenchmarkOptions:
    """The benchmark's command line."""

    sizes: tuple = option((64, 128, 256), "comma-separated image sizes, powers of two >= 32", parse=_sizes)
    batch_size: int = option(16, "images per step", Range(1))
    base_filters: int = option(64, "U-Net width (the paper's 64)", Range(1))
    dataset: str = option("synthetic", "synthetic, folder:PATH, coco:PATH or tinyimagenet:PATH")
    objective: str = option(registry.PRETEXTS[registry.PAPER_PRETEXT].objective,
                            f"the pretext whose train step is timed: {', '.join(BENCHMARKED_OBJECTIVES)} (the "
                            "others need masks or labels; the reference loop exists for gan only)",
                            choices=registry.OBJECTIVES)
    steps: int = option(20, "timed train steps", Range(1))
    pipeline_batches: int = option(50, "timed batches of the input pipeline alone", Range(1))
    reference_steps: int = option(10, "timed steps of the reference loop", Range(1))
    no_reference: bool = option(False, "skip the reference loop (the only part that needs scikit-image, the [bench] "
                                       "extra)")
    mixed_precision: str = option("auto", PRECISION_HELP, choices=PRECISIONS)
    jit_compile: bool = option(False, "compile the train step with XLA")
    long_steps: int = option(0, "also train this many steps and report RSS slope", Range(0))
    json: str = option("runs/benchmark.json", "where to write the results")
    feed: str = option(None, "instead of the train step: the input pipeline's images/s per host core from this photo "
                             "folder (folder:PATH or coco:PATH) and from its decoded-image cache", metavar="DATASET")
    cache: str = option(None, "with --feed: the cache folder (built there when absent; unset: runs/feed-cache-SIZE)",
                        aliases=("--cache-dir",))
    feed_batches: int = option(50, "with --feed: timed batches of each pipeline", Range(1))
    target: int = option(1000, "with --feed: the images/s to feed (cores needed for it are reported)", Range(1))


def build_parser():
    return build_options_parser(__doc__, BenchmarkOptions, raw_description=True)


def main(argv=None):
    runtime.configure()  # before TensorFlow loads
    parser = build_parser()
    args = parser.parse(argv)
    if args.objective not in BENCHMARKED_OBJECTIVES:
        parser.error(f"--objective {args.objective} trains on masks or labels, not (L, ab) pairs of photos: the "
                     f"benchmark times {', '.join(BENCHMARKED_OBJECTIVES)}.")
    if args.feed:
        return _feed(args)
    if not args.no_reference:
        try:
            import skimage  # noqa: F401
        except ImportError:
            parser.error("the reference loop needs scikit-image: install the [bench] extra "
                         "(pip install -e '.[cpu,bench]') or pass --no-reference")

    from benchmarks.measure import benchmark_config, long_run, run_benchmark
    from cgan_colorization.engine.distribute import set_precision

    set_precision(args.mixed_precision)
    results = []
    for size in args.sizes:
        print(f"== {size} px, batch {args.batch_size}")
        config = benchmark_config(size, args.batch_size, args.base_filters, args.dataset, args.jit_compile,
                                  args.objective)
        result = run_benchmark(config, args.steps, args.pipeline_batches, args.reference_steps,
                               reference=not args.no_reference)
        if args.long_steps:
            result["long_run"] = long_run(config, args.long_steps)
            print(f"long run: {args.long_steps} steps, RSS {result['long_run']['rss_first_mb']:.0f} -> "
                  f"{result['long_run']['rss_last_mb']:.0f} MiB, slope "
                  f"{result['long_run']['rss_slope_mb_per_1000_steps']:.1f} MiB / 1000 steps")
        results.append(result)
    print()
    print(f"{'size':>5}{'pipeline/s':>12}{'train/s':>10}{'GFLOP/img':>11}{'% peak':>8}{'ref/s':>8}{'ours/ref':>10}"
          f"{'FLOP ratio':>12}{'RSS MiB':>9}")
    for r in results:
        print(f"{r['image_size']:>5}{r['pipeline_images_per_s']:>12.1f}{r['train_images_per_s']:>10.1f}"
              f"{r['train_flops_per_image'] / 1e9:>11.2f}{100 * r['fraction_of_matmul_peak']:>8.0f}"
              f"{r.get('reference_images_per_s', float('nan')):>8.1f}{r.get('ours_over_reference', float('nan')):>10.2f}"
              f"{r.get('flop_ratio_reference_over_ours', float('nan')):>12.2f}{r['peak_rss_mb']:>9.0f}")
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(results, f, indent=2)
    print(f"wrote {args.json}")
    return results


def _feed(args):
    from benchmarks.feed import folder_vs_cache, format_feed_table

    results = []
    for size in args.sizes:
        print(f"== {size} px, batch {args.batch_size}: {args.feed}")
        cache_dir = args.cache if args.cache and len(args.sizes) == 1 else \
            os.path.join(args.cache or "runs", f"feed-cache-{size}")
        try:
            results.append(folder_vs_cache(args.feed, cache_dir, size, args.batch_size, args.feed_batches, args.target))
        except (FileNotFoundError, ValueError) as error:
            print(f"error: {error}", file=sys.stderr)
            raise SystemExit(2)
    print()
    print(format_feed_table(results))
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(results, f, indent=2)
    print(f"wrote {args.json}")
    return results


if __name__ == "__main__":
    main()
