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

from cgan_colorization.benchmark import device_name, matmul_peak, train_rate, train_step_flops
from cgan_colorization.config import TrainConfig
from cgan_colorization.feed import folder_vs_cache
from cgan_colorization.gan import build as build_gan

PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
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
    feed_files: int = 512  # JPEGs made when `feed` is ''
    feed_batches: int = 20
    cache_dir: str = ""  # '' : a temporary folder
    target: int = 1000  # images/s the train step and the pipeline should reach
    budget_s: float = 270.0  # no new measurement starts after this
    matmul_n: int = 8192


TINY = dict(image_size=32, base_filters=4, batch_size=2, max_batch=8, steps=2, feed_files=24, feed_batches=2,
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
    def __init__(self, seconds):
        self.start, self.seconds = time.perf_counter(), seconds

    def left(self):
        return self.seconds - (time.perf_counter() - self.start)


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
    rate = train_rate(gan, data, check.steps)
    dtype = MATMUL_DTYPE[precision]
    achieved = rate * flops_per_image
    return dict(images_per_s=rate, achieved_flops_per_s=achieved,
                fraction_of_measured_peak=achieved / peaks[dtype],
                fraction_of_datasheet_peak=achieved / datasheet[dtype] if datasheet else None)


def _measure(runs, budget, log, label, fn):
    """Runs `fn()` unless the budget is spent; records its figures, an out-of-memory or the skip."""
    entry = dict(label)
    if budget.left() <= 0:
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
    runs.append(entry)
    figures = f"{entry['images_per_s']:.1f} images/s" if "images_per_s" in entry else \
        ("out of memory" if entry.get("out_of_memory") else entry.get("skipped") or entry.get("error"))
    log(f"{label}: {figures}")
    keras.backend.clear_session()
    return entry


def run_check(check, log=print):
    """Every figure of the check, as a dict ready for JSON."""
    budget = _Budget(check.budget_s)
    device = device_name()
    gpus = tf.config.list_physical_devices("GPU")
    result = dict(device=device, gpu=bool(gpus), check=dataclasses.asdict(check), runs=[])
    peaks = {dtype: matmul_peak(dtype, n=check.matmul_n) for dtype in sorted(set(MATMUL_DTYPE.values()))}
    datasheet = datasheet_peak(device) if gpus else None
    result.update(measured_matmul_peak_flops_per_s=peaks, datasheet_peak_flops_per_s=datasheet)
    log(f"{device}: matmul peak " + ", ".join(f"{k} {v / 1e12:.1f} TFLOP/s" for k, v in peaks.items()))
    keras.mixed_precision.set_global_policy("float32")
    config = dataclasses.replace(TrainConfig(), image_size=check.image_size, base_filters=check.base_filters)
    flops = train_step_flops(build_gan(config), check.batch_size, check.image_size)
    result["train_flops_per_image"] = flops
    keras.backend.clear_session()
    runs = result["runs"]

    def step(precision, xla, batch):
        label = dict(precision=precision, xla=xla, batch=batch)
        return _measure(runs, budget, log, label,
                        lambda: _step_rate(check, precision, xla, batch, flops, peaks, datasheet))

    for precision in check.precisions:  # 1. batch 32, every precision, with and without XLA
        for xla in check.xla:
            step(precision, xla, check.batch_size)
    result["feed"] = _feed(check, budget, log)  # 2. the pipeline from the cache, every host core
    largest = {}
    for precision in check.precisions:  # 3. the largest batch that fits, doubling, without XLA
        batch, fits = check.batch_size, check.batch_size
        while batch * 2 <= check.max_batch and budget.left() > 0:
            batch *= 2
            entry = step(precision, False, batch)
            if "images_per_s" not in entry:
                break
            fits = batch
        largest[precision] = fits
        if fits > check.batch_size and True in check.xla:  # 4. ... and with XLA
            step(precision, True, fits)
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
    return result


def _feed(check, budget, log):
    if budget.left() <= 0:
        return {"skipped": "time budget spent"}
    with tempfile.TemporaryDirectory() as scratch:
        feed = check.feed or "folder:" + synthetic_jpegs(os.path.join(scratch, "jpegs"), check.feed_files)
        cache_dir = check.cache_dir or os.path.join(scratch, "cache")
        result = folder_vs_cache(feed, cache_dir, check.image_size, check.batch_size, check.feed_batches,
                                 check.target, log=log)
    result["photos"] = "given" if check.feed else f"{check.feed_files} JPEGs of synthetic scenes, 480 x 360"
    return result
