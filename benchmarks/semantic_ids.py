"""Benchmark: the semantic-ID stage on MovieLens-100k — item text embedding + RQ-VAE training.

Each phase runs in its own fresh Python process, so its wall time, CPU time and peak resident memory
(``ru_maxrss``) are its own:

- ``stage``: the whole stage as ``agrec run`` does it with the quick profile (MiniLM embedding of 1,682
  texts with no cache, RQ-VAE training, de-duplication, artefacts) — the number with the < 3 min goal;
- ``embed@T`` / ``rqvae@T``: embedding alone and RQ-VAE training alone with ``T`` torch threads, side by
  side, which is how the profiles' ``cpu_threads: 1`` was chosen (a shared 2-core machine is noisy:
  compare rows of one run, not across runs).

    python benchmarks/semantic_ids.py                    # quick profile, threads 1 and 2
    python benchmarks/semantic_ids.py --threads 1 --rqvae-epochs 600 --skip-stage

Writes ``benchmarks/results/semantic_ids.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QUICK = ROOT / "configs" / "ml100k-quick.yaml"


# -- phases (run in a child process) ------------------------------------------------------------------

def phase_stage(args: argparse.Namespace) -> dict:
    from agrec.semantic_ids.stage import prepare_semantic_ids
    from agrec.run.session import open_session

    with tempfile.TemporaryDirectory() as tmp:
        s = open_session(args.config, run_dir=Path(tmp) / "run", report_dir=Path(tmp) / "rep",
                         overrides={"semantic_ids.embedding_cache": None})
        prepare_semantic_ids(s, progress=False)  # the data stage is timed too: it is part of a cold run
        rec = s.run.read_record("semantic_ids")["summary"]
        return {"embedding_s": rec["seconds"]["embedding"], "rqvae_s": rec["seconds"]["fit"],
                "epochs": rec["fit"]["epochs_run"], "collision_rate_raw": rec["before"]["collision_rate"],
                "codebook_sizes": rec["codebook_sizes"]}


def phase_embed(args: argparse.Namespace) -> dict:
    import torch

    from agrec.data.movielens import load_atomic
    from agrec.semantic_ids.embed import encode_minilm

    torch.set_num_threads(args.threads)
    ds = load_atomic(None, "ml-100k", 3, True)
    t0 = time.perf_counter()
    emb = encode_minilm(ds.item_text, progress=False)
    import numpy as np

    np.save(args.emb_out, emb)
    return {"items": len(ds.item_text), "dim": int(emb.shape[1]), "encode_s": time.perf_counter() - t0}


def phase_rqvae(args: argparse.Namespace) -> dict:
    import dataclasses

    import numpy as np
    import torch

    from agrec.config import load_profile
    from agrec.semantic_ids.train import train_rqvae

    torch.set_num_threads(args.threads)
    cfg = load_profile(args.config).semantic_ids.rqvae
    if args.rqvae_epochs is not None:
        cfg = dataclasses.replace(cfg, epochs=args.rqvae_epochs)
    res = train_rqvae(np.load(args.emb_in), cfg, seed=2024, progress=False)
    return {"epochs": cfg.epochs, "shape": f"{cfg.n_levels}x{cfg.codebook_size}x{cfg.code_dim}",
            "collision_rate_raw": res.summary["collision_rate"], "train_s": res.seconds}


PHASES = {"stage": phase_stage, "embed": phase_embed, "rqvae": phase_rqvae}


def child(args: argparse.Namespace) -> None:
    w0, c0 = time.perf_counter(), time.process_time()
    out = PHASES[args.phase](args)
    out.update(wall_s=time.perf_counter() - w0, cpu_s=time.process_time() - c0,
               peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    Path(args.result).write_text(json.dumps(out))


# -- driver -------------------------------------------------------------------------------------------

def run_phase(phase: str, extra: list[str], env: dict) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        result = f.name
    cmd = [sys.executable, __file__, "--phase", phase, "--result", result, *extra]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, cwd=ROOT)
    out = json.loads(Path(result).read_text())
    out["process_s"] = time.perf_counter() - t0  # including interpreter start and imports
    os.unlink(result)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--config", default=str(QUICK))
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="torch threads to compare")
    p.add_argument("--rqvae-epochs", type=int, default=100, help="epochs of the side-by-side RQ-VAE rows "
                   "(the stage row always uses the profile's); 2 threads on a busy 2-core machine can be "
                   "more than 10x slower, so the default keeps those rows short")
    p.add_argument("--skip-stage", action="store_true")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "semantic_ids"))
    # child-process arguments
    p.add_argument("--phase", choices=sorted(PHASES))
    p.add_argument("--result")
    p.add_argument("--threads-child", dest="threads_child", type=int)
    p.add_argument("--emb-out")
    p.add_argument("--emb-in")
    args = p.parse_args()
    if args.phase:
        args.threads = args.threads_child
        child(args)
        return

    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    load_before = os.getloadavg()
    rows = []
    if not args.skip_stage:
        r = run_phase("stage", ["--config", args.config], env)
        rows.append({"phase": "stage (quick profile, cold)", "threads": "profile", **r})
        print(f"stage: {r['process_s']:.1f} s, peak {r['peak_rss_mb']:.0f} MB", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        emb = str(Path(tmp) / "emb.npy")
        for t in args.threads:
            r = run_phase("embed", ["--threads-child", str(t), "--emb-out", emb], env)
            rows.append({"phase": "embed (MiniLM, 1,682 texts)", "threads": t, **r})
            print(f"embed@{t}: {r['wall_s']:.1f} s", flush=True)
        for t in args.threads:
            extra = ["--threads-child", str(t), "--emb-in", emb, "--config", args.config]
            extra += ["--rqvae-epochs", str(args.rqvae_epochs)]
            r = run_phase("rqvae", extra, env)
            rows.append({"phase": f"rqvae ({r['shape']}, {r['epochs']} epochs)", "threads": t, **r})
            print(f"rqvae@{t}: {r['wall_s']:.1f} s", flush=True)

    import pandas as pd

    df = pd.DataFrame(rows)
    cols = ["phase", "threads", "wall_s", "cpu_s", "process_s", "peak_rss_mb"]
    table = df[cols].to_markdown(index=False, floatfmt=".1f")
    meta = {"machine": platform.platform(), "cpus": os.cpu_count(), "python": sys.version.split()[0],
            "loadavg_before": load_before, "loadavg_after": os.getloadavg(), "config": os.path.relpath(args.config, ROOT),
            "goal": "stage (embedding + RQ-VAE) < 180 s on a 2-core CPU"}
    print(table)
    print(f"load average before/after: {load_before} / {meta['loadavg_after']}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2, default=str) + "\n")
    md = [f"# Semantic-ID stage benchmark ({meta['config']})", "",
          f"{meta['machine']}, {meta['cpus']} CPUs; load average before {load_before[0]:.2f}, after "
          f"{meta['loadavg_after'][0]:.2f} (a shared machine: compare rows of this run only).", "",
          "wall_s: the phase itself; process_s: including interpreter start and imports; peak_rss_mb: the "
          "process's peak resident memory.", "", table, ""]
    out.with_suffix(".md").write_text("\n".join(md))


if __name__ == "__main__":
    main()
