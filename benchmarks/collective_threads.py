"""Threads of a two-worker run against --collective-timeout: does a per-collective timer grow the
thread count over many fast steps?

Starts two workers of one MultiWorkerMirroredStrategy cluster on 127.0.0.1 (CPU, a tiny GAN, so
that steps are fast and collectives many), once per timeout value, samples each worker's thread
count from /proc twice a second and prints, per value: steps, seconds, steps a second and the
threads of worker 0 at start, at the middle, at the end and at most; or, for a run that fails, the
steps it reached and its last error line (its logs are kept).

    python benchmarks/collective_threads.py --timeouts 0,600 --steps 600
"""

import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

from cgan_colorization.engine.runtime import free_local_ports
from cgan_colorization.engine.schema import Range, build_parser as build_options_parser, comma_separated, option

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--image-size", "32", "--base-filters", "4", "--batch-size", "8", "--val-size", "8", "--sample-count", "2",
        "--backup-every", "0", "--epochs", "1"]


@dataclasses.dataclass
class ThreadsOptions:
    """The measurement's command line."""

    timeouts: tuple = option((0, 600), "comma-separated --collective-timeout values, one two-worker run each",
                             parse=comma_separated(int, Range(0)))
    steps: int = option(600, "train steps of each run", Range(1))
    json: str = option(None, "also write the figures to this file")


def build_parser():
    return build_options_parser(__doc__, ThreadsOptions, raw_description=True)


def _threads(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("Threads:"))
    except (FileNotFoundError, ProcessLookupError, StopIteration):
        return None


def run_pair(timeout, steps, folder):
    """One two-worker run; returns its figures (thread samples of worker 0 in time order)."""
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_local_ports(2)]}
    out = os.path.join(folder, f"timeout-{timeout}")
    procs = []
    for index in range(2):
        env = dict(os.environ, CUDA_VISIBLE_DEVICES="-1", TF_CPP_MIN_LOG_LEVEL="2",
                   TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}))
        log = open(os.path.join(folder, f"timeout-{timeout}-w{index}.log"), "w")
        procs.append(subprocess.Popen(
            [sys.executable, os.path.join(ROOT, "train_colorizer.py"), "--strategy", "multiworker",
             "--collective-timeout", str(timeout), "--steps-per-epoch", str(steps), *TINY, "--out", out],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT))
    start, samples = time.time(), []
    try:
        while any(p.poll() is None for p in procs):
            count = _threads(procs[0].pid)
            if count is not None:
                samples.append((round(time.time() - start, 1), count))
            time.sleep(0.5)
    finally:  # interrupted: no worker is left waiting for its peer
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    codes = [p.returncode for p in procs]
    counts = [c for _, c in samples] or [0]
    row = {"collective_timeout": timeout, "exit_codes": codes, "seconds_process": round(time.time() - start, 1),
           "threads_start": counts[0], "threads_middle": counts[len(counts) // 2], "threads_end": counts[-1],
           "threads_max": max(counts), "samples": samples}
    if codes != [0, 0]:  # a failure is a figure too: how far the run got, and the last thing it said
        with open(os.path.join(folder, f"timeout-{timeout}-w0.log")) as f:
            text = f.read()
        reached = re.findall(rf"(\d+)/{steps}", text)
        errors = [line.strip() for line in text.splitlines() if "what()" in line or line.startswith("error:")]
        return {**row, "steps": int(reached[-1]) if reached else 0, "failure": errors[-1] if errors else "no message"}
    with open(os.path.join(out, "train_summary.json")) as f:
        summary = json.load(f)
    return {**row, "steps": summary["optimizer_steps"], "seconds_training": summary["seconds_last_session"]}


def main(argv=None):
    args = build_parser().parse(argv)
    rows = []
    folder = tempfile.mkdtemp(prefix="collective-threads-")  # kept when a run fails, for its logs
    for timeout in args.timeouts:
        row = run_pair(timeout, args.steps, folder)
        rows.append(row)
        threads = (f"worker 0 threads: start {row['threads_start']}, middle {row['threads_middle']}, end "
                   f"{row['threads_end']}, max {row['threads_max']}")
        if "failure" in row:
            print(f"--collective-timeout {timeout}: FAILED after {row['steps']} of {args.steps} steps and "
                  f"{row['seconds_process']} s (exit codes {row['exit_codes']}, {row['failure']!r}); {threads}; "
                  f"logs in {folder}", flush=True)
        else:
            print(f"--collective-timeout {timeout}: {row['steps']} steps in {row['seconds_training']} s "
                  f"({row['steps'] / row['seconds_training']:.1f} steps/s); {threads}", flush=True)
    if not any("failure" in row for row in rows):
        shutil.rmtree(folder, ignore_errors=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
