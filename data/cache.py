"""A decoded-image cache: photos decoded, resized and converted once, then read as model inputs.

A folder pipeline pays, every epoch and for every photo, a JPEG decode, a resize and the sRGB -> Lab
conversion (the conversion alone measured 4.5 ms per 256-px image on this project's two CPU
cores). `build_cache` pays them once: it decodes every file (unreadable ones skipped, greyscale
ones dropped, as `stream.image_file_dataset` does), brings it to the training size with
`decode.fit_to_size`, splits it into the model's grey input and colour target
(`color.split_rgb`) and writes the three channels as float16 (within 2.5e-4 of the float32
values, which lie in [-1, 1]) to shards of fixed-length records, the files in a seeded shuffled
order. `cache_dataset` reads them back in blocks of `BLOCK` records, the blocks in a permutation
keyed by (seed, epoch) and each block shuffled too, several blocks at a time, so an epoch is a
pure function of the seed and a resumed run skips exactly what it saw.

A cache folder holds:

    build.json              what is being built (source, size, colour space, split, the files' fingerprint)
    train-00000.f16 ...     float16 records [S, S, 3] (grey input, colour target), no header
    train-00000.json        that shard's files and counts, written once the shard itself is complete
    val-00000.f16 ...       the held-out split, the same way
    manifest.json           written last, atomically: source, size, counts and shards (each with its SHA-256)
    verified.json           the shards whose SHA-256 a run has checked (size and mtime), so each is read once

Only a folder with `manifest.json` is a cache (`open_cache`). A build killed mid-way leaves no
manifest, so it is never read as complete; building again into the folder keeps every shard whose
record was written and rewrites the rest, or starts over when the build parameters changed.

Nothing in a cache is read half-written or altered without a word: each shard's SHA-256 is computed
as it is written and checked again when the build finishes (`verify_cache`, also `cache_images.py
--verify`) and, once per shard, the first time a run reads it (`check_new_shards`); every open checks
each shard's size against the manifest. A truncated or altered shard is one sentence that names it
and says how to rebuild.
"""

import dataclasses
import hashlib
import json
import os
import time

import numpy as np
import tensorflow as tf

from data.color import check_color_space, split_rgb
from data.diskfull import DiskFullError, is_disk_full, remove_quietly, size_text, write_text
from data.decode import DecodeStats, fit_to_size
from data.stream import image_file_dataset

MANIFEST = "manifest.json"
BUILD = "build.json"
VERIFIED = "verified.json"
_READ_CHUNK = 1 << 24  # bytes hashed at a time
FORMAT = "float16-pairs-v1"
SUFFIX = ".f16"
FILES_PER_SHARD = 1024  # about 400 MB per shard at 256 px
BLOCK = 64  # records read at once (fewer, larger reads are faster); an epoch visits the blocks in a seeded order
CYCLE = 8  # blocks read in parallel and interleaved, so a batch mixes photos of several blocks
ORDER_SEED = 0  # the seeded order of the files in the shards
SPLITS = ("train", "val")
_AUTOTUNE = tf.data.AUTOTUNE


@dataclasses.dataclass
class Cache:
    """A complete cache folder, as its manifest describes it."""

    path: str
    manifest: dict

    @property
    def image_size(self):
        return int(self.manifest["image_size"])

    def count(self, split):
        """Images stored for `split` ("train", "val" or "all")."""
        return sum(self.manifest["splits"][s]["images"] for s in self._splits(split))

    def shards(self, split):
        """Paths of the shards of `split` ("train", "val" or "all"), in order."""
        return [os.path.join(self.path, shard["file"]) for s in self._splits(split)
                for shard in self.manifest["splits"][s]["shards"]]

    def _splits(self, split):
        if split not in (*SPLITS, "all"):
            raise ValueError(f"split must be one of {(*SPLITS, 'all')}, received {split!r}.")
        return SPLITS if split == "all" else (split,)

    def check(self, image_size, resize_mode="resize", drop_greyscale=True, color_space="lab"):
        """A one-sentence ValueError when the cache cannot stand for the run's own decoding."""
        made = self.manifest
        if image_size != made["image_size"]:
            raise ValueError(f"the cache {self.path} holds {made['image_size']} px images and this run needs "
                             f"{image_size} px: build a cache at {image_size} px into another folder.")
        if color_space != made["color_space"]:
            raise ValueError(f"the cache {self.path} holds {made['color_space']} inputs and targets and this model "
                             f"reads {color_space}: build a cache for it into another folder.")
        if resize_mode != made["resize_mode"]:
            raise ValueError(f"the cache {self.path} was built with --resize-mode {made['resize_mode']}, this run "
                             f"asks for {resize_mode}: build a cache with it into another folder.")
        if drop_greyscale != made["drop_greyscale"]:
            raise ValueError(f"the cache {self.path} {'dropped' if made['drop_greyscale'] else 'kept'} greyscale "
                             "photos and this run wants the opposite: match --keep-greyscale to the cache.")

    def summary(self):
        """One line: where it came from and what it holds."""
        c = self.manifest["splits"]
        return (f"cache {self.path}: {c['train']['images']} training and {c['val']['images']} held-out images at "
                f"{self.image_size} px from {self.manifest['source']} ({self.manifest['unreadable']} unreadable "
                f"skipped, {self.manifest['greyscale']} greyscale dropped)")


def _read_json(path):
    with open(path) as f:
        return json.load(f)


def _write_json(path, payload):
    """Writes JSON atomically: a reader sees the old file or the whole new one, never half of it."""
    write_text(path, json.dumps(payload, indent=2), "the cache record")


def open_cache(path):
    """The complete cache at `path`; a one-sentence error for a missing or half-written one."""
    path = os.fspath(path)
    manifest = os.path.join(path, MANIFEST)
    if not os.path.isfile(manifest):
        if os.path.isfile(os.path.join(path, BUILD)):
            raise ValueError(f"the cache {path} is half-written (its build was interrupted): build it again with "
                             "the same command to resume it.")
        raise FileNotFoundError(f"{path} is not an image cache (no {MANIFEST}): build one with cache_images.py "
                                "or train with --cache.")
    cache = Cache(path, _read_json(manifest))
    if cache.manifest.get("format") != FORMAT:
        raise ValueError(f"the cache {path} has format {cache.manifest.get('format')!r}, this version reads "
                         f"{FORMAT!r}: build it again into another folder.")
    check_sizes(cache)
    return cache


def _shard_entries(cache):
    return [(os.path.join(cache.path, shard["file"]), shard) for split in SPLITS
            for shard in cache.manifest["splits"].get(split, {}).get("shards", [])]


def _damaged(cache, path, why):
    source = cache.manifest.get("source") or "the photo folder"
    return ValueError(f"the cache shard {path} {why}: rebuild the cache from {source} into a new folder with "
                      f"cache_images.py --cache NEW_FOLDER (or delete {cache.path} and run the same command).")


def check_sizes(cache):
    """Every shard's size against the manifest (records x record bytes): one sentence for a missing or
    truncated shard, at the cost of a stat per shard."""
    record_bytes = cache.manifest["record_bytes"]
    for path, shard in _shard_entries(cache):
        expected = shard["images"] * record_bytes
        if not os.path.isfile(path):
            raise _damaged(cache, path, "is missing")
        size = os.path.getsize(path)
        if size != expected:
            raise _damaged(cache, path, f"holds {size:,} bytes where its {shard['images']} records take "
                                        f"{expected:,} (truncated or altered)")


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_READ_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_cache(cache, only_new=False, log=print):
    """Reads shards back and checks each against the SHA-256 taken when it was written (all of them,
    or with `only_new` those not yet checked in their present size and mtime, as recorded in
    `verified.json`); a one-sentence ValueError names an altered shard. Returns the shards checked."""
    record_path = os.path.join(cache.path, VERIFIED)
    verified = _read_json(record_path) if only_new and os.path.isfile(record_path) else {}
    checked = []
    for path, shard in _shard_entries(cache):
        if "sha256" not in shard:  # a cache written before shards carried checksums
            continue
        stat = os.stat(path)
        key, stamp = os.path.basename(path), [stat.st_size, stat.st_mtime_ns]
        if only_new and verified.get(key) == stamp:
            continue
        if _sha256(path) != shard["sha256"]:
            raise _damaged(cache, path, "does not match the checksum taken when it was written (altered on disk)")
        verified[key] = stamp
        checked.append(path)
    if only_new and checked:
        try:
            _write_json(record_path, verified)
        except (OSError, DiskFullError):  # a read-only cache, or a full disk: checked again next time
            pass
    return checked


def check_new_shards(cache, log=print):
    """The check a run makes before it reads a cache: each shard's checksum the first time it is read."""
    start = time.time()
    checked = verify_cache(cache, only_new=True, log=log)
    if checked:
        log(f"checked the SHA-256 of {len(checked)} cache shard(s) in {time.time() - start:.1f} s")
    return checked


def _plan(splits, files_per_shard):
    """{split: [list of files of each shard]}: consecutive runs of the files in a seeded order, so
    that every shard (and block) is a random sample of the split."""
    plan = {}
    for split, paths in splits.items():
        paths = [paths[i] for i in np.random.default_rng(ORDER_SEED).permutation(len(paths))]
        plan[split] = [paths[i:i + files_per_shard] for i in range(0, len(paths), files_per_shard)]
    return plan


def _fingerprint(plan):
    digest = hashlib.sha256()
    for split in SPLITS:
        for shard in plan[split]:
            digest.update(("\n".join(shard) + "\n\n").encode())
        digest.update(b"|")
    return digest.hexdigest()


def pack(rgb, color_space="lab"):
    """One sRGB image [S, S, 3] in [0, 1] -> the float16 record: (grey input, colour target)."""
    grey, colour = split_rgb(rgb, color_space)
    return tf.cast(tf.concat([grey, colour], axis=-1), tf.float16)


def _write_shard(files, path, image_size, resize_mode, drop_greyscale, color_space, stats):
    """Decodes `files`, brings them to the size, converts them and appends their records to `path`
    (via a .tmp file renamed once complete). Returns the shard's files and counts."""
    stats.reset()
    tmp = path + ".tmp"
    written, digest = 0, hashlib.sha256()
    try:
        with open(tmp, "wb") as f:
            if files:
                ds = image_file_dataset(files, stats=stats, drop_greyscale=drop_greyscale)
                ds = ds.map(lambda rgb: pack(fit_to_size(rgb, image_size, resize_mode), color_space),
                            num_parallel_calls=_AUTOTUNE).prefetch(_AUTOTUNE)
                try:
                    for pixels in ds:
                        data = pixels.numpy().tobytes()
                        f.write(data)
                        digest.update(data)
                        written += 1
                except tf.errors.InvalidArgumentError:  # every file of the shard unreadable or greyscale
                    pass
            f.flush()
            os.fsync(f.fileno())
    except BaseException as error:
        remove_quietly(tmp)
        if is_disk_full(error):
            raise DiskFullError(path, len(files) * image_size ** 2 * 3 * 2, "the cache shard") from None
        raise
    os.replace(tmp, path)
    counts = stats.as_dict() if files else {"seen": 0, "skipped": 0, "greyscale": 0}
    return {"files": len(files), "images": written, "unreadable": counts["skipped"],
            "greyscale": counts["greyscale"], "sha256": digest.hexdigest(), "paths": list(files)}


def _rest_of_build(path, plan, image_size):
    """What a build stopped by a full disk keeps, and about how much space the rest of it needs."""
    done, files_left = 0, 0
    for split in SPLITS:
        for index, files in enumerate(plan[split]):
            name = f"{split}-{index:05d}"
            if os.path.isfile(os.path.join(path, name + ".json")) and os.path.isfile(os.path.join(path, name + SUFFIX)):
                done += 1
            else:
                files_left += len(files)
    return (f"the build stopped and keeps its {done} complete shard(s): free up to "
            f"{size_text(files_left * image_size ** 2 * 3 * 2)} (the rest of the build) and run the same command to "
            "finish it")


def build_cache(path, splits, *, image_size, source="", resize_mode="resize", drop_greyscale=True,
                color_space="lab", split_info=None, files_per_shard=FILES_PER_SHARD, log=print, on_shard=None):
    """Builds (or finishes) the cache at `path` and returns it as a `Cache`.

    Args:
        path: Cache folder; created if needed. A complete cache with the same parameters is returned
            as it is; a half-written one with the same parameters is resumed; one built with other
            parameters or from other files is started over. A non-empty folder that is no cache is
            refused, so that nothing else is ever overwritten.
        splits: {"train": paths, "val": paths}: the image files of each split (see `files.split_paths`).
        image_size: The square size every image is brought to.
        source: What the files are (e.g. the `--dataset` value), recorded in the manifest.
        resize_mode: "resize" squashes the photo to the size (the paper), "crop" takes the centre crop.
        drop_greyscale: Leave out photos with almost no colour (`decode.is_greyscale`).
        color_space: What the records hold: "lab" (L and ab, normalized) or "yuv" (Y and UV).
        split_info: Extra facts about the split (e.g. its seed and held-out fraction) for the manifest.
        files_per_shard: Source files per shard.
        log: Where progress lines go.
        on_shard: Called with (split, index) after each shard is complete (tests stop a build with it).
    """
    path = os.fspath(path)
    if resize_mode not in ("resize", "crop"):
        raise ValueError(f"the cache takes --resize-mode resize or crop, received {resize_mode!r}.")
    check_color_space(color_space)
    splits = {split: sorted(os.fspath(p) for p in splits.get(split, ())) for split in SPLITS}
    if not splits["train"]:
        raise ValueError("a cache needs training images: the dataset listed none.")
    plan = _plan(splits, files_per_shard)
    params = {"format": FORMAT, "source": source, "image_size": int(image_size), "resize_mode": resize_mode,
              "drop_greyscale": bool(drop_greyscale), "color_space": color_space,
              "files_per_shard": int(files_per_shard), "files": _fingerprint(plan), "split": split_info or {}}
    if os.path.isfile(os.path.join(path, MANIFEST)):
        cache = open_cache(path)
        if cache.manifest["build"] == params:
            return cache
        cache.check(image_size, resize_mode, drop_greyscale, color_space)  # one sentence for another size
        raise ValueError(f"the cache {path} was built from other files or options: build into another folder.")
    if os.path.isdir(path) and not os.path.isfile(os.path.join(path, BUILD)) and \
            [name for name in os.listdir(path) if not name.startswith(".")]:  # e.g. its .lock
        raise ValueError(f"{path} is a non-empty folder that is not an image cache: give --cache an empty or "
                         "new folder.")
    os.makedirs(path, exist_ok=True)
    build_file = os.path.join(path, BUILD)
    if os.path.isfile(build_file) and _read_json(build_file) != params:
        log(f"{path}: an interrupted build with other parameters is there; starting over.")
        for name in os.listdir(path):
            if name.endswith((SUFFIX, ".json", ".tmp")):
                os.remove(os.path.join(path, name))
    _write_json(build_file, params)
    stats = DecodeStats()
    start, kept = time.time(), 0
    summary = {}
    for split in SPLITS:
        shards = []
        for index, files in enumerate(plan[split]):
            name = f"{split}-{index:05d}"
            record = os.path.join(path, name + ".json")
            if os.path.isfile(record) and os.path.isfile(os.path.join(path, name + SUFFIX)):
                counts = _read_json(record)
                kept += 1
            else:
                try:
                    counts = _write_shard(files, os.path.join(path, name + SUFFIX), image_size, resize_mode,
                                          drop_greyscale, color_space, stats)
                    _write_json(record, counts)
                except DiskFullError as error:
                    raise error.keeping(_rest_of_build(path, plan, image_size)) from None
                log(f"{split} shard {index + 1}/{len(plan[split])}: {counts['images']} images")
            shards.append({key: counts[key] for key in ("files", "images", "unreadable", "greyscale", "sha256")
                           if key in counts} | {"file": name + SUFFIX})
            if on_shard is not None:
                on_shard(split, index)
        summary[split] = {"shards": shards, **{key: sum(s[key] for s in shards)
                                              for key in ("files", "images", "unreadable", "greyscale")}}
    if not summary["train"]["images"]:
        raise ValueError(f"none of the {summary['train']['files']} training files gave a usable image "
                         "(unreadable or greyscale): point the dataset at colour photos.")
    manifest = {"format": FORMAT, "source": source, "image_size": int(image_size), "resize_mode": resize_mode,
                "drop_greyscale": bool(drop_greyscale), "color_space": color_space, "split": split_info or {},
                "splits": summary, "unreadable": sum(summary[s]["unreadable"] for s in SPLITS),
                "greyscale": sum(summary[s]["greyscale"] for s in SPLITS),
                "record_bytes": int(image_size) ** 2 * 3 * 2, "dtype": "float16", "build": params,
                "seconds": round(time.time() - start, 1), "resumed_shards": kept,
                "created": time.strftime("%Y-%m-%d %H:%M:%S")}
    cache = Cache(path, manifest)
    check_sizes(cache)
    if os.path.isfile(os.path.join(path, VERIFIED)):
        os.remove(os.path.join(path, VERIFIED))
    verify_cache(cache, only_new=True, log=log)  # every shard read back against the SHA-256 taken as it was written
    _write_json(os.path.join(path, MANIFEST), manifest)  # last: from now on the cache is complete
    log(cache.summary() + (f"; {kept} shard(s) kept from an interrupted build" if kept else ""))
    return cache


def _blocks(cache, split):
    """(file, first byte, records, bytes after) of every block of `split`, in storage order."""
    size = cache.manifest["record_bytes"]
    blocks = []
    for path, shard in zip(cache.shards(split), [s for sp in cache._splits(split)
                                                 for s in cache.manifest["splits"][sp]["shards"]]):
        n = shard["images"]
        for first in range(0, n, BLOCK):
            count = min(BLOCK, n - first)
            blocks.append((path, first * size, count, (n - first - count) * size))
    return blocks


def _permutation(n, seed):
    keys = tf.random.stateless_uniform([n], seed=seed, minval=None, maxval=None, dtype=tf.int64, alg="philox")
    return tf.argsort(keys, stable=True)


def cache_dataset(cache, split="train", *, shuffle=False, seed=0, repeat=False, skip=0, shard=None):
    """Streams the records of `split` ("train", "val" or "all") as float16 `[S, S, 3]`: channel 0 the
    grey input, channels 1-2 the colour target, in the cache's colour space.

    Records are read `BLOCK` at a time. With `shuffle`, epoch e visits the blocks in a permutation
    keyed by (seed, e), shuffles each block and interleaves `CYCLE` blocks, so the stream is a pure
    function of the arguments; without it, the records come in storage order. `skip` records of the
    (repeated) stream are passed over first, to resume a run. `shard=(index, workers)` reads every
    `workers`-th block from the `index`-th: one worker's part of a multi-worker run.
    """
    blocks = _blocks(cache, split)
    if not blocks:
        raise ValueError(f"the cache {cache.path} holds no {split} images.")
    if shard is not None:
        index, workers = shard
        if len(blocks) < workers:
            raise ValueError(f"the cache {cache.path} holds {len(blocks)} {split} blocks of up to {BLOCK} images, "
                             f"fewer than the {workers} workers: train from the photo folder instead, or on "
                             "fewer workers.")
        blocks = blocks[index::workers]
    size, record_bytes = cache.image_size, cache.manifest["record_bytes"]
    n_images = sum(block[2] for block in blocks)
    columns = list(zip(*blocks))
    paths = tf.constant(columns[0])
    firsts, counts, afters = (tf.constant(column, tf.int64) for column in columns[1:])
    seed = int(seed) % 2**63
    first_epoch, offset = divmod(int(skip), n_images) if repeat else (0, int(skip))

    def read_block(path, first, count, after, block_seed):
        def unpack(data):
            records = tf.reshape(tf.io.decode_raw(data, tf.float16), [-1, size, size, 3])
            return tf.gather(records, _permutation(count, block_seed)) if shuffle else records

        return tf.data.FixedLengthRecordDataset(
            path, count * record_bytes, header_bytes=first, footer_bytes=after,
            buffer_size=BLOCK * record_bytes).map(unpack).unbatch()

    def epoch_records(epoch):
        order = _permutation(len(blocks), tf.stack([tf.constant(seed, tf.int64), epoch])) if shuffle \
            else tf.range(len(blocks), dtype=tf.int64)
        block_seeds = tf.stack([tf.fill([len(blocks)], epoch), tf.cast(order, tf.int64) + seed], axis=1)
        picked = tuple(tf.gather(column, order) for column in (paths, firsts, counts, afters)) + (block_seeds,)
        start = tf.where(epoch == first_epoch, tf.constant(offset, tf.int64), tf.constant(0, tf.int64))
        return tf.data.Dataset.from_tensor_slices(picked).interleave(
            read_block, cycle_length=min(CYCLE, len(blocks)) if shuffle else 1, block_length=1,
            num_parallel_calls=_AUTOTUNE, deterministic=True).skip(start)

    last_epoch = 2**62 if repeat else first_epoch + 1
    return tf.data.Dataset.range(first_epoch, last_epoch).flat_map(epoch_records)
