"""kNN evaluation on frozen features: it recovers planted clusters, is at chance on noise, weighs its
votes by exp(cosine / T), reads the bank in blocks without changing the answer, rejects bad input in
one sentence, and its scores reach probes.json and the table of a single-label run."""

import json
import math

import numpy as np
import pytest

from transfer import feature_eval, knn_eval

CLASSES = 10


def _blobs(n, dim=64, classes=CLASSES, spread=1.0, seed=0, directions_seed=99):
    """Integer labels and features where class c is a Gaussian blob around its own random unit
    direction (the same directions for every split), of std `spread` / sqrt(dim) per value."""
    directions = np.random.default_rng(directions_seed).normal(size=(classes, dim))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    return (directions[y] + spread / math.sqrt(dim) * rng.normal(size=(n, dim))).astype(np.float32), y


def test_planted_clusters_are_recovered_at_any_scale_and_in_float16():
    x_bank, y_bank = _blobs(1000, seed=0)
    x_query, y_query = _blobs(500, seed=1)
    result = knn_eval.knn_top1(x_bank, y_bank, x_query, y_query, CLASSES)
    assert result["top1"] > 0.9 and 1.0 >= result["top5"] >= result["top1"]
    assert (result["k"], result["temperature"], result["num_bank"], result["num_query"]) == (20, 0.07, 1000, 500)
    json.dumps(result)
    # each row is L2-normalized first: rescaling rows changes nothing; float16 changes little
    scales = np.random.default_rng(2).uniform(0.1, 100.0, size=(len(x_bank), 1)).astype(np.float32)
    assert knn_eval.knn_top1(x_bank * scales, y_bank, 7.0 * x_query, y_query, CLASSES)["top1"] == result["top1"]
    half = knn_eval.knn_top1(x_bank.astype(np.float16), y_bank, x_query.astype(np.float16), y_query, CLASSES)
    assert abs(half["top1"] - result["top1"]) < 0.02


def test_noise_features_with_random_labels_score_chance():
    rng = np.random.default_rng(3)
    n_query = 2000
    x_bank, x_query = rng.normal(size=(1000, 32)), rng.normal(size=(n_query, 32))
    y_bank, y_query = rng.integers(0, CLASSES, len(x_bank)), rng.integers(0, CLASSES, n_query)
    result = knn_eval.knn_top1(x_bank, y_bank, x_query, y_query, CLASSES)
    chance = 1.0 / CLASSES
    # the query labels are independent of the bank: the hits are Binomial(n, 1/C)
    assert abs(result["top1"] - chance) < 3.0 * math.sqrt(chance * (1.0 - chance) / n_query)


def test_the_weighted_vote_beats_the_plain_majority_when_the_nearest_neighbour_is_much_nearer():
    # cosines to the query: 0.9 (class 0), 0.5 and 0.5 (class 1)
    x_bank = np.array([[0.9, math.sqrt(1 - 0.81)], [0.5, math.sqrt(0.75)], [0.5, -math.sqrt(0.75)]])
    y_bank, query = np.array([0, 1, 1]), np.array([[1.0, 0.0]])
    votes = knn_eval.knn_votes(x_bank, y_bank, query, 2, k=3, temperature=0.07)
    # exp(s / T) up to the factor exp(-0.9 / T): class 0 gets 1, class 1 gets 2 exp(-0.4 / 0.07) ~ 0.0066
    np.testing.assert_allclose(votes, [[1.0, 2.0 * math.exp(-0.4 / 0.07)]], rtol=1e-5)
    assert knn_eval.knn_top1(x_bank, y_bank, query, [0], 2, k=3, temperature=0.07)["top1"] == 1.0
    # a high temperature weighs the three alike: the plain majority, class 1, wins
    assert knn_eval.knn_top1(x_bank, y_bank, query, [1], 2, k=3, temperature=100.0)["top1"] == 1.0
    # and no temperature is too small for the weights (exp(0.9 / 0.001) would overflow)
    assert np.isfinite(knn_eval.knn_votes(x_bank, y_bank, query, 2, k=3, temperature=1e-3)).all()


def test_reading_the_bank_in_blocks_gives_the_votes_of_one_full_search(monkeypatch):
    x_bank, y_bank = _blobs(53, dim=8, classes=4, spread=3.0, seed=4)
    x_query, _ = _blobs(17, dim=8, classes=4, spread=3.0, seed=5)
    normalize = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)  # noqa: E731
    cosines = normalize(x_query.astype(np.float64)) @ normalize(x_bank.astype(np.float64)).T
    nearest = np.argsort(-cosines, axis=1, kind="stable")[:, :6]
    expected = np.zeros((17, 4))
    for row, index in enumerate(nearest):
        for j in index:
            expected[row, y_bank[j]] += np.exp((cosines[row, j] - cosines[row, index[0]]) / 0.5)
    monkeypatch.setattr(knn_eval, "_BANK_BLOCK", 5)  # blocks of 5 (the last of 3) and k > a block
    np.testing.assert_allclose(knn_eval.knn_votes(x_bank, y_bank, x_query, 4, k=6, temperature=0.5, batch_size=4),
                               expected, rtol=1e-4, atol=1e-6)


def _arguments(**changes):
    x_bank, y_bank = _blobs(30, dim=8, seed=6)
    x_query, y_query = _blobs(12, dim=8, seed=7)
    arguments = dict(x_bank=x_bank, y_bank=y_bank, x_query=x_query, y_query=y_query, num_classes=CLASSES, k=5)
    arguments.update(changes)
    return arguments


@pytest.mark.parametrize("changes, message", [
    (dict(x_query=np.zeros((12, 7))), r"query features must have the training set's 8 values, received 7"),
    (dict(x_bank=np.zeros((0, 8)), y_bank=np.zeros(0, np.int64)), r"bank features must be a non-empty .* \(0, 8\)"),
    (dict(y_bank=np.zeros(29, np.int64)), r"bank labels must be 30 class ids.*received shape \(29,\)"),
    (dict(y_query=np.full(12, CLASSES)), r"query labels must lie in \[0, 10\), received 10\.\.10"),
    (dict(y_bank=-np.ones(30, np.int64)), r"bank labels must lie in \[0, 10\), received -1\.\.-1"),
    (dict(y_query=np.zeros(12)), r"query labels must be integer class ids, received dtype float64"),
    (dict(k=31), r"k must be at most the bank's 30 images, received 31"),
    (dict(k=0), r"k must be a positive integer, received 0"),
    (dict(k=2.5), r"k must be a positive integer, received 2\.5"),
    (dict(temperature=0.0), r"the temperature must be a positive number, received 0\.0"),
    (dict(temperature=float("inf")), r"the temperature must be a positive number, received inf"),
    (dict(batch_size=0), r"batch_size must be at least 1, received 0"),
    (dict(num_classes=1), r"num_classes must be at least 2, received 1"),
    (dict(x_query=np.full((12, 8), np.nan)), r"query features must be finite, received 12 rows with NaN or inf"),
])
def test_bad_input_is_one_sentence_that_quotes_what_was_received(changes, message):
    with pytest.raises(ValueError, match=message) as error:
        knn_eval.knn_top1(**_arguments(**changes))
    text = str(error.value)
    assert text.endswith(".") and text.count(". ") == 0 and "received" in text


def test_a_single_label_run_writes_knn_top1_per_level_and_a_knn_table(tmp_path):
    from tests.test_tinyimagenet import make_tiny_imagenet
    from transfer.config import ProbeConfig

    config = ProbeConfig(dataset=f"tinyimagenet:{make_tiny_imagenet(tmp_path)}", out=str(tmp_path / "probes"),
                         train_size=0, test_size=0, batch_size=8, knn_k=500, knn_temperature=0.1)
    lines = []
    result = feature_eval.run_probes(config, log=lines.append)
    data = json.loads((tmp_path / "probes" / "probes.json").read_text())
    outcome = data["inits"]["random"][0]
    # k is capped at the bank: the 12 training images (val stays out of it)
    assert outcome["knn"] == {"k": 12, "temperature": 0.1, "bank": "train"} and outcome["num_train"] == 12
    assert data["config"]["knn_k"] == 500 and any("--knn-k 500 is more than the bank holds" in line for line in lines)
    for level in outcome["levels"].values():  # 3 classes: every label is among the top 5
        assert level["knn_top5"] == 1.0 and outcome["num_test"] == 6
        # Top-1 is a share of the 6 test photos and of the 30 validation photos.
        assert level["knn_top1"] * 6 == pytest.approx(round(level["knn_top1"] * 6))
        assert level["knn_val_top1"] * 30 == pytest.approx(round(level["knn_val_top1"] * 30))
        assert "top1" in level and "val_top1" in level  # the linear probe's scores stay beside
    best = max(outcome["levels"], key=lambda name: outcome["levels"][name]["knn_val_top1"])
    assert outcome["knn_best_level"] == best
    table = feature_eval.format_table(result)
    assert "best level (by CV)" in table and "best level (by val kNN)" in table and "k = 12 most" in table


def test_a_table_of_a_run_without_knn_scores_is_unchanged():
    level = {"top1": 0.5, "top5": 0.9, "val_top1": 0.4}
    outcome = {"levels": {"enc1": level}, "best_level": "enc1", "num_train": 10, "num_test": 5}
    table = feature_eval.format_table({"config": {}, "inits": {"random": [outcome]}})
    assert "| random | 50.00 | enc1 |" in table and "kNN" not in table
