"""A frozen-feature probe during pretraining (`train_colorizer.py --probe LABELLED`): after every epoch,
the weighted kNN score (Wu et al. 2018, as `knn_eval`) of each encoder level of the network being
trained, on a small fixed split of a labelled set, so that a run's log says when its features transfer
best, not only when its pretext loss is lowest.

The bank is the first `--probe-bank` photos of the labelled set's train split (class-balanced for Tiny
ImageNet), the queries `--probe-queries` photos spread evenly over its validation split (its first 4,000); its test split
is never read. Both are decoded once, before the first epoch, and kept in memory. Each epoch the
encoder (a copy of the trained network's encoder layers, refreshed by layer name) runs on them with
BatchNorm in inference mode; every level is average-pooled to about 2,048 values and L2-normalized.
Single-label sets (Tiny ImageNet) score kNN top-1; multi-label ones (VOC, the synthetic scenes) score
kNN mAP, each class scored by its neighbours' summed weights. `log.csv` gets the best level's score
(`probe_knn_top1` or `probe_knn_map`) and the probe's seconds (`probe_seconds`); TensorBoard gets every
level's score under `tensorboard/probe`.
"""

import textwrap
import time

import numpy as np
import tensorflow as tf

from cgan_colorization.engine.callbacks import SummaryCallback
from transfer import knn_eval, metrics as tm, probes
from transfer.config import KNN_K, KNN_TEMPERATURE
from transfer.feature_eval import LINEAR_POOLED_SIZE

PROBE_BATCH = 128  # images per encoder call
QUERY_POOL = 4000  # the queries are spread over the first this many validation photos (decoded once)


def _spread(n_available, n):
    """`n` indices spread evenly over `n_available` (all of them when n >= n_available)."""
    if n >= n_available:
        return np.arange(n_available)
    return np.linspace(0, n_available - 1, n).round().astype(int)


def _load(source, spec, split, size, image_size, color_space):
    """(inputs [N, S, S, 1] float32, labels [N, C] float32) of the first `size` items of a split, decoded once."""
    from data.labelled import classification_dataset

    ds = classification_dataset(source, split, image_size=image_size, batch_size=PROBE_BATCH, training=False,
                                size=size, color_space=color_space)
    pairs = [(x.numpy(), y.numpy()) for x, y in ds]
    if not pairs:
        raise ValueError(f"--probe {spec} has no photos in its {split} split.")
    return np.concatenate([x for x, _ in pairs]), np.concatenate([y for _, y in pairs])


def knn_map(x_bank, y_bank, x_query, y_query, k=KNN_K, temperature=KNN_TEMPERATURE):
    """Mean average precision of a multi-label weighted kNN: a query's score for class c is the summed
    weight exp((s - s_max) / T) of its k nearest bank images that hold c (`knn_eval.knn_votes`' weights)."""
    k = min(k, len(x_bank))
    index_votes = knn_eval.knn_votes(x_bank, np.arange(len(x_bank)), x_query, max(2, len(x_bank)), k=k,
                                     temperature=temperature)  # [Q, N]: each neighbour's weight at its index
    scores = index_votes @ np.asarray(y_bank, np.float32)
    return float(tm.mean_average_precision(np.asarray(y_query), scores))


class OnlineProbe(SummaryCallback):
    """The per-epoch kNN probe of the trained network's encoder levels (see the module docstring)."""

    def __init__(self, spec, *, backbone, image_size, base_filters, color_space="lab", bank=1000, queries=250,
                 log_dir=None, seed=0):
        super().__init__(log_dir)
        from data import labelled

        source = labelled.parse_labelled(spec, "classification", seed=seed, verbose=False)
        if "train" not in source.splits or "val" not in source.splits:
            raise ValueError(f"--probe {spec} needs a train and a validation split.")
        self.single_label = bool(source.single_label)
        self.key = "probe_knn_top1" if self.single_label else "probe_knn_map"
        self.x_bank, y_bank = _load(source, spec, "train", bank, image_size, color_space)
        x_val, y_val = _load(source, spec, "val", max(queries, QUERY_POOL), image_size, color_space)
        chosen = _spread(len(x_val), queries)
        self.x_query, y_query = x_val[chosen], y_val[chosen]
        self.y_bank, self.y_query = (y_bank.argmax(1), y_query.argmax(1)) if self.single_label else (y_bank, y_query)
        self.num_classes = int(y_bank.shape[1])
        self.encoder, self.levels = probes.encoder_levels(backbone, image_size, base_filters, seed=seed)
        self.history = []  # [(epoch, {level: score})]

    def _features(self, x):
        batches = tf.data.Dataset.from_tensor_slices((x, np.zeros(len(x), np.float32))).batch(PROBE_BATCH)
        return probes.extract(self.encoder, self.levels, batches, progress=False, pooled_size=LINEAR_POOLED_SIZE)[0]

    def scores(self, network):
        """{level: kNN top-1 or mAP} of `network`'s encoder levels on the probe's split."""
        from transfer.models import transfer_weights

        transfer_weights(network, self.encoder)
        bank, query = self._features(self.x_bank), self._features(self.x_query)
        if self.single_label:
            k = min(KNN_K, len(self.y_bank))
            return {name: knn_eval.knn_top1(bank[name], self.y_bank, query[name], self.y_query,
                                            max(2, self.num_classes), k=k)["top1"] for name in self.levels}
        return {name: knn_map(bank[name], self.y_bank, query[name], self.y_query) for name in self.levels}

    def on_epoch_end(self, epoch, logs=None):
        start = time.time()
        levels = self.scores(self.model.network)
        best = max(levels, key=levels.get)
        self.history.append((epoch + 1, levels))
        if logs is not None:
            logs[self.key] = levels[best]
            logs["probe_seconds"] = time.time() - start
        if self.log_dir:
            with self.summaries():
                for name, value in levels.items():
                    tf.summary.scalar(f"{self.key}/{name}", value, step=epoch + 1,
                                      description="kNN score of this encoder level's frozen features")


def make_probe(config, run_dir):
    """The `OnlineProbe` of a training run's `--probe` (the factory `training.train` takes)."""
    import os

    from cgan_colorization.engine.config import check_config

    return OnlineProbe(config.probe, backbone=config.backbone, image_size=config.image_size,
                       base_filters=config.base_filters, color_space=check_config(config).color_space,
                       bank=config.probe_bank, queries=config.probe_queries,
                       log_dir=os.path.join(run_dir, "tensorboard", "probe"), seed=config.seed)


def plot_probe_curves(run_folders, path):
    """One figure of the probe's best-level score against the optimizer step of every run folder (its
    objective and seed in the legend; the code commit, the probe set and sizes in the caption); returns
    the plotted {legend label: (steps, scores in %)}."""
    import json
    import os

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from cgan_colorization.engine.plots import read_csv_log
    from transfer.report import _commit

    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    probed, series = set(), {}
    for folder in run_folders:
        with open(os.path.join(folder, "config.json")) as f:
            config = json.load(f)
        log = read_csv_log(os.path.join(folder, "log.csv"))
        key = next((k for k in ("probe_knn_top1", "probe_knn_map") if k in log), None)
        if key is None:
            raise ValueError(f"{folder}/log.csv holds no probe score: was it trained with --probe?")
        steps = config.get("steps_per_epoch_resolved") or config["steps_per_epoch"]
        epochs = [int(e) + 1 for e in log["epoch"]]
        label = f"{config['objective']} (seed {config['seed']})"
        series[label] = ([e * steps for e in epochs], [100 * v for v in log[key]])
        ax.plot(*series[label], marker="o", label=label)
        probed.add((config["probe"].split(":")[0], config["probe_bank"], config["probe_queries"], key))
        setting = f"{config['image_size']} px, {config['base_filters']} filters, batch {config['batch_size']}"
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("kNN " + ("top-1" if key.endswith("top1") else "mAP") + " at the best level (%)")
    ax.grid(alpha=0.3)
    ax.legend()
    sets = "; ".join(f"{name}: bank {bank}, queries {queries}" for name, bank, queries, _ in sorted(probed))
    caption = f"code {_commit()}; {setting}; probe {sets}; the weights at the end of each epoch"
    fig.text(0.01, 0.005, "\n".join(textwrap.wrap(caption, 120)), fontsize=6.5, color="0.35")
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return series


def main(argv=None):
    """`python -m transfer.online_probe RUN... --out FIGURE.png`: the probe curves of trained runs."""
    import sys

    from transfer.options import probe_curve_parser

    args = probe_curve_parser().parse(argv)
    try:
        plot_probe_curves(args.runs, args.out)
        print(args.out)
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
