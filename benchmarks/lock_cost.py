"""What the run folder's writer lock (agrec.run.runlock) costs.

Two measurements, side by side in one process:

1. ``acquire`` + ``release`` of a fresh folder's lock, repeated (the lock's own cost);
2. ``agrec run`` of a small profile whose every stage is current (the runner decides, reuses, executes nothing):
   with the lock, and with the lock replaced by a no-op, alternating, so that machine noise hits both alike.

    .venv/bin/python benchmarks/lock_cost.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import tempfile
import time
from pathlib import Path

import agrec.run.pipeline as pipeline
from agrec.run import runlock


def lock_cycle(folder: Path, n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        runlock.acquire(folder, command="bench")
        runlock.release(folder)
    return (time.perf_counter() - t0) / n


def toy_profile(root: Path) -> Path:
    data = root / "data"
    data.mkdir()
    (data / "Toy.inter.json").write_text(json.dumps({str(u): [0, 1, 2, 3] for u in range(50)}))
    (data / "Toy.index.json").write_text(json.dumps({str(i): [f"<a_{i}>"] for i in range(4)}))
    p = root / "toy.yaml"
    p.write_text(f"name: toy\nseed: 1\ndata: {{dataset: Toy, format: lcrec, path: {data}, require_text: false}}\n"
                 f"pipeline: {{stages: [data], runs_dir: {root / 'runs'}, reports_dir: {root / 'reports'}}}\n")
    return p


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="agrec-lock-") as tmp:
        root = Path(tmp)
        per_cycle = lock_cycle(root / "bare", 2000)
        print(f"acquire + release: {per_cycle * 1e6:.1f} µs per cycle (2,000 cycles)")
        prof = toy_profile(root)
        pipeline.run_pipeline(prof, log=lambda s: None)          # computes the data stage once
        real = pipeline.locked
        times: dict[str, list[float]] = {"with lock": [], "no lock": []}
        for _ in range(args.repeats):
            for label in times:
                pipeline.locked = real if label == "with lock" else (lambda folder: contextlib.nullcontext())
                t0 = time.perf_counter()
                pipeline.run_pipeline(prof, log=lambda s: None)   # everything current: nothing executed
                times[label].append(time.perf_counter() - t0)
        pipeline.locked = real
        med = {k: statistics.median(v) for k, v in times.items()}
        for k, v in med.items():
            print(f"agrec run, every stage current, {k}: median {v * 1e3:.1f} ms over {args.repeats}")
        print(f"ratio with/without lock: {med['with lock'] / med['no lock']:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
