"""Threads of a two-worker run against --collective-timeout: does a per-collective timer grow the
thread count over many fast steps?

Starts two workers of one MultiWorkerMirroredStrategy cluster on 127.0.0.1 (CPU, a tiny GAN, so
that steps are fast and collectives many), once per timeout value, samples each worker's thread
count from /proc twice a second and prints, per value: steps, seconds, steps a second and the
threads of worker 0 at start, at the middle, at the end and at most.

    python benchmarks/collective_threads.py --timeouts 0,600 --steps 600
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

from cgan_colorization.config import Range, bounded, comma_separated

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--image-size", "32", "--base-filters", "4", "--batch-size", "8", "--val-size", "8", "--sample-count", "2",
        "--backup-every", "0", "--epochs", "1"]


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--timeouts", type=comma_separated(int, Range(0)), default=(0, 600),
                        help="comma-separated --collective-timeout values, one two-worker run each")
    parser.add_argument("--steps", type=bounded(int, Range(1)), default=600, help="train steps of each run")
    parser.add_argument("--json", help="also write the figures to this file")
    return parser


def _ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _threads(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("Threads:"))
    except (FileNotFoundError, ProcessLookupError, StopIteration):
        return None


def run_pair(timeout, steps, folder):
    """One two-worker run; returns its figures (thread samples of worker 0 in time order)."""
    cluster = {"worker": [f"127.0.0.1:{port}" for port in _ports(2)]}
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
    if codes != [0, 0]:
        raise SystemExit(f"error: the run with --collective-timeout {timeout} failed (exit codes {codes}): "
                         f"see {folder}.")
    with open(os.path.join(out, "train_summary.json")) as f:
        summary = json.load(f)
    counts = [c for _, c in samples]
    return {"collective_timeout": timeout, "steps": summary["optimizer_steps"],
            "seconds_training": summary["seconds_last_session"], "seconds_process": round(time.time() - start, 1),
            "threads_start": counts[0], "threads_middle": counts[len(counts) // 2], "threads_end": counts[-1],
            "threads_max": max(counts), "samples": samples}


def main(argv=None):
    args = build_parser().parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for timeout in args.timeouts:
            row = run_pair(timeout, args.steps, folder)
            rows.append(row)
            print(f"--collective-timeout {timeout}: {row['steps']} steps in {row['seconds_training']} s "
                  f"({row['steps'] / row['seconds_training']:.1f} steps/s); worker 0 threads: start "
                  f"{row['threads_start']}, middle {row['threads_middle']}, end {row['threads_end']}, "
                  f"max {row['threads_max']}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
