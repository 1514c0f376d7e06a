"""What `train_colorizer.py --probe` costs: each epoch's wall time (steps, validation, callbacks) and the
probe's share of it, for a training run at the fast preset (unless told otherwise).

    python benchmarks/probe_cost.py --probe synthetic --epochs 3
    python benchmarks/probe_cost.py --dataset tinyimagenet:../shared/realdata/tiny-imagenet-200 \\
        --probe tinyimagenet:../shared/realdata/tiny-imagenet-200 --steps-per-epoch 250

Prints one row per epoch (the first one holds the tracing of the train step and of the probe's encoder)
and the mean share of the later epochs.
"""

import argparse
import dataclasses
import os
import statistics
import tempfile
import time

from cgan_colorization import runtime
from cgan_colorization.config import Range, bounded


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    positive = bounded(int, Range(1))
    parser.add_argument("--probe", required=True, help="the labelled set probed, as train_colorizer.py --probe")
    parser.add_argument("--dataset", default="synthetic", help="the training data, as train_colorizer.py --dataset")
    parser.add_argument("--epochs", type=bounded(int, Range(2)), default=3)
    parser.add_argument("--steps-per-epoch", type=positive, default=100, help="default: the fast preset's 100")
    parser.add_argument("--probe-bank", type=positive, default=None, help="default: train_colorizer.py's")
    parser.add_argument("--probe-queries", type=positive, default=None, help="default: train_colorizer.py's")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    runtime.configure()
    import keras

    from cgan_colorization.config import TrainConfig
    from cgan_colorization.training import train
    from transfer.online_probe import make_probe

    class EpochClock(keras.callbacks.Callback):  # last in the list: its epoch end follows the probe's
        def __init__(self):
            super().__init__()
            self.rows = []

        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.rows.append((time.perf_counter() - self.start, float(logs["probe_seconds"]),
                              float(logs.get("probe_knn_top1", logs.get("probe_knn_map")))))

    sizes = {k: v for k, v in (("probe_bank", args.probe_bank), ("probe_queries", args.probe_queries)) if v}
    clock = EpochClock()
    with tempfile.TemporaryDirectory() as folder:
        config = dataclasses.replace(TrainConfig(), dataset=args.dataset, epochs=args.epochs, probe=args.probe,
                                     steps_per_epoch=args.steps_per_epoch, out=os.path.join(folder, "run"), **sizes)
        train(config, extra_callbacks=[clock], verbose=0, probe=make_probe)
    print(f"dataset {args.dataset}, probe {args.probe} (bank {config.probe_bank}, queries {config.probe_queries}), "
          f"{config.image_size} px, {config.base_filters} filters, batch {config.batch_size}, "
          f"{args.steps_per_epoch} steps an epoch")
    print("epoch | epoch s | probe s | probe share | probe score")
    for i, (total, probe, score) in enumerate(clock.rows, start=1):
        print(f"{i} | {total:.2f} | {probe:.2f} | {100 * probe / total:.1f} % | {score:.4f}")
    later = clock.rows[1:]
    print(f"epochs 2-{len(clock.rows)}: probe {statistics.mean(p for _, p, _ in later):.2f} s of "
          f"{statistics.mean(t for t, _, _ in later):.2f} s an epoch, "
          f"{100 * statistics.mean(p / t for t, p, _ in later):.1f} %")


if __name__ == "__main__":
    main()
