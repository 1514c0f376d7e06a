"""Linear probes on frozen features: they find a planted linear signal at its level, are at chance on
noise, and draw exactly k positives per class in low-shot."""

import json

import numpy as np
import pytest

from transfer import probes
from tests.conftest import run_script
from tests.figures import series_colours


def _planted(n, classes=3, dim=64, seed=0):
    """Labels, a noise level, and a level where each class moves its own direction by +4."""
    rng = np.random.default_rng(seed)
    y = (rng.uniform(size=(n, classes)) < 0.35).astype(np.int64)
    noise = rng.normal(size=(n, dim))
    signal = rng.normal(size=(n, dim))
    signal[:, :classes] += 4.0 * y
    normalize = lambda x: (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)  # noqa: E731
    return y, normalize(noise), normalize(signal)


def test_the_probe_finds_a_planted_signal_at_its_level_and_is_at_chance_on_noise():
    y_train, noise_train, signal_train = _planted(240, seed=0)
    y_test, noise_test, signal_test = _planted(400, seed=1)
    result = probes.probe({"noise": noise_train, "signal": signal_train}, y_train,
                          {"noise": noise_test, "signal": signal_test}, y_test, shots=(), log=lambda *_: None)
    chance = y_test.mean()  # the AP of scores unrelated to the labels is about the positive rate
    assert result["levels"]["signal"]["mAP"] > 0.9
    assert abs(result["levels"]["noise"]["mAP"] - chance) < 0.1
    assert result["best_level"] == "signal"  # chosen by cross-validation on the training set
    assert all(c in probes.COSTS for c in result["levels"]["signal"]["cost"])


@pytest.mark.parametrize("k", [1, 2, 4])
def test_low_shot_draws_exactly_k_positives_and_c_minus_1_times_k_negatives(k):
    y, _, _ = _planted(300, classes=4)
    for positives, negatives in probes.draw_low_shot(y, k, np.random.default_rng(0)):
        assert len(positives) == k == len(set(positives)) and (y[positives] == 1).any(axis=1).all()
        assert len(negatives) == 3 * k == len(set(negatives))
    for c, (positives, negatives) in enumerate(probes.draw_low_shot(y, k, np.random.default_rng(1))):
        assert (y[positives, c] == 1).all() and (y[negatives, c] == 0).all()


def test_low_shot_improves_with_more_positives_on_a_planted_signal():
    y_train, _, signal_train = _planted(400, seed=2)
    y_test, _, signal_test = _planted(300, seed=3)
    costs = [1.0] * y_train.shape[1]
    curve = probes.low_shot(signal_train, y_train, signal_test, y_test, costs, shots=(1, 32), draws=3)
    assert curve[32]["mean"] > curve[1]["mean"] and len(curve[1]["draws"]) == 3


def test_pooling_brings_every_level_to_about_9k_values():
    import tensorflow as tf

    for shape in ([2, 32, 32, 32], [2, 8, 8, 128], [2, 1, 1, 256]):
        pooled = probes.pool(tf.zeros(shape))
        assert pooled.shape[0] == 2 and pooled.shape[1] <= max(9216 * 1.1, shape[3])


@pytest.mark.slow
def test_evaluate_features_script_writes_the_table_and_both_figures(tmp_path):
    out = tmp_path / "probes"
    result = run_script("evaluate_features.py", "--out", str(out), "--train-size", "48", "--test-size", "32",
                        "--shots", "1,4", "--draws", "2", "--random-seeds", "2", timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    data = json.loads((out / "probes.json").read_text())
    floors = data["inits"]["random"]
    assert len(floors) == 2 and set(floors[0]["levels"]) == {"enc1", "enc2", "enc3", "enc4", "enc5", "bottleneck"}
    assert floors[0]["num_train"] == 48 and floors[0]["num_test"] == 32
    assert series_colours(out / "probes.png") == {0} == series_colours(out / "low_shot.png")  # the floor's line
    assert "| random |" in result.stdout and "±" in result.stdout


def test_the_training_span_leaves_every_decision_value_unchanged():
    rng = np.random.default_rng(4)
    x_train, x_test = rng.normal(size=(40, 300)), rng.normal(size=(25, 300))
    y = (x_train[:, 0] > 0).astype(int)
    small_train, small_test = probes.training_span(x_train, x_test)
    assert small_train.shape == (40, 40) and small_test.shape == (25, 40)
    full = probes._fit_scores(x_train, y, 1.0, x_test)
    np.testing.assert_allclose(probes._fit_scores(small_train, y, 1.0, small_test), full, rtol=1e-3, atol=1e-3)
