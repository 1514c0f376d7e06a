"""What `train_colorizer.py --probe` costs: each epoch's wall time (steps, validation, callbacks) and the
probe's share of it, for a training run at the fast preset (unless told otherwise).

    python benchmarks/probe_cost.py --probe synthetic --epochs 3
    python benchmarks/probe_cost.py --dataset tinyimagenet:../shared/realdata/tiny-imagenet-200 \\
        --probe tinyimagenet:../shared/realdata/tiny-imagenet-200 --steps-per-epoch 250

Prints one row per epoch (the first one holds the tracing of the train step and of the probe's encoder)
and the mean share of the later epochs.
"""

import dataclasses
import os
import statistics
import tempfile
import time

from cgan_colorization.engine import runtime
from cgan_colorization.engine.schema import Range, build_parser as build_options_parser, option


@dataclasses.dataclass
class ProbeCostOptions:
    """The measurement's command line; an option left unset takes train_colorizer.py's value."""

    probe: str = option(None, "the labelled set probed, as train_colorizer.py --probe", required=True)
    dataset: str = option("synthetic", "the training data, as train_colorizer.py --dataset")
    epochs: int = option(3, "training epochs (the first holds the tracing, so at least 2)", Range(2))
    steps_per_epoch: int = option(None, "steps per epoch (unset: train_colorizer.py's)", Range(1))
    probe_bank: int = option(None, "bank photos of the probe (unset: train_colorizer.py's)", Range(1))
    probe_queries: int = option(None, "query photos of the probe (unset: train_colorizer.py's)", Range(1))


def build_parser():
    return build_options_parser(__doc__, ProbeCostOptions, raw_description=True)


def main(argv=None):
    args = build_parser().parse(argv)
    runtime.configure()
    import keras

    from cgan_colorization.engine.config import TrainConfig
    from cgan_colorization.engine.training import train
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

    given = {k: getattr(args, k) for k in ("steps_per_epoch", "probe_bank", "probe_queries") if getattr(args, k)}
    clock = EpochClock()
    with tempfile.TemporaryDirectory() as folder:
        config = dataclasses.replace(TrainConfig(), dataset=args.dataset, epochs=args.epochs, probe=args.probe,
                                     out=os.path.join(folder, "run"), **given)
        train(config, extra_callbacks=[clock], verbose=0, probe=make_probe)
    print(f"dataset {args.dataset}, probe {args.probe} (bank {config.probe_bank}, queries {config.probe_queries}), "
          f"{config.image_size} px, {config.base_filters} filters, batch {config.batch_size}, "
          f"{config.steps_per_epoch} steps an epoch")
    print("epoch | epoch s | probe s | probe share | probe score")
    for i, (total, probe, score) in enumerate(clock.rows, start=1):
        print(f"{i} | {total:.2f} | {probe:.2f} | {100 * probe / total:.1f} % | {score:.4f}")
    later = clock.rows[1:]
    print(f"epochs 2-{len(clock.rows)}: probe {statistics.mean(p for _, p, _ in later):.2f} s of "
          f"{statistics.mean(t for t, _, _ in later):.2f} s an epoch, "
          f"{100 * statistics.mean(p / t for t, p, _ in later):.1f} %")


if __name__ == "__main__":
    main()
