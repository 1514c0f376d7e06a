"""Command-line entry points behind the scripts at the repository root."""

import json
import os
import sys
import time

from cgan_colorization import pretrained
from cgan_colorization.apps.options import (CacheOptions, ColorizeOptions, DemoOptions, EvaluateOptions, ExportOptions)
from cgan_colorization.engine import runlock, runtime
from cgan_colorization.engine.config import load_config, train_parser as config_parser
from cgan_colorization.engine.schema import build_parser


def _fail(message, hard_exit=False):
    """Stops with one sentence on stderr and exit status 2. `hard_exit` skips the interpreter's
    shutdown, which can block on a multi-worker run's collectives after a peer is lost."""
    print(f"error: {message}", file=sys.stderr)
    if hard_exit:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(2)
    raise SystemExit(2)


def train_parser():
    return config_parser(
        "Train the pix2pix colorization cGAN (U-Net G, 70x70 PatchGAN D) on L -> ab. The default trains "
        "on the embedded synthetic scenes at 64 px in minutes on a CPU; --preset paper sets every value "
        "of Treneska et al. 2022 (COCO 2014, 256 px, batch 32, 20 epochs). An interrupted run resumes "
        "from its run folder; --config RUN/config.json re-runs a run as it was.")


def train_main(argv=None, probe=None):
    """`python train_colorizer.py`: train the pix2pix colorizer (see --help). `probe`: the factory of the
    `--probe` callback (`transfer.cli.train_main` passes it)."""
    runtime.configure()
    config = train_parser().parse(argv)
    from cgan_colorization.engine.distribute import peer_failure
    from cgan_colorization.engine.training import train  # heavy import after --help

    start = time.time()
    try:
        run_dir = train(config, probe=probe)
    except (FileNotFoundError, ValueError) as error:
        _fail(error)
    except Exception as error:  # noqa: BLE001 - a lost worker is explained; anything else is re-raised
        message = peer_failure(error, ", and the run resumes from the chief's last backup")
        if message is None:
            raise
        _fail(message, hard_exit=True)
    print(f"run folder: {run_dir} ({time.time() - start:.0f} s)")
    print(f"evaluate:   python evaluate_colorizer.py --colorizer {run_dir}")
    print(f"colorize:   python colorize.py --colorizer {run_dir} PHOTO... --out colorized/")
    return run_dir


def evaluate_parser():
    return build_parser(
        "Score a trained colorizer as the paper's Table 3 (PSNR and SSIM in sRGB, max_val 1, "
        "mean / min / max over the images), with Zhang et al.'s AuC of the ab error curve (plain and "
        "class-rebalanced) and the mean CIEDE2000 difference, beside the grey baseline (ab = 0), and write it "
        "with its protocol as JSON.", EvaluateOptions)


def evaluate_main(argv=None):
    """`python evaluate_colorizer.py`: PSNR/SSIM mean/min/max, Zhang's ab error AuC and CIEDE2000 against
    the grey baseline."""
    runtime.configure()
    args = evaluate_parser().parse(argv)

    from cgan_colorization.apps.evaluation import bottleneck_health, evaluate_colorizer, format_table
    from cgan_colorization.apps.inference import describe_checkpoint, load_colorizer
    from data.pipeline import cached_source, parse_dataset, pretext_dataset

    try:
        colorizer = load_colorizer(args.colorizer, args.image_size, args.base_filters,
                                   args.dropout_at_inference, args.checkpoint)
        weights = colorizer.checkpoint["file"]
        print(f"colorizer weights: {weights}, {describe_checkpoint(colorizer.checkpoint)}")
        run_dir = os.path.dirname(os.path.abspath(weights))
        config = load_config(run_dir) if os.path.isfile(os.path.join(run_dir, "config.json")) else None
        dataset = args.dataset or (config.dataset if config else "synthetic")
        own = config is not None and dataset == config.dataset
        split = args.split or ("val" if own else "all")  # a dataset it never saw is scored whole
        seed = config.seed if config else 0
        source = parse_dataset(dataset, config.val_fraction if config else 0.05, seed,
                               max_photos_per_class=config.max_photos_per_class if own else 0)
        if split == "all" and source.kind == "files":
            source.val_paths = source.train_paths + source.val_paths
        size = colorizer.image_size
        resize_mode = "resize"  # the paper's: the whole photo squashed to size x size
        if args.cache:
            source = cached_source(source, args.cache, image_size=size, resize_mode=resize_mode,
                                   color_space=colorizer.color_space, build=False)
            source.held_out = split
        ds = pretext_dataset(source, "val", image_size=size, batch_size=args.batch_size, seed=seed,
                             resize_mode=resize_mode,
                             num_classes=config.num_classes if config else 6,
                             val_size=args.max_images or (config.val_size if config else 256),
                             color_space=colorizer.color_space)
        total = len(source.val_paths) if source.kind == "files" else source.cache.count(split) \
            if source.kind == "cache" else (config.val_size if config else 256)
        total = min(total, args.max_images or total)
        result = evaluate_colorizer(colorizer.predict_ab, ds, args.max_images, colorizer.color_space, total=total)
        result["bottleneck"] = bottleneck_health(colorizer.network, ds, colorizer.bottleneck)
    except (FileNotFoundError, ValueError) as error:
        _fail(error)
    result.update(weights=weights, checkpoint=colorizer.checkpoint, dataset=dataset, split=split, image_size=size,
                  dropout_at_inference=args.dropout_at_inference)
    result["protocol"].update(
        dataset=dataset, split=split,
        resize_mode="none (scenes drawn at the size)" if source.kind == "synthetic" else
        f"{resize_mode} (whole photo, antialiased, to {size} x {size}; no crop)")
    if source.stats is not None:
        result["files"] = source.stats.as_dict()
    print(format_table(result))
    suffix = "_best" if colorizer.checkpoint["checkpoint"] == "best" else ""  # the two never overwrite each other
    name = f"eval_{dataset.replace(':', '_').replace('/', '_')}{suffix}.json"
    if args.out is None and pretrained.is_pretrained(args.colorizer):  # never into the installed package
        os.makedirs("runs", exist_ok=True)
        name = f"eval_{args.colorizer[len(pretrained.PREFIX):]}_{name[len('eval_'):]}"
    out = args.out or os.path.join("runs" if pretrained.is_pretrained(args.colorizer) else run_dir, name)
    with open(out, "w") as f:
        json.dump(result, f, indent=2)
    print(f"wrote {out}")
    return result


def cache_parser():
    return build_parser(
        "Decode the photos of a folder dataset once (unreadable files skipped, greyscale ones dropped), "
        "bring them to the training size, convert them to the model's input and target (float16) and store them "
        "in shards that training and evaluation read with --cache DIR instead of decoding every epoch. The split "
        "into training and held-out photos is the one train_colorizer.py makes with the same --val-fraction and "
        "--seed. Run the same command again to finish an interrupted build.", CacheOptions)


def cache_main(argv=None):
    """`python cache_images.py`: decode a photo dataset once into a cache at the training size."""
    runtime.configure()
    parser = cache_parser()
    args = parser.parse(argv)
    if args.verify:
        from data.cache import open_cache, verify_cache

        try:
            cache = open_cache(args.cache)
            checked = verify_cache(cache)
        except (FileNotFoundError, ValueError) as error:
            _fail(error)
        print(f"{args.cache}: all {len(checked)} shards match their size and SHA-256 ({cache.summary()})")
        return cache
    if not args.dataset:
        parser.error("the following arguments are required: --dataset (or --verify)")

    from data.cache import build_cache
    from data.pipeline import parse_dataset

    try:
        source = parse_dataset(args.dataset, args.val_fraction, args.seed)
        if source.kind != "files":
            raise ValueError(f"--dataset must be a photo folder (folder:PATH or coco:PATH), received {args.dataset!r}.")
        with runlock.hold(args.cache, flag="--cache"):  # one build per folder; a full disk is a DiskFullError
            cache = build_cache(args.cache, {"train": source.train_paths, "val": source.val_paths},
                                image_size=args.image_size, source=args.dataset, resize_mode=args.resize_mode,
                                drop_greyscale=not args.keep_greyscale, color_space=args.color_space,
                                files_per_shard=args.files_per_shard,
                                split_info={"val_fraction": args.val_fraction, "seed": args.seed})
    except (FileNotFoundError, ValueError) as error:
        _fail(error)
    print(f"train with: python train_colorizer.py --dataset {args.dataset} --image-size {args.image_size} "
          f"--cache {args.cache}")
    return cache


def colorize_parser():
    return build_parser(
        "Colorize photos (colour or greyscale) with a trained generator. ab is predicted at the "
        "model's size and upsampled; the photo's own lightness is kept at full resolution.", ColorizeOptions)


def colorize_main(argv=None):
    """`python colorize.py`: colorize photos at their own resolution."""
    runtime.configure()
    args = colorize_parser().parse(argv)

    from cgan_colorization.apps.inference import colorize_rgb, load_colorizer, save_rgb
    from data.decode import load_rgb
    from data.files import list_images

    try:
        colorizer = load_colorizer(args.colorizer, args.image_size, args.base_filters,
                                   args.dropout_at_inference, args.checkpoint)
        if colorizer.pretext is not None and not colorizer.pretext.colorizes:
            raise ValueError(f"{args.colorizer} is a {colorizer.pretext.name} run: it predicts classes, not colour.")
        paths = []
        for item in args.inputs:
            if os.path.isdir(item):
                paths += list_images(item)
            elif os.path.isfile(item):
                paths.append(item)
            else:
                raise FileNotFoundError(f"{item} is neither an image file nor a folder.")
    except (FileNotFoundError, ValueError) as error:
        _fail(error)
    import keras

    os.makedirs(args.out, exist_ok=True)
    written, skipped = [], []
    progress = keras.utils.Progbar(len(paths), unit_name="image") if len(paths) > 1 else None
    for i, path in enumerate(paths, start=1):
        try:
            rgb = load_rgb(path).numpy()
        except Exception as error:  # noqa: BLE001 - any decoder failure means "not an image"
            skipped.append(path)
            print(f"\nskipped {path}: not a readable image ({type(error).__name__})")
        else:
            name = os.path.splitext(os.path.basename(path))[0] + "_colorized.png"
            target = os.path.join(args.out, name)
            save_rgb(colorize_rgb(colorizer, rgb), target)
            written.append(target)
        if progress:
            progress.update(i)
    for path in written[:5]:
        print(f"wrote {path}")
    print(f"colorized {len(written)} image(s) into {args.out}; skipped {len(skipped)}")
    if not written:
        raise SystemExit(1)
    return written


def demo_parser():
    return build_parser(
        "Serve the colorization page: upload a photo, see its grey input, colorization and original "
        "side by side at the photo's resolution, PSNR / SSIM against a colour original, and stochastic "
        "colorizations. Needs the [demo] extra (pip install -e '.[cpu,demo]').", DemoOptions)


def demo_main(argv=None):
    """`python demo.py` (`cgan-demo`): the colorization page in the browser."""
    runtime.configure()
    args = demo_parser().parse(argv)
    try:
        import gradio  # noqa: F401
    except ImportError:
        _fail("the page needs Gradio: install the [demo] extra (pip install -e '.[cpu,demo]').")
    from cgan_colorization.apps.demo import serve

    try:
        serve(args.colorizer, args.runs_dir, args.checkpoint, args.host, args.port, args.share)
    except (FileNotFoundError, ValueError) as error:
        _fail(error)


def export_parser():
    return build_parser(
        "Export a trained colorizer for use without this package: its generator (normalized L in, "
        "normalized ab out, at its training size) as a SavedModel (with a 'colorize' signature: a uint8 photo of "
        "any size in, the colorized uint8 RGB photo out, as colorize.py), a LiteRT flatbuffer and/or an ONNX graph "
        "(the [export] extra), and with --encoder its U-Net encoder as a .keras backbone.", ExportOptions)


def export_main(argv=None):
    """`python export_colorizer.py` (`cgan-export`): the generator as SavedModel / LiteRT / ONNX, and its encoder."""
    runtime.configure()
    parser = export_parser()
    args = parser.parse(argv)
    if not args.format and not args.encoder:
        parser.error("--format none exports nothing: add --encoder, or name a format")
    from cgan_colorization.apps.export import export_colorizer
    from cgan_colorization.apps.inference import describe_checkpoint, load_colorizer

    try:
        colorizer = load_colorizer(args.colorizer, args.image_size, args.base_filters, checkpoint=args.checkpoint)
        print(f"colorizer weights: {colorizer.checkpoint['file']}, {describe_checkpoint(colorizer.checkpoint)}")
        written = export_colorizer(colorizer, args.out, args.format, args.encoder)
    except (FileNotFoundError, ValueError) as error:
        _fail(error)
    for kind, path in written.items():
        print(f"{kind}: {path}")
    return written
