"""Benchmark of the LM training loop: tokens/s, overhead over a bare step, peak memory, SmolLM2 loading.

    python benchmarks/lm_train.py                      # default cases (about 10 minutes on 2 cores)
    python benchmarks/lm_train.py --cases tiny:fp32:1 --steps 20

Each case ``backbone:precision:threads`` runs in a fresh process (so its peak RSS is its own) on
MovieLens-100k with the profile of that backbone (``tiny``: configs/ml100k-quick.yaml,
``smollm2-135m``: configs/ml100k-smollm2.yaml, gradient accumulation 1), and times, on the same
batches of the same freshly initialised model:

- ``ours``: :class:`agrec.lm.trainer.Trainer` (collation, autocast, loss normalisation, clipping,
  schedule, logging), its own per-step clock;
- ``bare_hf``: ``model(input_ids, attention_mask, labels).loss.backward(); opt.step(); opt.zero_grad()``
  on pre-collated tensors (the HF loss: logits over the whole vocabulary at every position);
- ``bare_same_loss``: the same bare loop with our loss (logits only at supervised positions).

``ours / bare_same_loss - 1`` is the loop's overhead; ``ours / bare_hf`` what a user gains or loses
against the plainest HF loop. The first ``--warmup`` steps of each are not timed; every timed step
counts with its fastest round (the one least disturbed by other processes on a shared machine).
Compare ratios measured in one run, not absolute numbers across runs.
Results: benchmarks/results/lm_train.json and .md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROFILES = {"tiny": ROOT / "configs" / "ml100k-quick.yaml", "smollm2-135m": ROOT / "configs" / "ml100k-smollm2.yaml"}
DEFAULT_CASES = ["tiny:fp32:1", "tiny:bf16:1", "tiny:fp32:2", "tiny:bf16:2", "smollm2-135m:fp32:1",
                 "smollm2-135m:bf16:1"]


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_case(backbone: str, precision: str, threads: int, steps: int, warmup: int, rounds: int) -> dict:
    """One case in this process (see the module docstring)."""
    import torch

    from agrec.data.stage import prepare_data
    from agrec.lm.loss import SupervisedNLL
    from agrec.lm.stage import make_training_job, resolve_codes
    from agrec.lm.trainer import collate
    from agrec.session import open_session

    torch.set_num_threads(threads)
    tmp = Path(tempfile.mkdtemp(prefix="agrec-bench-"))
    n = warmup + steps
    overrides = {"lm.precision": precision, "lm.num_threads": threads, "lm.max_steps": n, "lm.progress": False,
                 "lm.grad_accum": 1, "lm.save_every_steps": 0, "lm.epochs": 1}
    session = open_session(PROFILES[backbone], run_dir=tmp / "run", report_dir=tmp / "rep", overrides=overrides)
    cfg = session.profile.lm
    ds, split = prepare_data(session)
    codes = resolve_codes(session, ds.n_items, ds.item_ids)
    base_dir = Path(session.profile.source).parent
    quiet = lambda s: None  # noqa: E731
    n_valid = 32  # a short evaluation at the end of ours (not timed)

    def fresh(name: str):
        return make_training_job(cfg, codes, split.train, split.train[:n_valid], split.valid[:n_valid], tmp / name,
                                 session.profile.seed, "bench", base_dir, log=quiet)

    autocast = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if precision == "bf16" else contextlib.nullcontext

    def bare(job, same_loss: bool) -> list[float]:
        model = job.built.model
        model.train()
        plan = job.trainer.plan(0)[:n]
        batches = [collate(job.train, p[0], job.trainer.pad_id, torch.device("cpu")) for p in plan]
        loss_mod = SupervisedNLL(model)
        n_sup = [int(job.train.n_supervised[p[0]].sum()) for p in plan]
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.lr,
                                weight_decay=cfg.weight_decay)
        torch.set_flush_denormal(True)  # as the trainer does
        step_s = []
        for i, (ids, mask, labels) in enumerate(batches):
            t0 = time.perf_counter()
            with autocast():
                if same_loss:
                    loss = loss_mod(ids, mask, labels) / n_sup[i]
                else:
                    loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            step_s.append(time.perf_counter() - t0)
        torch.set_flush_denormal(False)
        return step_s[warmup:]

    times: dict[str, list[list[float]]] = {"ours": [], "bare_hf": [], "bare_same_loss": []}
    tokens = seqs = 0
    info: dict = {}
    for r in range(rounds):
        job = fresh(f"ours{r}")
        res = job.trainer.fit(resume=False)
        rows = res.state.steps
        clock = [0.0] + [row["train_time_s"] for row in rows]
        times["ours"].append([clock[i + 1] - clock[i] for i in range(warmup, n)])
        tokens = sum(row["tokens"] for row in rows[warmup:n])
        seqs = sum(len(p[0]) for p in job.trainer.plan(0)[warmup:n])
        info = {"params": res.params, "precision": res.precision, "batch_size": cfg.batch_size,
                "mean_seq_len": round(tokens / max(seqs, 1), 1)}
        if r == 0:  # the first thing this process trained: the peak memory of one training run
            peak_training = round(_peak_rss_mib(), 1)
        times["bare_hf"].append(bare(fresh(f"hf{r}"), same_loss=False))
        times["bare_same_loss"].append(bare(fresh(f"same{r}"), same_loss=True))
    # Each step is timed in every round on the same batch; its fastest round is the least disturbed
    # by the other processes on the machine. The sum over steps is the method's time.
    best = {k: sum(min(r[i] for r in v) for i in range(steps)) for k, v in times.items()}
    return {"case": f"{backbone}:{precision}:{threads}", "backbone": backbone, "precision": precision,
            "threads": threads, "timed_steps": steps, "tokens": tokens, **info,
            "tokens_per_s": {k: round(tokens / v, 1) for k, v in best.items()},
            "step_s": {k: round(v / steps, 4) for k, v in best.items()},
            "ours_over_bare_same_loss": round(best["ours"] / best["bare_same_loss"], 4),
            "ours_over_bare_hf": round(best["ours"] / best["bare_hf"], 4),
            "round_times_s": {k: [round(sum(r), 3) for r in v] for k, v in times.items()},
            "peak_rss_training_mib": peak_training, "peak_rss_process_mib": round(_peak_rss_mib(), 1)}


def run_smollm2_loading() -> dict:
    """Convert the GGUF once into a fresh cache (timed), then time a reload in this process."""
    from agrec.lm.backbones import load_pretrained, smollm2_checkpoint

    cache = Path(tempfile.mkdtemp(prefix="agrec-bench-cache-"))
    t0 = time.perf_counter()
    path = smollm2_checkpoint(cache, log=lambda s: None)
    convert_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    model, tok = load_pretrained(path)
    reload_s = time.perf_counter() - t0
    n = sum(p.numel() for p in model.parameters())
    import shutil

    shutil.rmtree(cache, ignore_errors=True)
    return {"case": "smollm2-135m loading", "convert_s": round(convert_s, 2), "reload_s": round(reload_s, 2),
            "params": n, "vocab": len(tok)}


def _sub(args: list[str]) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, env=env, cwd=ROOT)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    if out.returncode != 0 or not lines:
        raise RuntimeError(f"{args}: failed\n{out.stdout[-2000:]}\n{out.stderr[-4000:]}")
    return json.loads(lines[-1])


def _markdown(results: list[dict]) -> str:
    lines = ["| case | batch | mean seq len | tokens/s ours | tokens/s bare (same loss) | tokens/s bare (HF loss) "
             "| ours / bare same loss | ours / bare HF | trainable / total params | peak RSS of a run, MiB |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---|---:|"]
    for r in results:
        if "tokens_per_s" not in r:
            continue
        t = r["tokens_per_s"]
        lines.append(f"| {r['case']} | {r['batch_size']} | {r['mean_seq_len']} | {t['ours']:,.0f} | "
                     f"{t['bare_same_loss']:,.0f} | {t['bare_hf']:,.0f} | {r['ours_over_bare_same_loss']:.3f} | "
                     f"{r['ours_over_bare_hf']:.3f} | {r['params']['trainable']:,} / {r['params']['total']:,} | "
                     f"{r['peak_rss_training_mib']:,.0f} |")
    for r in results:
        if "convert_s" in r:
            lines += ["", f"SmolLM2-135M: GGUF -> safetensors conversion {r['convert_s']} s (once), reload "
                          f"{r['reload_s']} s ({r['params']:,} parameters, vocabulary {r['vocab']:,})."]
    return "\n".join(lines) + "\n"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cases", nargs="*", default=DEFAULT_CASES, help="backbone:precision:threads")
    p.add_argument("--steps", type=int, default=None, help="timed steps (default 10 for tiny, 3 for smollm2)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--rounds", type=int, default=None, help="repetitions, fastest per step kept (default 4 tiny, 2 smollm2)")
    p.add_argument("--no-loading", action="store_true", help="skip the SmolLM2 conversion/reload timing")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "lm_train"))
    args = p.parse_args()
    if args.worker == "loading":
        print(json.dumps(run_smollm2_loading()))
        return 0
    if args.worker:
        backbone, precision, threads = args.worker.split(":")
        small = backbone == "tiny"
        print(json.dumps(run_case(backbone, precision, int(threads), args.steps or (10 if small else 3),
                                  args.warmup, args.rounds or (4 if small else 2))))
        return 0
    results = []
    for case in args.cases:
        extra = [] if args.steps is None else ["--steps", str(args.steps)]
        extra += [] if args.rounds is None else ["--rounds", str(args.rounds)]
        r = _sub(["--worker", case, "--warmup", str(args.warmup), *extra])
        print(f"{case:24s} tokens/s ours {r['tokens_per_s']['ours']:>9,.0f}  bare {r['tokens_per_s']['bare_same_loss']:>9,.0f}"
              f"  bare-HF {r['tokens_per_s']['bare_hf']:>9,.0f}  ours/bare {r['ours_over_bare_same_loss']:.3f}"
              f"  ours/bare-HF {r['ours_over_bare_hf']:.3f}  peak RSS of a run {r['peak_rss_training_mib']:,.0f} MiB",
              flush=True)
        results.append(r)
    if not args.no_loading:
        r = _sub(["--worker", "loading"])
        print(f"smollm2-135m: conversion {r['convert_s']} s, reload {r['reload_s']} s", flush=True)
        results.append(r)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    import platform

    import torch

    meta = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs", "torch": torch.__version__,
            "note": "shared machine; compare ratios within one run"}
    out.with_suffix(".json").write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")
    out.with_suffix(".md").write_text(f"# LM training benchmark\n\n{meta['machine']}, torch {meta['torch']}; "
                                      f"{meta['note']}.\n\n" + _markdown(results))
    print(_markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
