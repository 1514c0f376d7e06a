"""How fast the input pipeline can feed a trainer: (L, ab) batches per second from a photo folder
(decode + resize + Lab every epoch) and from its decoded-image cache (read + Lab), per host core,
and how many host cores each would need to keep up with a target rate (a GPU's train step)."""

import math
import os
import time

import numpy as np

from data.pipeline import cached_source, parse_dataset, pretext_dataset


def host_cores():
    """The CPU cores this process may run on (what tf.data's thread pools get)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def feed_rate(source, image_size, batch_size, batches, seed=0, warmup=3):
    """Images per second of the training stream of `source` (endless, shuffled, as training reads
    it), timed over `batches` batches after `warmup` ones (start-up and buffers filling excluded)."""
    iterator = iter(pretext_dataset(source, "train", image_size=image_size, batch_size=batch_size, seed=seed))
    for _ in range(warmup):
        next(iterator)
    count, start = 0, time.perf_counter()
    for _ in range(batches):
        gray, _ = next(iterator)
        count += int(gray.shape[0])
    return count / (time.perf_counter() - start)


def _rates(rate, cores, target):
    per_core = rate / cores
    return {"images_per_s": rate, "images_per_s_per_core": per_core, "cores_for_target": math.ceil(target / per_core)}


def sample_files(source, max_files, seed=0):
    """`source` with at most `max_files` of its photos, drawn at random (seeded) from each split in
    proportion, so that measuring a COCO-sized folder never decodes all of it."""
    listed = len(source.train_paths) + len(source.val_paths)
    if not max_files or listed <= max_files:
        return source
    rng = np.random.default_rng(seed)
    keep_val = max(1, round(max_files * len(source.val_paths) / listed)) if source.val_paths else 0
    source.train_paths = sorted(rng.choice(source.train_paths, max_files - keep_val, replace=False).tolist())
    source.val_paths = sorted(rng.choice(source.val_paths, keep_val, replace=False).tolist()) if keep_val else []
    return source


def folder_vs_cache(dataset, cache_dir, image_size=256, batch_size=32, batches=20, target=1000, seed=0, log=print,
                    max_files=None):
    """Feed rates of the photo folder `dataset` ('folder:PATH' or 'coco:PATH') and of its cache in
    `cache_dir` (built there first when absent, and timed), with every host core; per core is the
    rate over the number of cores. With `max_files`, both read a seeded sample of that many photos.
    Returns a dict of figures."""
    source = parse_dataset(dataset, val_fraction=0.05, seed=seed)
    cores = host_cores()
    listed = len(source.train_paths) + len(source.val_paths)
    source = sample_files(source, max_files, seed)
    result = dict(dataset=dataset, image_size=image_size, batch_size=batch_size, host_cores=cores,
                  target_images_per_s=target, files=listed,
                  files_sampled=len(source.train_paths) + len(source.val_paths))
    start = time.perf_counter()
    cached = cached_source(source, cache_dir, image_size=image_size, val_fraction=0.05, seed=seed, log=log)
    result["cache_build_or_open_seconds"] = time.perf_counter() - start
    result["cache_images"] = cached.cache.count("all")
    result["cache_bytes"] = sum(os.path.getsize(p) for p in cached.cache.shards("all"))
    result["folder"] = _rates(feed_rate(source, image_size, batch_size, batches, seed), cores, target)
    log(f"folder: {result['folder']['images_per_s']:.0f} images/s "
        f"({result['folder']['images_per_s_per_core']:.0f} per core)")
    result["cache"] = _rates(feed_rate(cached, image_size, batch_size, batches, seed), cores, target)
    log(f"cache:  {result['cache']['images_per_s']:.0f} images/s "
        f"({result['cache']['images_per_s_per_core']:.0f} per core)")
    result["cache_over_folder"] = result["cache"]["images_per_s"] / result["folder"]["images_per_s"]
    return result


def format_feed_table(results):
    """One line per size: folder and cache per-core rates, their ratio, and cores for the target."""
    lines = [f"{'size':>5}{'folder/s/core':>15}{'cache/s/core':>14}{'cache/folder':>14}"
             f"{'cores for target: folder':>26}{'cache':>7}"]
    for r in results:
        lines.append(f"{r['image_size']:>5}{r['folder']['images_per_s_per_core']:>15.1f}"
                     f"{r['cache']['images_per_s_per_core']:>14.1f}{r['cache_over_folder']:>14.1f}"
                     f"{r['folder']['cores_for_target']:>26}{r['cache']['cores_for_target']:>7}")
    return "\n".join(lines)
