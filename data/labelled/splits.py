"""Splits of labelled data: the paper's stratified 70/20/10 re-split and its size rule.

**Paper split** (`paper_split`): all labelled images re-split 70/20/10 by iterative
stratification for multi-label data (Sechidis et al. 2011), so each split keeps the class
distribution; deterministic given the seed. Sizes: train = n - ceil(0.3 n), then of the rest
test = ceil(rest / 3) and val = rest - test (the remainder rule of two successive
`train_test_split` calls), which gives 11,987 / 3,425 / 1,713 for the 17,125 VOC trainval
JPEGs. The paper's segmentation split of the 2,913 VOC masks, 2,039 / 577 / 297, is not a
rounding of 70/20/10 (577 / 2913 = 19.8 %), so `PAPER_SPLIT_SIZES` holds it verbatim. Each
split gets at least one item when n >= 3. Segmentation sets are stratified over image-level
classes derived from the masks (`data.labelled.masks.scan_masks`).
"""

import math

import numpy as np

SPLITS = ("train", "val", "test")
PAPER_FRACTIONS = (0.7, 0.2, 0.1)
# The paper's split sizes for its two labelled sets, used verbatim for the default fractions.
PAPER_SPLIT_SIZES = {17125: (11987, 3425, 1713), 2913: (2039, 577, 297)}


def _split_sizes(n, fractions):
    """Split sizes summing to n (see module docs: successive ceil of the held-out parts)."""
    fractions = [float(f) for f in fractions]
    if not fractions or any(not f > 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-6:
        raise ValueError(f"fractions must be positive and sum to 1, received {fractions!r}.")
    if n in PAPER_SPLIT_SIZES and len(fractions) == 3 and np.allclose(fractions, PAPER_FRACTIONS):
        return list(PAPER_SPLIT_SIZES[n])
    sizes, rest = [], n
    for j in range(len(fractions) - 1):
        held = sum(fractions[j + 1:]) / sum(fractions[j:])
        held_out = math.ceil(round(rest * held, 9))
        sizes.append(rest - held_out)
        rest = held_out
    sizes.append(rest)
    k = len(sizes)
    while n >= k and min(sizes) == 0:  # at least one item per split when there are enough
        sizes[int(np.argmax(sizes))] -= 1
        sizes[sizes.index(0)] += 1
    return sizes


def stratified_split(ids, label_matrix, sizes, seed=0):
    """Iterative stratification for multi-label data (Sechidis et al. 2011) with exact sizes.

    Labels are taken rarest first; each example holding the current label goes to the subset
    that still wants the most examples of it (ties: the subset with the most free places, then
    seeded random), among subsets with free places, so the sizes come out exactly. Examples
    with no label fill the remaining places. Then `_refine_by_swaps` polishes the frequent
    labels by swapping examples between subsets (deterministic given the seed).

    Returns:
        A list of lists of ids, one per size, each in the order of `ids`.
    """
    ids = list(ids)
    y = np.asarray(label_matrix) > 0
    n = len(ids)
    if y.ndim != 2 or y.shape[0] != n:
        raise ValueError(f"label_matrix must be [len(ids), C], received shape "
                         f"{np.shape(label_matrix)} for {n} ids.")
    sizes = [int(s) for s in sizes]
    if sum(sizes) != n or min(sizes, default=0) < 0:
        raise ValueError(f"sizes must be >= 0 and sum to {n}, received {sizes!r}.")
    rng = np.random.default_rng(seed)
    capacity = np.array(sizes, np.float64)
    ratios = capacity / max(n, 1)
    wanted = np.outer(y.sum(0), ratios)  # [C, k] examples of each label each subset still wants
    subset = np.full(n, -1)
    unassigned = np.ones(n, bool)

    def place(scores):
        free = np.flatnonzero(capacity > 0)
        best = free[scores[free] == scores[free].max()]
        if len(best) > 1:
            best = best[capacity[best] == capacity[best].max()]
        return int(best[rng.integers(len(best))]) if len(best) > 1 else int(best[0])

    while True:
        remaining = y[unassigned].sum(0)
        if not remaining.any():
            break
        present = np.flatnonzero(remaining)
        rarest = present[remaining[present] == remaining[present].min()]
        label = rarest[rng.integers(len(rarest))]
        rows = np.flatnonzero(unassigned & y[:, label])
        for row in rng.permutation(rows):
            j = place(wanted[label])
            subset[row] = j
            unassigned[row] = False
            capacity[j] -= 1
            wanted[y[row], j] -= 1
    for row in rng.permutation(np.flatnonzero(unassigned)):
        j = place(np.zeros(len(sizes)))
        subset[row] = j
        capacity[j] -= 1
    _refine_by_swaps(y, subset, sizes, rng)
    return [[ids[i] for i in np.flatnonzero(subset == j)] for j in range(len(sizes))]


def _refine_by_swaps(y, subset, sizes, rng, rounds=None, candidates=256):
    """Polishes a split in place by swapping examples between subsets (sizes stay exact).

    The greedy stratifier balances rare labels well but the most frequent ones last, when most
    examples are placed. Each round takes a random example of one subset and the best of up to
    `candidates` random examples of another, and swaps them when that lowers
    sum_j sum_c (count_jc - size_j * p_c)^2 / size_j, the size-weighted squared deviation of each
    subset's class frequencies from the overall ones.
    """
    k, n = len(sizes), len(subset)
    if k < 2 or n < 2 or not y.shape[1]:
        return
    y = y.astype(np.float64)
    members = [np.flatnonzero(subset == j) for j in range(k)]
    sizes = np.array([len(m) for m in members], np.float64)
    if (sizes == 0).sum() > k - 2:
        return
    counts = np.stack([y[m].sum(0) for m in members])
    error = counts - sizes[:, None] * y.mean(0)
    rounds = min(4 * n, 20_000) if rounds is None else rounds
    nonempty = np.flatnonzero(sizes)
    for _ in range(rounds):
        i, j = nonempty[rng.permutation(len(nonempty))[:2]]
        ai = rng.integers(len(members[i]))
        a = members[i][ai]
        bj = rng.integers(len(members[j]), size=min(candidates, len(members[j])))
        d = y[members[j][bj]] - y[a]  # swapping a (i -> j) with b (j -> i) adds d to i
        old = (error[i] @ error[i]) / sizes[i] + (error[j] @ error[j]) / sizes[j]
        new = (((error[i] + d) ** 2).sum(1) / sizes[i]
               + ((error[j] - d) ** 2).sum(1) / sizes[j])
        best = int(np.argmin(new))
        if new[best] < old - 1e-9:
            b = members[j][bj[best]]
            error[i] += d[best]
            error[j] -= d[best]
            members[i][ai], members[j][bj[best]] = b, a
            subset[a], subset[b] = j, i


def paper_split(ids, label_matrix, fractions=PAPER_FRACTIONS, seed=0):
    """The paper's re-split of all labelled images: stratified 70/20/10 (see module docs).

    Args:
        ids: Items (any hashable values), one per row of `label_matrix`.
        label_matrix: [n, C] multi-hot labels (anything > 0 counts as present).
        fractions: (train, val, test) fractions, positive, summing to 1.
        seed: Seed of the stratifier; the same inputs and seed give the same split.

    Returns:
        dict(train=..., val=..., test=...): disjoint lists covering `ids`, each in `ids` order.
        For n = 17,125 the sizes are 11,987 / 3,425 / 1,713; for n = 2,913, 2,039 / 577 / 297.
    """
    if len(fractions) != 3:
        raise ValueError(f"fractions must be (train, val, test), received {fractions!r}.")
    ids = list(ids)
    parts = stratified_split(ids, label_matrix, _split_sizes(len(ids), fractions), seed)
    return dict(zip(SPLITS, parts))
