"""Throughput of the colorizer on this machine: input pipeline, fused GAN train step, FLOPs counted
from the train step's graph against a measured matmul peak, host memory, and a reference loop
written the way research code usually is (per-image NumPy/scikit-image colour conversion in a
Python generator, three `train_on_batch` calls per step)."""

import dataclasses
import os
import resource
import time

import keras
import numpy as np
import tensorflow as tf

from cgan_colorization.engine.config import TrainConfig
from cgan_colorization.engine.training import build_colorizer
from cgan_colorization.pretexts.registry import PAPER_PRETEXT, PRETEXTS
from data.pipeline import fit_to_size, parse_dataset, pretext_dataset, to_lab_pair

_CONV_OPS = ("Conv2D", "Conv2DBackpropInput", "Conv2DBackpropFilter")
_MATMUL_OPS = ("MatMul", "BatchMatMulV2", "BatchMatMulV3")
REFERENCE_OBJECTIVE = PRETEXTS[PAPER_PRETEXT].objective  # the reference loop is pix2pix's, the paper's pretext


def _dims(tensor):
    return tensor.shape.as_list() if tensor.shape.rank is not None else None


def live_ops(graph):
    """The ops of a traced function graph that its outputs or side effects (variable updates, the
    graph's control outputs) depend on. A gradient tape also traces gradients nobody asks for (e.g.
    of D's weights on G's tape); TensorFlow prunes those before running, so they are not counted."""
    stack = [t.op for t in graph.outputs] + list(getattr(graph, "control_outputs", []))
    seen = set()
    while stack:
        op = stack.pop()
        if op.name in seen:
            continue
        seen.add(op.name)
        stack.extend(t.op for t in op.inputs)
        stack.extend(op.control_inputs)
    return [op for op in graph.get_operations() if op.name in seen]


def graph_flops(graph):
    """Multiply-add FLOPs (2 per MAC) of every live convolution (forward, transposed and both
    gradients) and matrix product in `graph`, from the ops' static shapes. Element-wise ops are not
    counted."""
    total = 0
    for op in live_ops(graph):
        if op.type in _CONV_OPS:
            # Each of the three ops costs one multiply-add per (output-gradient element x filter tap).
            if op.type == "Conv2D":
                out, filt = _dims(op.outputs[0]), _dims(op.inputs[1])
            elif op.type == "Conv2DBackpropInput":
                out, filt = _dims(op.inputs[2]), _dims(op.inputs[1])
            else:  # Conv2DBackpropFilter: (input, filter_sizes, out_backprop) -> filter gradient
                out, filt = _dims(op.inputs[2]), _dims(op.outputs[0])
            if out and filt and None not in out and None not in filt:
                kh, kw, cin, _ = filt
                total += 2 * int(np.prod(out)) * kh * kw * cin
        elif op.type in _MATMUL_OPS:
            a, out = _dims(op.inputs[0]), _dims(op.outputs[0])
            transpose = op.get_attr("transpose_a") if op.type == "MatMul" else op.get_attr("adj_x")
            if a and out and None not in a and None not in out:
                k = a[-2] if transpose else a[-1]
                total += 2 * int(np.prod(out)) * k
    return total


def train_step_flops(gan, batch_size, image_size):
    """FLOPs of one fused train step per image, counted from its traced graph."""
    spec = (tf.TensorSpec([batch_size, image_size, image_size, 1]),
            tf.TensorSpec([batch_size, image_size, image_size, 2]))
    concrete = tf.function(lambda gray, ab: gan.train_step((gray, ab))).get_concrete_function(*spec)
    return graph_flops(concrete.graph) / batch_size


def reference_step_flops(generator, discriminator, batch_size, image_size, l1_weight=100.0):
    """FLOPs per image of one step of the reference loop, counted from graphs that do what its four
    Keras calls do: G forward (`predict_on_batch`), D forward + gradients on the real pair, the same
    on the fake pair, then G and D forward and G's gradients through the frozen D (the combined
    model). On compute-bound hardware, this over `train_step_flops` bounds ours / reference."""
    bce = keras.losses.BinaryCrossentropy(from_logits=True)
    gray = tf.TensorSpec([batch_size, image_size, image_size, 1])
    ab = tf.TensorSpec([batch_size, image_size, image_size, 2])

    def d_step(g, colour):
        with tf.GradientTape() as tape:
            logits = discriminator([g, colour], training=True)
            loss = bce(tf.ones_like(logits), logits)
        return tape.gradient(loss, discriminator.trainable_variables)

    def combined_step(g, target):
        with tf.GradientTape() as tape:
            fake = generator(g, training=True)
            logits = discriminator([g, fake], training=False)
            loss = bce(tf.ones_like(logits), logits) + l1_weight * tf.reduce_mean(tf.abs(target - fake))
        return tape.gradient(loss, generator.trainable_variables)

    total = 0
    for fn, specs in ((lambda g: generator(g, training=False), (gray,)), (d_step, (gray, ab)),
                      (d_step, (gray, ab)), (combined_step, (gray, ab))):
        total += graph_flops(tf.function(fn).get_concrete_function(*specs).graph)
    return total / batch_size


def matmul_peak(dtype="float32", n=2048, repeats=10):
    """The best FLOP/s of an n x n matrix product on the default device, the machine's own peak."""
    a = tf.random.uniform((n, n), dtype=tf.float32)
    a = tf.cast(a, dtype)
    b = tf.identity(a)
    product = tf.function(lambda x, y: tf.reduce_sum(tf.cast(tf.matmul(x, y)[:1, :1], tf.float32)))
    product(a, b).numpy()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        product(a, b).numpy()
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best


def pipeline_rate(dataset, batches):
    """Images per second that the input pipeline alone delivers."""
    iterator = iter(dataset)
    next(iterator)
    count, start = 0, time.perf_counter()
    for _ in range(batches):
        gray, _ = next(iterator)
        count += int(gray.shape[0])
    return count / (time.perf_counter() - start)


class _StepClock(keras.callbacks.Callback):
    """Times the steps after the first `warmup` ones (tracing and iterator start-up excluded)."""

    def __init__(self, warmup):
        super().__init__()
        self.warmup, self.start, self.end, self.seen = warmup, None, None, 0

    def on_train_batch_end(self, batch, logs=None):
        self.seen += 1
        if self.seen == self.warmup:
            self.start = time.perf_counter()
        self.end = time.perf_counter()


def train_rate(gan, dataset, steps, warmup=3):
    """Images per second of `fit` on `dataset`, timed after `warmup` steps."""
    clock = _StepClock(warmup)
    gan.fit(dataset, steps_per_epoch=warmup + steps, epochs=1, verbose=0, shuffle=False, callbacks=[clock])
    batch = int(next(iter(dataset))[0].shape[0])
    return steps * batch / (clock.end - clock.start)


def _reference_batches(images, batch_size, image_size):
    """Research-code style: per-image resize and scikit-image Lab conversion in a Python loop."""
    from skimage.color import rgb2lab
    from skimage.transform import resize

    i = 0
    while True:
        gray, ab = [], []
        for _ in range(batch_size):
            rgb = resize(images[i % len(images)], (image_size, image_size), anti_aliasing=True)
            lab = rgb2lab(rgb).astype(np.float32)
            gray.append(lab[..., :1] / 50.0 - 1.0)
            ab.append(lab[..., 1:] / 128.0)
            i += 1
        yield np.stack(gray), np.stack(ab)


def reference_rate(config, images, steps, warmup=2):
    """Images per second of the usual Keras GAN loop: D on real, D on G's fake, then G through the
    combined model with D frozen (G runs twice per step and D three times)."""
    from cgan_colorization.networks.models import build_discriminator, build_generator

    generator = build_generator(config.image_size, config.base_filters)
    discriminator = build_discriminator(config.image_size, config.base_filters)
    bce = keras.losses.BinaryCrossentropy(from_logits=True)
    discriminator.compile(keras.optimizers.Adam(config.lr, beta_1=config.beta_1), loss=bce, loss_weights=[0.5])
    gray_in = keras.Input((config.image_size, config.image_size, 1))
    fake = generator(gray_in)
    combined = keras.Model(gray_in, [discriminator([gray_in, fake]), fake])
    patch = discriminator.output_shape[1:]
    batches = _reference_batches(images, config.batch_size, config.image_size)
    ones = np.ones((config.batch_size, *patch), np.float32)
    zeros = np.zeros_like(ones)

    def step(first=False):
        gray, ab = next(batches)
        fake_ab = generator.predict_on_batch(gray)
        discriminator.train_on_batch([gray, ab], ones)
        discriminator.train_on_batch([gray, fake_ab], zeros)
        combined.train_on_batch(gray, [ones, ab])

    discriminator.trainable = True
    gray, ab = next(batches)
    discriminator.train_on_batch([gray, ab], ones)  # traced with D trainable
    discriminator.trainable = False
    combined.compile(keras.optimizers.Adam(config.lr, beta_1=config.beta_1), loss=[bce, "mae"],
                     loss_weights=[1.0, config.l1_weight])
    for _ in range(warmup):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * config.batch_size / (time.perf_counter() - start)


def _rgb_images(source, config, count):
    """`count` RGB images (numpy, uint8-like floats in [0, 1]) at their stored size for the reference."""
    if source.kind == "synthetic":
        from data.synthetic import synthetic_dataset

        return [s["image"].numpy() for s in synthetic_dataset(seed=1, image_size=256).take(count)]
    from data.stream import image_file_dataset

    return [x.numpy() for x in image_file_dataset(source.train_paths[:count])]


def peak_rss_mb():
    """Peak resident memory of this process so far, in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def backup_cost(gan):
    """Seconds and bytes of one backup as training writes it (both networks and both optimizers' state,
    after a step so the Adam slots exist), to a temporary folder."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "backup.weights.h5")
        start = time.perf_counter()
        gan.save_weights(path)
        seconds = time.perf_counter() - start
        return {"backup_seconds": seconds, "backup_bytes": os.path.getsize(path)}


def run_benchmark(config, steps=20, pipeline_batches=50, reference_steps=10, reference=True, log=print):
    """All figures for one size and batch, as a dict. The model is the run's pretext (`config.objective`,
    one that reads (L, ab) pairs); the reference loop exists for the GAN only."""
    source = parse_dataset(config.dataset, config.val_fraction, config.seed,
                           max_photos_per_class=config.max_photos_per_class)
    data = pretext_dataset(source, "train", image_size=config.image_size, batch_size=config.batch_size,
                           seed=config.seed)
    gan = build_colorizer(config, train_ds=data)  # Zhang's pretext estimates its ab prior from the data
    discriminator = getattr(gan, "discriminator", None)
    result = dict(objective=config.objective, image_size=config.image_size, batch_size=config.batch_size,
                  base_filters=config.base_filters, dataset=config.dataset,
                  precision=keras.mixed_precision.global_policy().name,
                  jit_compile=config.jit_compile, device=device_name(),
                  generator_params=gan.network.count_params(),
                  discriminator_params=discriminator.count_params() if discriminator is not None else 0)
    result["pipeline_images_per_s"] = pipeline_rate(data, pipeline_batches)
    log(f"pipeline: {result['pipeline_images_per_s']:.1f} images/s")
    # The step alone, on one batch held in memory, and then fed by the real pipeline.
    gray, ab = next(iter(data))
    cached = tf.data.Dataset.from_tensors((gray, ab)).repeat()
    result["train_images_per_s"] = train_rate(gan, cached, steps)
    result["train_images_per_s_with_pipeline"] = train_rate(gan, data, steps)
    log(f"train step: {result['train_images_per_s']:.1f} images/s "
        f"({result['train_images_per_s_with_pipeline']:.1f} with the pipeline)")
    result["pipeline_over_train"] = result["pipeline_images_per_s"] / result["train_images_per_s"]
    result["train_flops_per_image"] = train_step_flops(gan, config.batch_size, config.image_size)
    result["achieved_flops_per_s"] = result["train_flops_per_image"] * result["train_images_per_s"]
    dtype = "float16" if result["precision"] == "mixed_float16" else \
        "bfloat16" if result["precision"] == "mixed_bfloat16" else "float32"
    result["matmul_peak_flops_per_s"] = matmul_peak(dtype, n=4096 if tf.config.list_logical_devices("GPU") else 2048)
    result["fraction_of_matmul_peak"] = result["achieved_flops_per_s"] / result["matmul_peak_flops_per_s"]
    log(f"FLOPs/image {result['train_flops_per_image'] / 1e9:.2f} G; achieved "
        f"{result['achieved_flops_per_s'] / 1e9:.1f} GFLOP/s = {100 * result['fraction_of_matmul_peak']:.0f} % "
        f"of the measured matmul peak ({result['matmul_peak_flops_per_s'] / 1e9:.0f} GFLOP/s)")
    result.update(backup_cost(gan))
    log(f"one backup (both nets, both optimizers): {result['backup_seconds']:.2f} s, "
        f"{result['backup_bytes'] / 2**20:.0f} MiB, the time of "
        f"{result['backup_seconds'] * result['train_images_per_s'] / config.batch_size:.1f} train steps")
    if reference and config.objective == REFERENCE_OBJECTIVE:
        # Both loops read the same 64 decoded RGB images: the reference converts them one by one in
        # Python, ours in a tf.data pipeline (resize + Lab, batched, parallel, prefetched).
        images = _rgb_images(source, config, 64)
        same_input = tf.data.Dataset.from_generator(
            lambda: iter(images), output_signature=tf.TensorSpec([None, None, 3], tf.float32)).cache().repeat()
        same_input = same_input.map(lambda rgb: fit_to_size(rgb, config.image_size),
                                    num_parallel_calls=tf.data.AUTOTUNE)
        same_input = same_input.batch(config.batch_size, drop_remainder=True).map(
            to_lab_pair, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
        result["train_images_per_s_same_input"] = train_rate(gan, same_input, steps)
        result["reference_images_per_s"] = reference_rate(config, images, reference_steps)
        result["ours_over_reference"] = result["train_images_per_s_same_input"] / result["reference_images_per_s"]
        result["reference_flops_per_image"] = reference_step_flops(
            gan.generator, gan.discriminator, config.batch_size, config.image_size, config.l1_weight)
        result["flop_ratio_reference_over_ours"] = result["reference_flops_per_image"] / result["train_flops_per_image"]
        log(f"same 64 images: ours {result['train_images_per_s_same_input']:.1f} images/s, reference loop "
            f"{result['reference_images_per_s']:.1f} images/s; ours / reference = {result['ours_over_reference']:.2f} "
            f"(FLOPs per image: reference / ours = {result['flop_ratio_reference_over_ours']:.2f}, the ceiling "
            "of that ratio where both are compute-bound)")
    result["peak_rss_mb"] = peak_rss_mb()
    return result


def device_name():
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        return tf.config.experimental.get_device_details(gpus[0]).get("device_name", "GPU")
    import platform

    return f"CPU ({platform.processor() or platform.machine()}, {__import__('os').cpu_count()} cores)"


class RssSampler(keras.callbacks.Callback):
    """Records the resident memory (MiB) every `every` steps of a long run."""

    def __init__(self, every=100):
        super().__init__()
        self.every, self.samples, self.step = every, [], 0

    def on_train_batch_end(self, batch, logs=None):
        self.step += 1
        if self.step % self.every == 0:
            with open("/proc/self/statm") as f:
                pages = int(f.read().split()[1])
            self.samples.append((self.step, pages * resource.getpagesize() / 2**20))


def long_run(config, steps, every=100):
    """Trains `steps` steps and returns the RSS samples and their slope in MiB per 1,000 steps
    (fitted after the first quarter, once caches and allocators have settled)."""
    gan = build_colorizer(config)
    source = parse_dataset(config.dataset, config.val_fraction, config.seed,
                           max_photos_per_class=config.max_photos_per_class)
    data = pretext_dataset(source, "train", image_size=config.image_size, batch_size=config.batch_size)
    sampler = RssSampler(max(1, min(every, steps // 10)))
    gan.fit(data, steps_per_epoch=steps, epochs=1, verbose=0, shuffle=False, callbacks=[sampler])
    points = np.array(sampler.samples)
    settled = points[len(points) // 4:]
    slope = float(np.polyfit(settled[:, 0], settled[:, 1], 1)[0] * 1000) if len(settled) > 1 else float("nan")
    return dict(steps=steps, rss_samples=points.tolist(), rss_slope_mb_per_1000_steps=slope,
                rss_first_mb=float(points[0, 1]), rss_last_mb=float(points[-1, 1]))


def benchmark_config(image_size, batch_size, base_filters=None, dataset="synthetic", jit_compile=False,
                     objective=REFERENCE_OBJECTIVE):
    """A TrainConfig for benchmarking: the paper's width (64) unless told otherwise."""
    return dataclasses.replace(TrainConfig(), image_size=image_size, batch_size=batch_size,
                               base_filters=base_filters or 64, dataset=dataset, jit_compile=jit_compile,
                               objective=objective)
