import json

import pytest
import tensorflow as tf

from cgan_colorization.benchmark import graph_flops
from tests.test_training import _script


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
        return tape.gradient(loss, [x, kernel])

    assert _flops(train, x_spec) == 3 * forward  # forward + input gradient + kernel gradient
    w = tf.Variable(tf.random.normal([5, 7]))
    assert _flops(lambda a: tf.matmul(a, w), tf.TensorSpec([3, 5])) == 2 * 3 * 5 * 7


@pytest.mark.slow
def test_benchmark_script_reports_every_figure(tmp_path):
    out = tmp_path / "bench.json"
    result = _script("benchmarks/benchmark.py", "--sizes", "32", "--base-filters", "4", "--batch-size", "4",
                     "--steps", "3", "--pipeline-batches", "3", "--reference-steps", "2", "--long-steps", "20",
                     "--json", str(out))
    assert result.returncode == 0, result.stderr[-2000:]
    (row,) = json.load(open(out))
    for key in ("pipeline_images_per_s", "train_images_per_s", "train_images_per_s_with_pipeline",
                "reference_images_per_s", "matmul_peak_flops_per_s", "peak_rss_mb"):
        assert row[key] > 0, key
    # G at 32 px, width 4: a few MFLOPs per image; the count must be of that order, not zero or absurd.
    assert 1e6 < row["train_flops_per_image"] < 1e9
    assert row["fraction_of_matmul_peak"] == pytest.approx(
        row["train_flops_per_image"] * row["train_images_per_s"] / row["matmul_peak_flops_per_s"])
    assert len(row["long_run"]["rss_samples"]) == 10 and "ours / reference" in result.stdout
