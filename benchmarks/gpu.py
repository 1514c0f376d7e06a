"""The GPU check: in a few minutes on one GPU, how many images per second the paper's GAN train step
reaches at 256 px in float32, mixed_float16 and mixed_bfloat16, with and without XLA, at batch 32
and at the largest batch that fits; what fraction of the GPU's peak that is; and how many host cores
the decoded-image cache needs to feed it. Everything goes into one JSON.

Measurements run in order of importance and each is skipped once the time budget is spent, so the
check always ends in time and says what it left out. `benchmarks/gpu_check.py` is its command line;
`--tiny` runs the same path on a CPU at 32 px.
"""

import dataclasses
import math
import os
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf

from benchmarks.feed import feed_rate, folder_vs_cache, host_cores
from benchmarks.measure import device_name, matmul_peak, train_rate, train_step_flops
from cgan_colorization.engine.config import TrainConfig
from cgan_colorization.pretexts.gan import build as build_gan
from data.cache import open_cache
from data.pipeline import PretextSource

PRECISIONS = ("mixed_bfloat16", "mixed_float16", "float32")  # the most useful figures first
MATMUL_DTYPE = {"float32": "float32", "mixed_float16": "float16", "mixed_bfloat16": "bfloat16"}
# Dense (no sparsity) tensor-core peaks from NVIDIA's data sheets, FLOP/s; float32 runs as TF32 on
# these GPUs (TensorFlow's default). Matched by a substring of the device name, first match wins.
DATASHEET_PEAKS = (
    ("H100 PCIe", {"float32": 378e12, "float16": 756e12, "bfloat16": 756e12}),
    ("H100", {"float32": 494.7e12, "float16": 989.4e12, "bfloat16": 989.4e12}),
    ("H200", {"float32": 494.7e12, "float16": 989.4e12, "bfloat16": 989.4e12}),
    ("A100", {"float32": 156e12, "float16": 312e12, "bfloat16": 312e12}),
)


@dataclasses.dataclass
class CheckConfig:
    """What the check measures; the defaults are the GPU check, `TINY` its CPU rehearsal."""

    image_size: int = 256
    base_filters: int = 64
    batch_size: int = 32
    max_batch: int = 1024  # the largest-batch search doubles from batch_size up to this
    precisions: tuple = PRECISIONS
    xla: tuple = (False, True)
    steps: int = 10  # timed steps per measurement (after 3 untimed ones)
    feed: str = ""  # photo folder for the pipeline part ('' : JPEGs made from synthetic scenes)
    feed_files: int = 2048  # photos of `feed` sampled into the cache (a COCO-sized folder is never read whole)
    synthetic_files: int = 512  # JPEGs made when `feed` is ''
    feed_batches: int = 20
    cache_dir: str = ""  # '' : a temporary folder; a complete cache given alone is read as it is
    target: int = 1000  # images/s the train step and the pipeline should reach
    budget_s: float = 240.0  # no measurement starts that would end after this (judged by the longest of its kind)
    matmul_n: int = 8192


TINY = dict(image_size=32, base_filters=4, batch_size=2, max_batch=8, steps=2, synthetic_files=24, feed_batches=2,
            matmul_n=256)


def datasheet_peak(device):
    """{dtype: FLOP/s} for a GPU named in `DATASHEET_PEAKS`, else None."""
    for name, peaks in DATASHEET_PEAKS:
        if name in device:
            return peaks
    return None


def synthetic_jpegs(folder, count, size=(360, 480), seed=0):
    """Writes `count` JPEGs of the embedded synthetic scenes at `size` (COCO-like 480 x 360), so the
    pipeline part runs where no photos are at hand. Returns the folder."""
    from data.synthetic import synthetic_dataset

    os.makedirs(folder, exist_ok=True)
    scenes = synthetic_dataset(seed=seed, image_size=max(size))
    for i, scene in enumerate(scenes.take(count)):
        rgb = tf.image.convert_image_dtype(scene["image"][: size[0], : size[1]], tf.uint8, saturate=True)
        tf.io.write_file(os.path.join(folder, f"scene_{i:05d}.jpg"), tf.io.encode_jpeg(rgb, quality=90))
    return folder


class _Budget:
    """The seconds left, and the longest measurement of each kind so far (with or without XLA): one
    that would not end in the time left does not start."""

    def __init__(self, seconds):
        self.start, self.seconds, self.longest = time.perf_counter(), seconds, {}

    def left(self):
        return self.seconds - (time.perf_counter() - self.start)

    def allows(self, kind):
        return self.left() > self.longest.get(kind, 0.0)

    def spent(self, kind, seconds):
        self.longest[kind] = max(self.longest.get(kind, 0.0), seconds)


def _step_rate(check, precision, xla, batch, flops_per_image, peaks, datasheet):
    """One measurement: images/s of the fused train step on a batch held in device memory."""
    keras.mixed_precision.set_global_policy(precision)
    config = dataclasses.replace(TrainConfig(), image_size=check.image_size, base_filters=check.base_filters,
                                 batch_size=batch, jit_compile=xla)
    gan = build_gan(config)
    rng = np.random.default_rng(0)
    gray = tf.constant(rng.uniform(-1, 1, (batch, check.image_size, check.image_size, 1)), tf.float32)
    ab = tf.constant(rng.uniform(-0.5, 0.5, (batch, check.image_size, check.image_size, 2)), tf.float32)
    data = tf.data.Dataset.from_tensors((gray, ab)).repeat()
    gpu = tf.config.list_logical_devices("GPU")
    if gpu:
        tf.config.experimental.reset_memory_stats(gpu[0].name)
    rate = train_rate(gan, data, check.steps)
    dtype = MATMUL_DTYPE[precision]
    achieved = rate * flops_per_image if flops_per_image else None
    return dict(images_per_s=rate, achieved_flops_per_s=achieved,
                fraction_of_measured_peak=achieved / peaks[dtype] if achieved and peaks.get(dtype) else None,
                fraction_of_datasheet_peak=achieved / datasheet[dtype] if achieved and datasheet else None,
                peak_memory_bytes=tf.config.experimental.get_memory_info(gpu[0].name)["peak"] if gpu else None)


def gpu_memory_limit():
    """Bytes of GPU memory TensorFlow's allocator may use, or None without a GPU."""
    from tensorflow.python.client import device_lib

    limits = [d.memory_limit for d in device_lib.list_local_devices() if d.device_type == "GPU"]
    return limits[0] if limits else None


def first_guess(batch, peak_bytes, limit_bytes, max_batch, headroom=0.85):
    """The largest power-of-two multiple of `batch` whose memory, scaled from the peak of a run at
    `batch` (which overstates it: the weights do not grow with the batch), stays within `headroom`
    of the limit; `batch` itself when nothing is known."""
    if not peak_bytes or not limit_bytes:
        return batch
    guess = batch
    while guess * 2 <= max_batch and peak_bytes * guess * 2 / batch <= headroom * limit_bytes:
        guess *= 2
    return guess


def _measure(runs, budget, log, label, fn):
    """Runs `fn()` unless the budget is spent; records its figures, an out-of-memory or the skip."""
    entry = dict(label)
    kind = label.get("xla")
    if not budget.allows(kind):
        entry["skipped"] = "time budget spent"
    else:
        start = time.perf_counter()
        try:
            entry.update(fn())
        except tf.errors.ResourceExhaustedError:
            entry["out_of_memory"] = True
        except Exception as error:  # noqa: BLE001 - one failed measurement is recorded; the others still run
            entry["error"] = f"{type(error).__name__}: {str(error).strip().splitlines()[0][:300] if str(error) else ''}"
        entry["seconds"] = round(time.perf_counter() - start, 1)
        budget.spent(kind, entry["seconds"])
    runs.append(entry)
    figures = f"{entry['images_per_s']:.1f} images/s" if "images_per_s" in entry else \
        ("out of memory" if entry.get("out_of_memory") else entry.get("skipped") or entry.get("error"))
    log(f"{label}: {figures}")
    keras.backend.clear_session()
    return entry


def _phase(result, save, name, fn, default=None):
    """Runs one part of the check outside the timed steps; a failure is recorded (and saved) instead of
    ending the check, and `default` stands for its figures."""
    try:
        return fn()
    except Exception as error:  # noqa: BLE001 - every figure taken so far is kept; the rest still run
        result["failures"].append({"part": name, "error": f"{type(error).__name__}: {str(error).strip()[:300]}"})
        return default
    finally:
        save(result)


def run_check(check, log=print, save=lambda result: None):
    """Every figure of the check, as a dict ready for JSON; `save(result)` is called after every
    measurement and every part, so a failure or a kill loses nothing already measured. Order: the
    train step at the first batch in every precision (bfloat16 and float16 first), then with XLA, then
    the input pipeline, then the largest batch that fits, then XLA at that batch."""
    budget = _Budget(check.budget_s)
    device = device_name()
    gpus = tf.config.list_physical_devices("GPU")
    result = dict(device=device, gpu=bool(gpus), check=dataclasses.asdict(check), runs=[], failures=[],
                  finished=False)
    peaks = _phase(result, save, "matmul peak", lambda: {
        dtype: matmul_peak(dtype, n=check.matmul_n) for dtype in sorted(set(MATMUL_DTYPE.values()))}, {})
    datasheet = datasheet_peak(device) if gpus else None
    result.update(measured_matmul_peak_flops_per_s=peaks, datasheet_peak_flops_per_s=datasheet)
    log(f"{device}: matmul peak " + ", ".join(f"{k} {v / 1e12:.1f} TFLOP/s" for k, v in peaks.items()))
    keras.mixed_precision.set_global_policy("float32")
    config = dataclasses.replace(TrainConfig(), image_size=check.image_size, base_filters=check.base_filters)
    flops = _phase(result, save, "FLOP count",
                   lambda: train_step_flops(build_gan(config), check.batch_size, check.image_size))
    result["train_flops_per_image"] = flops
    keras.backend.clear_session()
    runs = result["runs"]

    def step(precision, xla, batch):
        label = dict(precision=precision, xla=xla, batch=batch)
        entry = _measure(runs, budget, log, label,
                         lambda: _step_rate(check, precision, xla, batch, flops, peaks, datasheet))
        save(result)
        return entry

    first = {}
    for precision in check.precisions:  # 1. batch 32 without XLA (quick to build), every precision
        first[precision] = step(precision, False, check.batch_size) if False in check.xla else {}
    if True in check.xla:  # 2. batch 32 with XLA (compiling takes longer)
        for precision in check.precisions:
            step(precision, True, check.batch_size)
    result["feed"] = _phase(result, save, "input pipeline", lambda: _feed(check, budget, log),
                            {"error": "see failures"})  # 3. the pipeline from the cache, every host core
    result["gpu_memory_limit_bytes"] = limit = gpu_memory_limit() if gpus else None
    largest = {}
    for precision in check.precisions:  # 4. the largest batch that fits
        largest[precision] = _largest_batch(check, step, precision, first[precision].get("peak_memory_bytes"),
                                            limit, budget)
        if largest[precision] and largest[precision] > check.batch_size and True in check.xla:  # 5. ... with XLA
            step(precision, True, largest[precision])
    result["largest_batch"] = largest
    done = [r for r in runs if "images_per_s" in r]
    best = max(done, key=lambda r: r["images_per_s"]) if done else None
    result["best"] = best
    result["target_images_per_s"] = check.target
    result["train_step_meets_target"] = bool(best and best["images_per_s"] >= check.target)
    if best and "cache" in result["feed"]:
        per_core = result["feed"]["cache"]["images_per_s_per_core"]
        result["feed"]["cores_to_feed_best_step"] = math.ceil(best["images_per_s"] / per_core)
    result["total_seconds"] = round(check.budget_s - budget.left(), 1)
    result["finished"] = True
    save(result)
    return result


def _largest_batch(check, step, precision, peak_bytes, limit_bytes, budget):
    """The largest batch (a power-of-two multiple of the first) that trains in `precision` without
    XLA: on a GPU, first the guess from the memory of the first run, halved until it fits, then
    doubled while it does; on a CPU, doubled up to `max_batch`. None when the budget ran out first."""
    fits, batch = check.batch_size, first_guess(check.batch_size, peak_bytes, limit_bytes, check.max_batch)
    while batch > fits and budget.left() > 0:
        entry = step(precision, False, batch)
        if "images_per_s" in entry:
            fits = batch
            break
        if not entry.get("out_of_memory"):
            return None if "skipped" in entry else fits
        batch //= 2
    while fits * 2 <= check.max_batch and budget.left() > 0:
        entry = step(precision, False, fits * 2)
        if "images_per_s" not in entry:
            break
        fits *= 2
    return fits


def _feed(check, budget, log):
    if budget.left() <= 0:
        return {"skipped": "time budget spent"}
    if check.cache_dir and not check.feed:  # a cache given alone: its rate, no folder to compare with
        cache = open_cache(check.cache_dir)
        rate = feed_rate(PretextSource(cache.manifest["source"], "cache", cache=cache), check.image_size,
                         check.batch_size, check.feed_batches, 0)
        cores = host_cores()
        return {"cache": {"images_per_s": rate, "images_per_s_per_core": rate / cores,
                          "cores_for_target": math.ceil(check.target / (rate / cores))},
                "cache_images": cache.count("all"), "host_cores": cores, "photos": f"the cache {check.cache_dir}"}
    with tempfile.TemporaryDirectory() as scratch:
        feed = check.feed or "folder:" + synthetic_jpegs(os.path.join(scratch, "jpegs"), check.synthetic_files)
        cache_dir = check.cache_dir or os.path.join(scratch, "cache")
        result = folder_vs_cache(feed, cache_dir, check.image_size, check.batch_size, check.feed_batches,
                                 check.target, log=log, max_files=check.feed_files if check.feed else None)
    result["photos"] = (f"{result['files_sampled']} of the {result['files']} photos given, sampled" if check.feed
                        else f"{check.synthetic_files} JPEGs of synthetic scenes, 480 x 360")
    return result
