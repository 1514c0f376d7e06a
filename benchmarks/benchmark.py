"""Throughput benchmark of the colorizer: pipeline, train step, FLOPs vs the measured matmul peak,
memory, and the ratio to a research-style reference loop. Prints a table and writes JSON.

    python benchmarks/benchmark.py --sizes 64,128,256 --batch-size 16
    python benchmarks/benchmark.py --sizes 64 --long-steps 2000      # host-memory slope of a long run
    python benchmarks/benchmark.py --sizes 256 --batch-size 32 --feed folder:photos/ --cache runs/cache256
        # instead: images/s per host core from the photo folder and from its decoded-image cache
"""

import argparse
import json
import os
import sys

from cgan_colorization import registry, runtime
from cgan_colorization.config import PRECISION_HELP, Range, add_alias, bounded
from cgan_colorization.constants import PRECISIONS


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
    return sizes


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    positive = bounded(int, Range(1))
    parser.add_argument("--sizes", type=_sizes, default=_sizes("64,128,256"), help="comma-separated image sizes")
    parser.add_argument("--batch-size", type=positive, default=16)
    parser.add_argument("--base-filters", type=positive, default=64, help="U-Net width (the paper's 64 by default)")
    parser.add_argument("--dataset", default="synthetic", help="synthetic, folder:PATH, coco:PATH or tinyimagenet:PATH")
    parser.add_argument("--objective", default="gan", choices=registry.OBJECTIVES,
                        help=f"the pretext whose train step is timed: {', '.join(BENCHMARKED_OBJECTIVES)} (the others "
                             "need masks or labels; the reference loop exists for gan only)")
    parser.add_argument("--steps", type=positive, default=20, help="timed train steps")
    parser.add_argument("--pipeline-batches", type=positive, default=50)
    parser.add_argument("--reference-steps", type=positive, default=10)
    parser.add_argument("--no-reference", action="store_true",
                        help="skip the reference loop (the only part that needs scikit-image, the [bench] extra)")
    parser.add_argument("--mixed-precision", default="auto", choices=PRECISIONS, help=PRECISION_HELP)
    parser.add_argument("--jit-compile", action="store_true")
    parser.add_argument("--long-steps", type=bounded(int, Range(0)), default=0,
                        help="also train this many steps and report RSS slope")
    parser.add_argument("--json", default="runs/benchmark.json", help="where to write the results")
    parser.add_argument("--feed", metavar="DATASET",
                        help="instead of the train step: the input pipeline's images/s per host core from this photo "
                             "folder (folder:PATH or coco:PATH) and from its decoded-image cache")
    parser.add_argument("--cache", default=None,
                        help="with --feed: the cache folder (built there when absent; default runs/feed-cache-SIZE)")
    add_alias(parser, "--cache-dir", "cache")
    parser.add_argument("--feed-batches", type=positive, default=50, help="with --feed: timed batches of each pipeline")
    parser.add_argument("--target", type=positive, default=1000,
                        help="with --feed: the images/s to feed (cores needed for it are reported)")
    return parser


def main(argv=None):
    runtime.configure()  # before TensorFlow loads
    parser = build_parser()
    args = parser.parse_args(argv)
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
    from cgan_colorization.distribute import set_precision

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
