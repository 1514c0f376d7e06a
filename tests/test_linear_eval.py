"""Linear evaluation on frozen features: it recovers a planted linear signal, is at chance on noise,
chooses its (learning rate, weight decay) on the validation split, is deterministic, and rejects bad
input in one sentence."""

import json
import math

import numpy as np
import pytest

from transfer import linear_eval

CLASSES = 10
GRID = ((1e-3, 1e-4), (1e-2, 1e-4), (1e-2, 1e-2))  # small, for speed; the default has 6 points
FAST = dict(epochs=4, batch_size=64)


def _planted(n, separation=5.0, dim=64, classes=CLASSES, seed=0, directions_seed=99):
    """Integer labels and features where class c sits at `separation` along its own random unit
    direction (the same directions for every split), plus unit Gaussian noise."""
    directions = np.random.default_rng(directions_seed).normal(size=(classes, dim))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    return rng.normal(size=(n, dim)) + separation * directions[y], y


def _splits(separation=5.0, sizes=(600, 300, 300)):
    (x_train, y_train), (x_val, y_val), (x_test, y_test) = (
        _planted(n, separation, seed=seed) for seed, n in enumerate(sizes))
    return x_train, y_train, x_val, y_val, x_test, y_test


def test_a_planted_linear_signal_is_recovered_at_any_scale_and_in_float16():
    x_train, y_train, x_val, y_val, x_test, y_test = _splits()
    scaled = [(100.0 * x + 7.0).astype(np.float16) for x in (x_train, x_val, x_test)]  # standardization undoes it
    result = linear_eval.linear_top1(scaled[0], y_train, scaled[1], y_val, scaled[2], y_test, CLASSES,
                                     epochs=4, batch_size=64)
    assert result["top1"] > 0.9 and result["val_top1"] > 0.9
    assert 1.0 >= result["top5"] >= result["top1"]
    assert len(result["grid"]) == len(linear_eval.GRID)  # the default grid
    json.dumps(result)


def test_noise_features_with_random_labels_score_chance_on_the_test_split():
    rng = np.random.default_rng(3)
    n_test = 2000
    x_train, x_val, x_test = rng.normal(size=(600, 64)), rng.normal(size=(300, 64)), rng.normal(size=(n_test, 64))
    y_train, y_val, y_test = (rng.integers(0, CLASSES, len(x)) for x in (x_train, x_val, x_test))
    result = linear_eval.linear_top1(x_train, y_train, x_val, y_val, x_test, y_test, CLASSES, grid=GRID, **FAST)
    chance = 1.0 / CLASSES
    # the test labels are independent of everything the classifier saw: its hits are Binomial(n, 1/C)
    assert abs(result["top1"] - chance) < 3.0 * math.sqrt(chance * (1.0 - chance) / n_test)


def test_the_search_reports_every_grid_point_and_keeps_the_best_on_validation():
    x_train, y_train, x_val, y_val, x_test, y_test = _splits(separation=1.5)  # hard enough for the points to differ
    result = linear_eval.linear_top1(x_train, y_train, x_val, y_val, x_test, y_test, CLASSES, grid=GRID, **FAST)
    assert [(p["lr"], p["weight_decay"]) for p in result["grid"]] == list(GRID)
    scores = [p["val_top1"] for p in result["grid"]]
    best = scores.index(max(scores))  # the first of the best, in grid order
    assert result["grid_index"] == best and (result["lr"], result["weight_decay"]) == GRID[best]
    assert result["val_top1"] == scores[best]

    # each reported score is what that pair's classifier gets on the (train-standardized) val split
    train, val, test = linear_eval.standardize(x_train, x_val, x_test)
    model = linear_eval.fit_linear(train, y_train, CLASSES, *GRID[best], seed=0, **FAST)
    assert linear_eval.top_k_accuracy(y_val, linear_eval.logits(model, val), 1) == scores[best]
    assert linear_eval.top_k_accuracy(y_test, linear_eval.logits(model, test), 1) == result["top1"]


def test_ties_go_to_the_first_pair_in_grid_order():
    x_train, y_train, x_val, y_val, x_test, y_test = _splits()
    result = linear_eval.linear_top1(x_train, y_train, x_val, y_val, x_test, y_test, CLASSES,
                                     grid=(GRID[0], GRID[0]), **FAST)
    assert result["grid"][0] == result["grid"][1] and result["grid_index"] == 0


def test_the_same_seed_gives_the_same_result_and_another_seed_another_batch_order():
    x_train, y_train, x_val, y_val, x_test, y_test = _splits(separation=1.5)
    run = lambda seed: linear_eval.linear_top1(x_train, y_train, x_val, y_val, x_test, y_test, CLASSES,  # noqa: E731
                                               grid=GRID[:2], seed=seed, **FAST)
    assert run(0) == run(0)
    kernel = lambda seed: linear_eval.fit_linear(  # noqa: E731
        x_train, y_train, CLASSES, seed=seed, **FAST).get_weights()[0]
    np.testing.assert_array_equal(kernel(0), kernel(0))
    assert not np.array_equal(kernel(0), kernel(1))


def test_standardization_uses_the_training_statistics_for_every_split():
    rng = np.random.default_rng(5)
    x_train = rng.normal(3.0, 2.0, size=(500, 6))
    x_train[:, 0] = 4.0  # a constant (dead) dimension
    train, other = linear_eval.standardize(x_train, x_train[:10] + 1.0)
    np.testing.assert_allclose(train[:, 1:].mean(axis=0), 0.0, atol=1e-6)
    np.testing.assert_allclose(train[:, 1:].std(axis=0), 1.0, rtol=1e-5)
    assert (train[:, 0] == 0).all() and train.dtype == np.float32
    shift = np.concatenate([[1.0], 1.0 / x_train[:, 1:].std(axis=0)])  # +1 moves each value by 1 / train std
    np.testing.assert_allclose(other - train[:10], np.broadcast_to(shift, (10, 6)), rtol=1e-4)
    assert linear_eval.standardize(x_train.astype(np.float16))[0].dtype == np.float16


def _bad(**changes):
    x_train, y_train, x_val, y_val, x_test, y_test = _splits(sizes=(40, 20, 20))
    arguments = dict(x_train=x_train, y_train=y_train, x_val=x_val, y_val=y_val, x_test=x_test, y_test=y_test,
                     num_classes=CLASSES, grid=GRID[:1], epochs=1, batch_size=16)
    arguments.update(changes)
    return arguments


@pytest.mark.parametrize("changes, message", [
    (dict(y_train=np.zeros(39, np.int64)), r"training labels must be 40 class ids.*received shape \(39,\)"),
    (dict(x_val=np.zeros((20, 63))), r"validation features must have the training set's 64 values, received 63"),
    (dict(y_test=np.full(20, CLASSES)), r"test labels must lie in \[0, 10\), received 10\.\.10"),
    (dict(y_val=-np.ones(20, np.int64)), r"validation labels must lie in \[0, 10\), received -1\.\.-1"),
    (dict(y_train=np.zeros(40)), r"training labels must be integer class ids, received dtype float64"),
    (dict(grid=()), r"the grid needs at least one .* pair, received \(\)"),
    (dict(grid=((1e-3,),)), r"every grid point must be a \(learning rate, weight decay\) pair"),
    (dict(grid=((0.0, 1e-4),)), r"learning rate must be > 0 .* received \(0\.0, 0\.0001\)"),
    (dict(x_train=np.zeros((0, 64)), y_train=np.zeros(0, np.int64)), r"training features must be a non-empty"),
    (dict(epochs=0), r"epochs must be at least 1, received 0"),
])
def test_bad_input_is_one_sentence_that_quotes_what_was_received(changes, message):
    with pytest.raises(ValueError, match=message) as error:
        linear_eval.linear_top1(**_bad(**changes))
    text = str(error.value)
    assert text.endswith(".") and text.count(". ") == 0 and "received" in text


def test_the_grid_trained_side_by_side_equals_one_keras_dense_fit_per_pair():
    import keras

    x_train, y_train, *_ = _splits(separation=1.5, sizes=(200, 1, 1))
    x_train = linear_eval.standardize(x_train)[0]
    models = linear_eval.fit_linear_grid(x_train, y_train, CLASSES, GRID, epochs=2, batch_size=32, seed=4)
    assert len(models) == len(GRID)
    for (lr, weight_decay), model in zip(GRID, models):
        # The reference: Keras' own Dense, L2 regularizer, Adam, CosineDecay and fit, on the same batches.
        batches = linear_eval._Batches(x_train, y_train, 32, 2, seed=4)
        inputs = keras.Input((x_train.shape[1],))
        dense = keras.layers.Dense(CLASSES, kernel_initializer="zeros",
                                   kernel_regularizer=keras.regularizers.L2(weight_decay))
        reference = keras.Model(inputs, dense(inputs))
        reference.compile(optimizer=keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(lr, len(batches))),
                          loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        reference.fit(batches, epochs=1, shuffle=False, verbose=0)
        kernel, bias = model.get_layer("linear_head").get_weights()
        np.testing.assert_allclose(kernel, dense.get_weights()[0], atol=1e-6)
        np.testing.assert_allclose(bias, dense.get_weights()[1], atol=1e-6)
        assert np.abs(kernel).max() > 1e-3  # it learned something to compare
    alone = linear_eval.fit_linear(x_train, y_train, CLASSES, *GRID[1], epochs=2, batch_size=32, seed=4)
    np.testing.assert_allclose(alone.get_layer("linear_head").get_weights()[0],
                               models[1].get_layer("linear_head").get_weights()[0], atol=1e-7)
