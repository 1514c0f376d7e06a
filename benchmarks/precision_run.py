"""Where a whole training run spends its time, per precision: start-up, the first step (tracing),
the steady train step, validation, the end-of-epoch callbacks; and the validation losses it ends
at, per seed, so that a faster precision is only taken at equal losses.

Runs `train_colorizer.py`'s training (the fast preset unless told otherwise) once per precision
and seed, alternating precisions, with a callback that stamps every step, and prints one row each.
The parts add up to the total less the last epoch's callbacks.

    python benchmarks/precision_run.py --dataset tinyimagenet:../shared/realdata/tiny-imagenet-200 \\
        --precisions float32,mixed_bfloat16 --seeds 2 --epochs 3 --steps-per-epoch 150
"""

import dataclasses
import json
import os
import statistics
import tempfile
import time

from cgan_colorization.constants import PRECISIONS
from cgan_colorization.engine import runtime
from cgan_colorization.engine.schema import Range, build_parser as build_options_parser, comma_subset, option
from cgan_colorization.pretexts import registry


@dataclasses.dataclass
class PrecisionRunOptions:
    """The measurement's command line."""

    dataset: str = option("synthetic", "the training data, as train_colorizer.py --dataset")
    objective: str = option(registry.PRETEXTS[registry.PAPER_PRETEXT].objective,
                            "the pretext objective, as train_colorizer.py --objective",
                            choices=registry.OBJECTIVES)
    precisions: tuple = option(("float32", "mixed_bfloat16"), "comma-separated precisions, one run each per seed",
                               parse=comma_subset(tuple(p for p in PRECISIONS if p != "auto")))
    seeds: int = option(1, "runs per precision, seeds 0 to N - 1", Range(1))
    epochs: int = option(3, "training epochs of each run", Range(1))
    steps_per_epoch: int = option(150, "steps per epoch", Range(1))
    max_photos_per_class: int = option(0, "with a labelled layout: photos of each class (0: all)", Range(0))
    steps_per_execution: int = option(0, "train steps per call into the compiled function (0: auto, as "
                                         "train_colorizer.py)", Range(0))
    json: str = option(None, "also write the rows to this file")


def build_parser():
    return build_options_parser(__doc__, PrecisionRunOptions, raw_description=True)


def timeline_callback():
    import keras

    class Timeline(keras.callbacks.Callback):
        """Wall-clock stamps of the fit: train begin, every step's end, each validation's begin and end."""

        def __init__(self):
            super().__init__()
            self.begin, self.steps, self.tests, self.epoch_begins = None, [], [], []

        def on_train_begin(self, logs=None):
            self.begin = time.perf_counter()

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch_begins.append(time.perf_counter())
            self.steps.append([])

        def on_train_batch_end(self, batch, logs=None):
            self.steps[-1].append((time.perf_counter(), batch))  # batch: the last step of the call

        def on_train_end(self, logs=None):
            self.end = time.perf_counter()

        def on_test_begin(self, logs=None):
            self.tests.append([time.perf_counter(), None])

        def on_test_end(self, logs=None):
            self.tests[-1][1] = time.perf_counter()

    return Timeline()


def summarize(timeline, total):
    """Seconds of each part of one run, from its timeline."""
    first = timeline.steps[0][0][0] - timeline.begin
    per_step = [(b - a) / (j - i) for epoch in timeline.steps  # steady: not an epoch's first call
                for (a, i), (b, j) in zip(epoch[1:], epoch[2:])]
    later_firsts = [epoch[0][0] - begin for epoch, begin in zip(timeline.steps[1:], timeline.epoch_begins[1:])]
    validation = [end - begin for begin, end in timeline.tests]
    after = [next_begin - test[1] for test, next_begin in zip(timeline.tests, timeline.epoch_begins[1:])]
    steps = sum(epoch[-1][1] + 1 for epoch in timeline.steps)
    return {"total_s": round(total, 1), "before_fit_s": round(timeline.begin - timeline.t0, 1),
            "first_step_s": round(first, 2), "step_ms": round(1000 * statistics.median(per_step), 1),
            "train_s": round(sum(epoch[-1][0] - begin for epoch, begin in zip(timeline.steps, timeline.epoch_begins)), 1),
            "later_first_steps_s": round(sum(later_firsts), 2), "steps": steps,
            "first_validation_s": round(validation[0], 1),
            "later_validation_s": round(statistics.mean(validation[1:]), 1) if len(validation) > 1 else None,
            "epoch_end_callbacks_s": round(sum(after), 1),
            "after_fit_s": round(timeline.t0 + total - timeline.end, 1)}


def one_run(dataset, objective, precision, seed, epochs, steps, max_per_class, folder, per_call=0):
    from cgan_colorization.engine.config import TrainConfig
    from cgan_colorization.engine.plots import read_csv_log
    from cgan_colorization.engine.training import train

    out = os.path.join(folder, f"{precision}-seed{seed}")
    config = TrainConfig(dataset=dataset, objective=objective, mixed_precision=precision, seed=seed, epochs=epochs,
                         steps_per_epoch=steps, max_photos_per_class=max_per_class, out=out, backup_every=0,
                         steps_per_execution=per_call)
    timeline = timeline_callback()
    timeline.t0 = start = time.perf_counter()
    train(config, extra_callbacks=[timeline], verbose=0)
    row = {"precision": precision, "seed": seed, "steps_per_execution": per_call,
           **summarize(timeline, time.perf_counter() - start)}
    log = read_csv_log(os.path.join(out, "log.csv"))
    row.update({key: round(values[-1], 4) for key, values in log.items() if key.startswith("val_")})
    return row


def main(argv=None):
    args = build_parser().parse(argv)
    runtime.configure()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for seed in range(args.seeds):
            for precision in args.precisions:  # alternating, so that a drifting machine hits both alike
                row = one_run(args.dataset, args.objective, precision, seed, args.epochs, args.steps_per_epoch,
                              args.max_photos_per_class, folder, args.steps_per_execution)
                rows.append(row)
                print(json.dumps(row), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
