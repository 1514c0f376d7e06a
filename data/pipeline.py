"""From a dataset name to batched, normalized (L, ab) tensors for the colorization pretext.

Sources (the `--dataset` flag):
  synthetic          the embedded procedural scenes (no files needed; the default)
  coco               TFDS `coco/2014`, when it has been prepared (`tfds build coco/2014`)
  coco:PATH          a local folder of COCO JPEGs, e.g. `.../train2014`
  folder:PATH        any folder of photos, searched recursively
  folder:A,B         several folders (also for coco:)
  pets               TFDS `oxford_iiit_pet` with its trimaps (for the multitask objective)
  tinyimagenet:PATH  the unpacked `tiny-imagenet-200` folder: its train photos, its val photos held
                     out (`data/tinyimagenet.py`); `max_photos_per_class` takes nested subsets

A photo source can be read from a decoded-image cache instead (`cached_source`, `--cache DIR`): the
same images, decoded, resized and converted to the model's input and target once (`data.cache`).
"""

import dataclasses
import os
import typing

import tensorflow as tf

from data.color import TARGET_KEYS, check_color_space, normalize_lab, rgb_to_lab, split_rgb
from data import cache as image_cache
from data import pets, synthetic, tinyimagenet
from data.tfds_sources import prepared_builder
from data.decode import DecodeStats, check_readable, fit_to_size, is_greyscale
from data.files import list_images, split_paths
from data.stream import image_file_dataset

SYNTHETIC_VAL_START = 2**40  # held-out scenes come from an index range training never reaches
AUTOTUNE = tf.data.AUTOTUNE


def to_lab_pair(rgb):
    """sRGB [..., 3] in [0, 1] -> (L, ab) normalized into [-1, 1]."""
    return normalize_lab(rgb_to_lab(rgb))


@dataclasses.dataclass
class PretextSource:
    """A parsed `--dataset` value: where the photos come from and how many there are."""

    spec: str
    kind: str  # "synthetic", "tfds", "files" or "cache"
    train_paths: list = dataclasses.field(default_factory=list)
    val_paths: list = dataclasses.field(default_factory=list)
    stats: DecodeStats = None
    cache: image_cache.Cache = None  # kind "cache": the decoded images
    held_out: str = "val"  # kind "cache": the split that the "val" stream reads ("val" or "all")

    @property
    def num_train(self):
        """Training images per pass, or None for the endless synthetic stream."""
        if self.kind == "files":
            return len(self.train_paths)
        if self.kind == "cache":
            return self.cache.count("train")
        if self.kind == "tfds":
            return 82_783
        return None


def _synthetic_source(spec, path, *, val_fraction, seed, tfds_data_dir):
    return PretextSource(spec, "synthetic")


def _pets_source(spec, path, *, val_fraction, seed, tfds_data_dir):
    pets.pets_builder(tfds_data_dir)  # one-sentence error when it is not prepared
    return PretextSource(spec, "pets")


def _coco_tfds_source(spec, path, *, val_fraction, seed, tfds_data_dir):
    prepared_builder("coco/2014", tfds_data_dir, instead="--dataset coco:PATH/train2014")
    return PretextSource(spec, "tfds", stats=DecodeStats())


def _files_source(spec, path, *, val_fraction, seed, tfds_data_dir):
    """The photos of the comma-separated folders `path`, split into train and val."""
    paths = sorted({p for folder in path.split(",") if folder
                    for p in list_images(os.path.expanduser(folder))})
    check_readable(paths)
    train, val = split_paths(paths, val_fraction=val_fraction, seed=seed)
    return PretextSource(spec, "files", train, val, DecodeStats())


def _tinyimagenet_source(spec, path, *, val_fraction, seed, tfds_data_dir, max_photos_per_class):
    """Tiny ImageNet's train photos (at most `max_photos_per_class` of each class, 0: all) and its val
    photos held out; its labels are not read, and `val_fraction` is not used (the held-out part is fixed)."""
    train, val = tinyimagenet.pretext_paths(path, max_photos_per_class)
    check_readable(train)
    return PretextSource(spec, "files", train, val, DecodeStats())


class _Source(typing.NamedTuple):
    """One entry of `SOURCES`: the parser `parse(spec, path, *, val_fraction, seed, tfds_data_dir)`,
    and whether it also takes `max_photos_per_class` (a source with classes to subset)."""

    parse: typing.Callable
    per_class: bool = False


# Spec prefix (up to and including the first ':', or the whole spec when it has none) -> source;
# a prefix ending in ':' needs a path after it.
SOURCES = {
    "synthetic": _Source(_synthetic_source),
    "pets": _Source(_pets_source),
    "coco": _Source(_coco_tfds_source),
    "coco:": _Source(_files_source),
    "folder:": _Source(_files_source),
    "tinyimagenet:": _Source(_tinyimagenet_source, per_class=True),
}


def parse_dataset(spec, val_fraction=0.05, seed=0, tfds_data_dir=None, max_photos_per_class=0):
    """Parses a `--dataset` value; file sources are listed and checked here, once, at start-up.

    `max_photos_per_class` (Tiny ImageNet only; 0 or None: all) trains on the first N photos of each
    class, so a smaller N's photos are always among a larger N's.
    """
    kind, sep, path = spec.partition(":")
    source = SOURCES.get(kind + sep)
    if source is None or (sep and not path):
        raise ValueError(
            f"--dataset must be 'synthetic', 'coco', 'coco:PATH', 'folder:PATH', 'pets' or 'tinyimagenet:PATH', "
            f"received {spec!r}."
        )
    options = dict(val_fraction=val_fraction, seed=seed, tfds_data_dir=tfds_data_dir)
    if source.per_class:
        options["max_photos_per_class"] = max_photos_per_class
    elif max_photos_per_class:
        raise ValueError(f"--max-photos-per-class needs a dataset with classes (tinyimagenet:PATH), received "
                         f"{max_photos_per_class!r} with --dataset {spec!r}; leave it at 0 for this dataset.")
    return source.parse(spec, path, **options)


def cached_source(source, cache_dir, *, image_size, resize_mode="resize", drop_greyscale=True, color_space="lab",
                  build=True, val_fraction=None, seed=None, log=print):
    """The photo source `source` read from the decoded-image cache at `cache_dir`.

    A complete cache is used as it is (its own train / held-out split, fixed when it was built),
    after checking that it holds images of this size, resize mode, greyscale policy and colour
    space. Otherwise, with `build`, the cache is built (or a half-written one finished) from
    `source`'s files first.
    """
    if not os.path.isfile(os.path.join(cache_dir, image_cache.MANIFEST)):
        if not build:
            raise ValueError(f"the cache {cache_dir} is not complete: build it first (cache_images.py, or one "
                             "single-process run with --cache), then start every worker.")
        if source.kind != "files":
            raise ValueError(f"--cache stores the photos of a folder dataset (folder:PATH or coco:PATH), "
                             f"received --dataset {source.spec}.")
        image_cache.build_cache(cache_dir, {"train": source.train_paths, "val": source.val_paths},
                                image_size=image_size, source=source.spec, resize_mode=resize_mode,
                                drop_greyscale=drop_greyscale, color_space=color_space, log=log,
                                split_info={"val_fraction": val_fraction, "seed": seed})
    cache = image_cache.open_cache(cache_dir)  # checks every shard's size against the manifest
    cache.check(image_size, resize_mode, drop_greyscale, color_space)
    image_cache.check_new_shards(cache, log=log)
    # The cache keeps the split it was built with; its photos must still be the dataset's (e.g. not Tiny
    # ImageNet's first 5 photos a class read by a run of 50 a class).
    splits = cache.manifest.get("splits", {})
    built = sum(splits.get(split, {}).get("files", 0) for split in ("train", "val")) if splits else None
    listed = len(set(source.train_paths) | set(source.val_paths))
    if source.kind == "files" and built is not None and built != listed:
        raise ValueError(f"the cache {cache_dir} was built from {built} photos and --dataset {source.spec} lists "
                         f"{listed} here: build a cache of these photos into another folder.")
    return PretextSource(cache.manifest["source"] or source.spec, "cache", cache=cache)


@dataclasses.dataclass(frozen=True)
class WorkerShard:
    """One input pipeline's share of a multi-worker run's training stream: pipeline `index` of
    `count` (one per worker) adds `global_batch // count` photos to every step.

    Each pipeline reads its own part of the source, so no worker decodes what another uses: the
    synthetic scenes of its slot in every global batch (the very batches one process would form),
    every `count`-th photo file, or every `count`-th cache block.
    """

    index: int
    count: int
    global_batch: int

    @property
    def per_step(self):
        return self.global_batch // self.count

    def take(self, items, what):
        """Every `count`-th of `items`, from the `index`-th; a ValueError when that leaves none."""
        mine = list(items)[self.index::self.count]
        if not mine:
            raise ValueError(f"{len(items)} {what} cannot be shared among {self.count} workers: use more training "
                             "photos, or fewer workers.")
        return mine


SHARDABLE_KINDS = ("synthetic", "files", "cache")  # the others are streams: each worker keeps its share of batches


def _batch_to_pairs(ds, batch_size, drop_remainder, color_space="lab"):
    ds = ds.batch(batch_size, drop_remainder=drop_remainder, num_parallel_calls=AUTOTUNE)
    return ds.map(lambda rgb: split_rgb(rgb, color_space), num_parallel_calls=AUTOTUNE)


def _stream_index(i, shard):
    """The key of the `i`-th image of a pipeline's stream: its own, not another worker's."""
    return i if shard is None else i * shard.count + shard.index


def pretext_dataset(source, split="train", *, image_size=64, batch_size=16, seed=0,
                    resize_mode="resize", random_crop=False, flip=False, drop_greyscale=True,
                    skip_batches=0, num_classes=6, val_size=256, with_masks=False, color_space="lab",
                    shard=None):
    """Batched (L, ab) pairs for training (endless, shuffled) or evaluation (one ordered pass).

    `skip_batches` resumes an interrupted run: the training stream starts where step
    `skip_batches` left it. `with_masks` yields (L, {"ab": ab, "mask": mask}) instead, for the
    multitask objective (synthetic scenes and pets only). `color_space="yuv"` yields (Y, UV) and
    {"uv": UV, "mask": mask} (the MobileNetV2 multitask model). `shard` (a `WorkerShard`, training
    only, a source kind in `SHARDABLE_KINDS`) makes this one worker's pipeline, in batches of
    `batch_size` (the per-replica batch).
    """
    training = split == "train"
    if shard is not None and (not training or source.kind not in SHARDABLE_KINDS):
        raise ValueError(f"only the training stream of {', '.join(SHARDABLE_KINDS)} sources is read per worker, "
                         f"not the {split} split of {source.spec!r}.")
    skip = skip_batches * (batch_size if shard is None else shard.per_step) if training else 0
    check_color_space(color_space)
    key = TARGET_KEYS[color_space]
    if with_masks and source.kind not in ("synthetic", "pets"):
        raise ValueError(f"the multitask objective needs segmentation masks: use --dataset synthetic or pets, "
                         f"received {source.spec!r}.")
    if source.kind == "cache":
        return _cached_pairs(source, training, image_size=image_size, batch_size=batch_size, seed=seed,
                             resize_mode=resize_mode, random_crop=random_crop, flip=flip,
                             drop_greyscale=drop_greyscale, skip=skip, color_space=color_space, shard=shard)
    if source.kind == "pets":
        ds = pets.pets_dataset("train[:90%]" if training else "train[90%:]", image_size, batch_size, seed=seed,
                               training=training, color_space=color_space)
        ds = ds.repeat().skip(skip_batches) if training else ds
        return ds if with_masks else ds.map(lambda gray, targets: (gray, targets[key]))
    if source.kind == "synthetic":
        start = (skip if shard is None else skip_batches * shard.global_batch) if training else SYNTHETIC_VAL_START
        scenes = synthetic.synthetic_dataset(
            seed=seed, image_size=image_size, num_classes=num_classes, start=start,
            count=None if training else val_size,
            shard=None if shard is None else (shard.index, shard.count, shard.per_step),
        )
        if with_masks:
            def pair(batch):
                gray, colour = split_rgb(batch["image"], color_space)
                return gray, {key: colour, "mask": batch["mask"]}

            return scenes.batch(batch_size, drop_remainder=training).map(
                pair, num_parallel_calls=AUTOTUNE).prefetch(AUTOTUNE)
        ds = scenes.map(lambda scene: scene["image"], num_parallel_calls=AUTOTUNE)
        return _batch_to_pairs(ds, batch_size, training, color_space).prefetch(AUTOTUNE)
    if source.kind == "tfds":
        import tensorflow_datasets as tfds

        ds = tfds.load("coco/2014", split="train" if training else "validation[:4000]",
                       shuffle_files=training, read_config=tfds.ReadConfig(shuffle_seed=seed))
        ds = ds.map(lambda ex: tf.image.convert_image_dtype(ex["image"], tf.float32),
                    num_parallel_calls=AUTOTUNE)
        if drop_greyscale:
            ds = ds.filter(lambda rgb: tf.logical_not(is_greyscale(rgb)))
        if training:
            ds = ds.repeat().shuffle(1024, seed=seed).skip(skip)
    else:
        paths = source.train_paths if training else source.val_paths
        ds = image_file_dataset(
            paths if shard is None else shard.take(paths, "training photos"), stats=source.stats,
            drop_greyscale=drop_greyscale, shuffle=training, seed=seed, repeat=training, skip=skip,
        )
    counter = tf.data.Dataset.counter().map(lambda i: tf.stack([tf.cast(seed, tf.int64), _stream_index(i, shard)]))
    ds = tf.data.Dataset.zip(ds, counter).map(
        lambda rgb, s: fit_to_size(rgb, image_size, resize_mode, training and random_crop,
                                   training and flip, s),
        num_parallel_calls=AUTOTUNE,
    )
    return _batch_to_pairs(ds, batch_size, training, color_space).prefetch(AUTOTUNE)


def _cached_pairs(source, training, *, image_size, batch_size, seed, resize_mode, random_crop, flip, drop_greyscale,
                  skip, color_space, shard=None):
    """`pretext_dataset` on a cache: its records are already the model's input and target at the size,
    so only flips remain to do."""
    source.cache.check(image_size, resize_mode, drop_greyscale, color_space)
    if training and random_crop:
        raise ValueError("--random-crop needs each photo's whole frame, which a cache does not keep: train without "
                         "--cache, or without --random-crop.")
    ds = image_cache.cache_dataset(source.cache, "train" if training else source.held_out, shuffle=training,
                                   seed=seed, repeat=training, skip=skip,
                                   shard=None if shard is None else (shard.index, shard.count))
    if training and flip:  # the flip of the n-th image of the stream, also when resumed past it
        counter = tf.data.Dataset.counter(start=skip).map(
            lambda i: tf.stack([tf.cast(seed, tf.int64), _stream_index(i, shard)]))
        ds = tf.data.Dataset.zip(ds, counter).map(
            lambda packed, s: tf.image.stateless_random_flip_left_right(packed, seed=s[::-1]),
            num_parallel_calls=AUTOTUNE)
    ds = ds.batch(batch_size, drop_remainder=training, num_parallel_calls=AUTOTUNE)
    ds = ds.map(lambda packed: (tf.cast(packed[..., :1], tf.float32), tf.cast(packed[..., 1:], tf.float32)),
                num_parallel_calls=AUTOTUNE)
    return ds.prefetch(AUTOTUNE)
