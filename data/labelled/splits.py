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

**Sequence split** (`sequence_split`): for video frames, whose neighbours are near duplicates, so a
random split puts nearly the same picture in train and test. The sequence of a frame is its file
name's prefix up to the first `_` (CamVid's `0016E5_07959.png` is in `0016E5`); frames are ordered
by name, digit runs compared as numbers. The rule has no seed, so it is the same for every seed:
* test: every frame of one named sequence (CamVid: `DEFAULT_TEST_SEQUENCE`, 0006R0, 101 frames);
* val: the last `round(0.15 R)` frames of one other sequence (by default the longest remaining one,
  ties to the first name), R being the frames outside the test sequence, at most that sequence's
  length minus the gap and one frame;
* the `SEQUENCE_GAP` (5) frames just before that block belong to no split, so no near-duplicate
  pair straddles the end of that sequence's training block and its validation block;
* train: everything else, in a spread order: the frames (sequence by sequence, in frame order) in
  bit-reversed index order, so every prefix (`--label-fraction`, `--train-size`) samples each
  training sequence evenly over its length, and smaller prefixes nest in larger ones.
On SegNet's CamVid copy (train + val folders, 468 frames of 0001TP, 0006R0 and 0016E5) this gives
train 307 (0001TP's 62 and the first 245 of 0016E5), val 55 (0016E5's last), test 101 (0006R0),
and 5 frames of 0016E5 left out.
"""

import logging
import math
import os
import re

import numpy as np

SPLITS = ("train", "val", "test")
PAPER_FRACTIONS = (0.7, 0.2, 0.1)
# The paper's split sizes for its two labelled sets, used verbatim for the default fractions.
PAPER_SPLIT_SIZES = {17125: (11987, 3425, 1713), 2913: (2039, 577, 297)}
# The sequence split (see module docs): CamVid's held-out sequence, the validation share of the
# frames outside it, and the frames left out between a sequence's training and validation blocks.
DEFAULT_TEST_SEQUENCE = "0006R0"
SEQUENCE_VAL_FRACTION = 0.15
SEQUENCE_GAP = 5

_logger = logging.getLogger(__name__)


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


def frame_sequence(name):
    """The sequence of a frame: its file name's prefix up to the first '_' (None without one)."""
    prefix, sep, _ = os.path.basename(name).partition("_")
    return prefix if sep and prefix else None


def _frame_key(name):
    """Frame-name order: the base name with its digit runs compared as numbers."""
    base = os.path.basename(name)
    parts = re.split(r"(\d+)", base)
    return [int(part) if i % 2 else part for i, part in enumerate(parts)], base


def _spread(frames):
    """`frames` in bit-reversed index order (0, n/2, n/4, 3n/4, ...): each prefix spreads evenly."""
    bits = max(1, (len(frames) - 1).bit_length())
    order = sorted(range(len(frames)), key=lambda i: int(format(i, f"0{bits}b")[::-1], 2))
    return [frames[i] for i in order]


def sequence_split(names, test_sequence=DEFAULT_TEST_SEQUENCE, val_sequence=None,
                   val_fraction=SEQUENCE_VAL_FRACTION, gap=SEQUENCE_GAP, what="the set"):
    """The sequence-disjoint split of video frames (see module docs); it takes no seed.

    Args:
        names: Frame file names or paths (the items of the split), each `SEQUENCE_...`.
        test_sequence: The sequence held out whole as the test split.
        val_sequence: The sequence whose last frames are the validation split (None: the longest
            one besides the test sequence, ties to the first name).
        val_fraction: Validation share of the frames outside the test sequence.
        gap: Frames left out between the validation sequence's training and validation blocks.
        what: How errors name the set, e.g. "'seg-folder:PATH'".

    Returns:
        dict(train=..., val=..., test=...) of items of `names`; val and test in frame order,
        train in its spread order. The `gap` frames left out are in none of them.

    Raises:
        ValueError: a name without a sequence prefix, an unknown or unusable sequence.
    """
    names = list(names)
    unnamed = [name for name in names if frame_sequence(name) is None]
    if unnamed:
        raise ValueError(
            f"split_mode='sequence' needs frame names that start with their sequence and '_' (as "
            f"CamVid's 0016E5_07959.png), but {len(unnamed)} of the {len(names)} in {what} do not, "
            f"such as {os.path.basename(unnamed[0])!r}; use split_mode='paper' instead.")
    sequences = {}
    for name in sorted(names, key=_frame_key):
        sequences.setdefault(frame_sequence(name), []).append(name)
    known = ", ".join(sorted(sequences))
    for option, value in (("test_sequence", test_sequence), ("val_sequence", val_sequence)):
        if (value is not None or option == "test_sequence") and value not in sequences:
            raise ValueError(f"{option} {value!r} is not a sequence of {what}, whose sequences "
                             f"are {known}.")
    if val_sequence == test_sequence:
        raise ValueError(f"val_sequence and test_sequence are both {val_sequence!r}; the "
                         f"validation sequence must be another of {known}.")
    rest = {s: frames for s, frames in sorted(sequences.items()) if s != test_sequence}
    if not rest:
        raise ValueError(f"{what} holds only the sequence {test_sequence!r}, so nothing is left to "
                         f"train on once it is the test split; use split_mode='paper' instead.")
    if val_sequence is None:
        val_sequence = max(rest, key=lambda s: len(rest[s]))  # ties: the first name
    frames = rest[val_sequence]
    if len(frames) < gap + 2:
        raise ValueError(f"The validation sequence {val_sequence!r} of {what} has {len(frames)} "
                         f"frames, too few for a training block, a gap of {gap} and a validation "
                         f"block; choose a longer one of {known}.")
    outside = sum(len(block) for block in rest.values())
    n_val = min(max(1, math.floor(val_fraction * outside + 0.5)), len(frames) - gap - 1)
    train_block = len(frames) - n_val - gap
    val = frames[train_block + gap:]
    rest[val_sequence] = frames[:train_block]
    train = _spread([frame for block in rest.values() for frame in block])
    _logger.info("Sequence split of %s: test %s (%d frames), val the last %d frames of %s after a "
                 "gap of %d, train %d frames of %s.", what, test_sequence,
                 len(sequences[test_sequence]), n_val, val_sequence, gap, len(train),
                 ", ".join(rest))
    return dict(train=train, val=val, test=list(sequences[test_sequence]))
