import json

import pytest
import tensorflow as tf

from benchmarks.measure import benchmark_config, graph_flops, reference_step_flops, train_step_flops
from tests.conftest import run_script as _script


def _flops(fn, *specs):
    return graph_flops(tf.function(fn).get_concrete_function(*specs).graph)


def test_flop_count_matches_hand_counts_for_convolutions_and_their_gradients():
    x_spec = tf.TensorSpec([2, 16, 16, 3])
    kernel = tf.Variable(tf.random.normal([4, 4, 3, 8]))
    forward = 2 * (2 * 8 * 8 * 8) * (4 * 4 * 3)  # 2 x output elements x taps per output
    conv = lambda x: tf.nn.conv2d(x, kernel, strides=2, padding="SAME")  # noqa: E731
    assert _flops(conv, x_spec) == forward

    def train(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(conv(x))
        return loss, tape.gradient(loss, [x, kernel])

    assert _flops(train, x_spec) == 3 * forward  # forward + input gradient + kernel gradient
    w = tf.Variable(tf.random.normal([5, 7]))
    assert _flops(lambda a: tf.matmul(a, w), tf.TensorSpec([3, 5])) == 2 * 3 * 5 * 7


def test_flop_count_leaves_out_gradients_that_nothing_uses():
    x_spec = tf.TensorSpec([2, 16, 16, 3])
    kernel = tf.Variable(tf.random.normal([4, 4, 3, 8]))
    forward = 2 * (2 * 8 * 8 * 8) * (4 * 4 * 3)

    def traced_but_unused(x):
        with tf.GradientTape() as tape:
            y = tf.nn.conv2d(x, kernel, strides=2, padding="SAME")
        tape.gradient(tf.reduce_sum(y), kernel)  # traced, then dropped: TensorFlow prunes it
        return y

    assert _flops(traced_but_unused, x_spec) == forward


def _fwd(model, *specs):
    return _flops(lambda *x: model(list(x) if len(x) > 1 else x[0], training=False), *specs)


@pytest.mark.slow
def test_fused_step_and_reference_flops_follow_from_the_forward_passes():
    from cgan_colorization.pretexts.gan import build as build_gan

    size, batch = 32, 2
    gan = build_gan(benchmark_config(size, batch, base_filters=4))
    gray, ab = tf.TensorSpec([batch, size, size, 1]), tf.TensorSpec([batch, size, size, 2])
    g, d = _fwd(gan.generator, gray) / batch, _fwd(gan.discriminator, gray, ab) / batch
    ours = train_step_flops(gan, batch, size)
    reference = reference_step_flops(gan.generator, gan.discriminator, batch, size)
    # A backward pass is two forwards (input and weight gradients) less the first layer's input
    # gradient. Ours: G + its backward, D on real and fake + both backwards, and D's input gradient
    # again for G's loss: 3G + 7D less the first layers' input gradients. The reference runs G
    # twice and D three times: exactly one G and one D forward more.
    assert 3 * g + 5 * d < ours <= 3 * g + 7 * d
    assert reference - ours == pytest.approx(g + d, rel=1e-9)


@pytest.mark.slow
def test_benchmark_script_reports_every_figure(tmp_path):
    out = tmp_path / "bench.json"
    result = _script("benchmarks/benchmark.py", "--sizes", "32", "--base-filters", "4", "--batch-size", "4",
                     "--steps", "3", "--pipeline-batches", "3", "--reference-steps", "2", "--long-steps", "20",
                     "--json", str(out))
    assert result.returncode == 0, result.stderr[-2000:]
    (row,) = json.load(open(out))
    for key in ("pipeline_images_per_s", "train_images_per_s", "train_images_per_s_with_pipeline",
                "reference_images_per_s", "matmul_peak_flops_per_s", "peak_rss_mb", "backup_seconds", "backup_bytes"):
        assert row[key] > 0, key
    # G at 32 px, width 4: a few MFLOPs per image; the count must be of that order, not zero or absurd.
    assert 1e6 < row["train_flops_per_image"] < 1e9
    assert row["fraction_of_matmul_peak"] == pytest.approx(
        row["train_flops_per_image"] * row["train_images_per_s"] / row["matmul_peak_flops_per_s"])
    assert 1.0 < row["flop_ratio_reference_over_ours"] < 1.5
    assert len(row["long_run"]["rss_samples"]) == 10 and "ours / reference" in result.stdout


def test_one_backup_holds_both_nets_and_both_optimizers_and_is_timed():
    import numpy as np
    import tensorflow as tf

    from benchmarks.measure import backup_cost, train_rate
    from cgan_colorization.pretexts.gan import build as build_gan

    gan = build_gan(benchmark_config(32, 2, 4, "synthetic", False))
    data = tf.data.Dataset.from_tensors((tf.zeros([2, 32, 32, 1]), tf.zeros([2, 32, 32, 2]))).repeat()
    train_rate(gan, data, 1)  # after a step the Adam slots exist, as in a real backup
    weights = sum(np.asarray(w).nbytes for w in gan.weights)
    trainable = sum(np.asarray(w).nbytes for w in gan.generator.trainable_weights + gan.discriminator.trainable_weights)
    cost = backup_cost(gan)
    assert cost["backup_seconds"] > 0 and cost["backup_bytes"] > weights + 2 * trainable  # weights + Adam m and v


def test_a_runs_timeline_splits_into_start_up_steps_validation_and_callbacks():
    from types import SimpleNamespace

    from benchmarks.precision_run import summarize

    # Two epochs of 6 steps at 2 a call: calls end 0.5 s apart after a 3 s first call; validation 1 s, callbacks 0.5 s.
    timeline = SimpleNamespace(t0=0.0, begin=2.0, epoch_begins=[2.0, 8.5], end=14.5,
                               steps=[[(5.0, 1), (5.5, 3), (6.0, 5)], [(9.5, 1), (10.0, 3), (10.5, 5)]],
                               tests=[[6.0, 8.0], [10.5, 11.5]])
    row = summarize(timeline, total=15.0)
    assert row["steps"] == 12 and row["before_fit_s"] == 2.0 and row["first_step_s"] == 3.0
    assert row["step_ms"] == 250.0  # 0.5 s a call of 2 steps
    assert row["first_validation_s"] == 2.0 and row["later_validation_s"] == 1.0
    assert row["epoch_end_callbacks_s"] == 0.5 and row["after_fit_s"] == 0.5 and row["train_s"] == 6.0


def test_every_benchmarked_pretext_builds_and_zhangs_step_counts_the_most_flops():
    import dataclasses

    from benchmarks.benchmark import BENCHMARKED_OBJECTIVES
    from cgan_colorization.engine.training import build_colorizer
    from data.pipeline import parse_dataset, pretext_dataset

    assert set(BENCHMARKED_OBJECTIVES) == {"gan", "l1", "classification"}
    data = pretext_dataset(parse_dataset("synthetic"), "train", image_size=32, batch_size=2)
    flops = {}
    for objective in BENCHMARKED_OBJECTIVES:
        config = dataclasses.replace(benchmark_config(32, 2, 4, objective=objective), prior_batches=2)
        flops[objective] = train_step_flops(build_colorizer(config, train_ds=data), 2, 32)
    # L1 is the GAN's generator step without a discriminator; Zhang's per-pixel Q-way head outweighs both.
    assert flops["l1"] < flops["gan"] < flops["classification"]
