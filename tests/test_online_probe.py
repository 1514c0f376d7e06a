"""The feature probe during pretraining (`train_colorizer.py --probe`): the multi-label kNN mAP on hand-made
cases, the probe's bank from the train split and queries spread over the validation split (never the test
split), its scores equal to an independent kNN on the same features, its curve in log.csv and TensorBoard
of a real run, `--monitor probe` keeping the epoch with the best score, and bad flags refused in one
sentence."""

import csv
import json
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tests.test_tinyimagenet import make_tiny_imagenet
from transfer import knn_eval, probes
from transfer.feature_eval import LINEAR_POOLED_SIZE
from transfer.online_probe import OnlineProbe, _spread, knn_map, plot_probe_curves


def test_knn_map_of_hand_made_neighbours():
    bank = np.eye(3, dtype=np.float32)
    labels = np.array([[1, 0], [0, 1], [1, 1]], np.float32)
    # each query is one bank photo: with k = 1 its scores are that photo's labels
    assert knn_map(bank, labels, bank[:2], labels[:2], k=1) == pytest.approx(1.0)
    # queries whose nearest photo has the other class: class 0 ranks the query without it first
    query = np.array([[0, 1, 0], [1, 0, 0]], np.float32)
    truth = np.array([[1, 0], [0, 1]], np.float32)
    # class 0: scores (0, 1) for truth (1, 0): AP 1/2; class 1: scores (1, 0) for truth (0, 1): AP 1/2
    assert knn_map(bank, labels, query, truth, k=1) == pytest.approx(0.5)


def test_queries_spread_over_the_validation_split():
    assert list(_spread(10, 4)) == [0, 3, 6, 9]
    assert list(_spread(3, 5)) == [0, 1, 2]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_tiny_imagenet(tmp_path_factory.mktemp("probe"))


def test_the_probe_scores_what_an_independent_knn_scores_on_the_same_photos(tiny):
    import keras

    from data.labelled import classification_dataset, parse_labelled
    from cgan_colorization.networks.models import build_generator

    probe = OnlineProbe(f"tinyimagenet:{tiny}", backbone="unet", image_size=32, base_filters=4, bank=12, queries=2)
    source = parse_labelled(f"tinyimagenet:{tiny}", "classification", verbose=False)
    assert probe.single_label and probe.key == "probe_knn_top1"
    assert len(probe.x_bank) == 12 and len(probe.x_query) == 2
    val = np.concatenate([x.numpy() for x, _ in classification_dataset(source, "val", image_size=32, batch_size=8,
                                                                        training=False)])
    np.testing.assert_array_equal(probe.x_query, val[_spread(len(val), 2)])  # from validation, not the test split
    keras.utils.set_random_seed(3)
    network = build_generator(32, 4)
    scores = probe.scores(network)
    encoder, names = probes.encoder_levels("unet", 32, 4, network)
    assert list(scores) == names
    for j, name in enumerate(names):
        def features(x):
            return probes.pool(encoder(x, training=False)[j], LINEAR_POOLED_SIZE).numpy()

        expected = knn_eval.knn_top1(features(probe.x_bank), probe.y_bank, features(probe.x_query), probe.y_query,
                                     source.num_classes, k=12)["top1"]
        assert scores[name] == pytest.approx(expected)


def _train(tmp_path, *flags):
    return subprocess.run([sys.executable, "train_colorizer.py", "--image-size", "32", "--base-filters", "4",
                           "--steps-per-epoch", "3", "--batch-size", "4", "--val-size", "8",
                           "--out", str(tmp_path / "run"), *flags], capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_a_run_logs_the_probe_each_epoch_and_keeps_the_best_probed_epoch(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import TENSORS, EventAccumulator

    result = _train(tmp_path, "--epochs", "3", "--probe", "synthetic", "--probe-bank", "40", "--probe-queries", "16",
                    "--monitor", "probe")
    assert result.returncode == 0, result.stderr[-2000:]
    rows = list(csv.DictReader(open(tmp_path / "run" / "log.csv")))
    scores = [float(row["probe_knn_map"]) for row in rows]
    assert len(scores) == 3 and all(float(row["probe_seconds"]) > 0 for row in rows)
    best = json.load(open(tmp_path / "run" / "best.json"))
    assert best["epoch"] == 1 + int(np.argmax(scores)) and best["probe_knn_map"] == pytest.approx(max(scores))
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard" / "probe"), size_guidance={TENSORS: 0})
    events.Reload()
    levels = [tag for tag in events.Tags()["tensors"] if tag.startswith("probe_knn_map/")]
    assert {"probe_knn_map/enc1", "probe_knn_map/bottleneck"} <= set(levels)
    per_level = {tag: [float(tf.make_ndarray(e.tensor_proto)) for e in events.Tensors(tag)] for tag in levels}
    assert all(len(values) == 3 for values in per_level.values())
    assert np.allclose(scores, np.max(list(per_level.values()), axis=0))  # log.csv holds the best level's
    series = plot_probe_curves([str(tmp_path / "run")], str(tmp_path / "probe.png"))
    assert series == {"gan (seed 0)": ([3, 6, 9], pytest.approx([100 * v for v in scores]))}


def test_monitor_probe_without_a_probe_is_refused_in_one_sentence(tmp_path):
    result = _train(tmp_path, "--epochs", "1", "--monitor", "probe")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: --monitor probe") and "Traceback" not in result.stderr
    assert not (tmp_path / "run" / "log.csv").exists()
