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

``--packing`` measures ``lm.batching`` instead (results: benchmarks/results/lm_packing.json and .md):
the tiny LM of the quick profile (fp32, batch 32, Eq. 7 windows of 21 items) on Amazon Instruments
(``data/Instruments``, LC-Rec format with its ``Instruments.index.json`` codes) with ``pad``, ``bucket``
and ``pack``, the last two also with batches of 80 samples (``:b80``, about the real tokens per step of
MovieLens-100k's batches of 32), and on MovieLens-100k with ``pad`` for reference: the trainer's first optimizer steps of epoch 0
(its plan, collation, loss, clipping, AdamW, schedule), all cases in one process, interleaved step
by step so that other load on a shared machine falls on all alike; ``--rounds`` repetitions from
fresh models, each step counted with its fastest round. Real (non-padding) tokens per second of
step time.

    nice -n 19 python benchmarks/lm_train.py --packing --threads 2 --steps 100 --rounds 1

Another dataset's shipped CPU profile is a case too (``--cases games:bucket games:bucket:b64`` times Games' LM
at 32 and 64 samples per step, side by side), with ``--out`` naming where its results go.
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
    from agrec.run.session import open_session

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


# -- lm.batching on short sequences (--packing) ---------------------------------------------------------
# dataset:batching[:b<batch size>]; b80: ~2,700 real tokens per step on Instruments, as ML-100k's batches of 32
PACKING_CASES = ["instruments:pad", "instruments:bucket", "instruments:pack", "instruments:bucket:b80",
                 "instruments:pack:b80", "ml100k:pad"]
INSTRUMENTS_PROFILE = """\
# Amazon Instruments with the quick profile's tiny LM (written by benchmarks/lm_train.py --packing)
name: bench
seed: 2024
data: {{dataset: Instruments, format: lcrec, path: {data}, min_seq_len: 3}}
pipeline: {{stages: [data, semantic_ids, lm], num_threads: 2, runs_dir: runs, reports_dir: reports}}
lm:
  backbone: tiny
  codes: semantic_ids      # the dataset's Instruments.index.json codes (de-duplicated)
  samples: eq7
  max_history: 20
  batch_size: 32
  lr: 1.0e-3
  precision: fp32
  tiny: {{hidden_size: 128, num_layers: 4, num_heads: 4, num_kv_heads: 4, intermediate_size: 512}}
"""


def _packing_profile(dataset: str, cache: Path) -> tuple[Path, dict]:
    """The profile of ``dataset`` and its overrides (data and codes computed once under ``cache``).
    ``instruments``: the quick profile's plain tiny LM on Instruments; ``ml100k``: the quick profile; any other
    name: that dataset's shipped CPU profile as it is (``configs/<name>-cpu.yaml``, e.g. Games' item-embedding LM)."""
    if dataset not in ("ml100k", "instruments"):
        path = ROOT / "configs" / f"{dataset}-cpu.yaml"
        if not path.is_file():
            raise SystemExit(f"--cases: no profile {path} for dataset {dataset!r}")
        return path, {}
    if dataset == "ml100k":
        emb = cache / "embeddings"
        emb.mkdir(parents=True, exist_ok=True)
        return PROFILES["tiny"], {"semantic_ids.embedding_cache": str(emb)}
    path = cache / "instruments-tiny.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(INSTRUMENTS_PROFILE.format(data=ROOT / "data" / "Instruments"))
    return path, {}


def _packing_job(case: str, threads: int, n: int, cache: Path):
    """The training job of one ``dataset:batching`` case (data and codes computed once under ``cache``)."""
    from agrec.data.stage import prepare_data
    from agrec.lm.stage import make_training_job, resolve_codes
    from agrec.run.session import open_session

    dataset, batching, *rest = case.split(":")
    profile, overrides = _packing_profile(dataset, cache)
    if rest:  # dataset:batching:b<N>: another batch size (samples per step)
        overrides["lm.batch_size"] = int(rest[0].lstrip("b"))
    overrides = {**overrides, "lm.batching": batching, "lm.num_threads": threads, "lm.max_steps": n,
                 "lm.progress": False, "lm.grad_accum": 1, "lm.save_every_steps": 0, "lm.epochs": 1}
    session = open_session(profile, run_dir=cache / f"run-{dataset}", report_dir=cache / f"rep-{dataset}",
                           overrides=overrides)
    ds, split = prepare_data(session)
    codes = resolve_codes(session, ds.n_items, ds.item_ids)
    tmp = Path(tempfile.mkdtemp(prefix="agrec-bench-"))
    return make_training_job(session.profile.lm, codes, split.train, split.train[:32], split.valid[:32], tmp,
                             session.profile.seed, "bench", Path(session.profile.source).parent, log=lambda s: None)


def _trainer_steps(job, n: int):
    """The trainer's optimizer steps on the first ``n`` batches of epoch 0, one per ``next()``: the same
    collation, loss normalisation, clipping, AdamW and schedule as :meth:`Trainer.fit` (which cannot be
    interleaved with other runs step by step). Yields ``(wall s, CPU s, real tokens, positions, loss)``; with
    one thread the CPU seconds are the compute alone, without the waits for a busy machine's cores."""
    import torch

    from agrec.lm.loss import SupervisedNLL
    from agrec.lm.trainer import lr_lambda

    t, cfg = job.trainer, job.trainer.cfg
    model = job.built.model
    model.train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in trainable if p.ndim >= 2], "weight_decay": cfg.weight_decay},
              {"params": [p for p in trainable if p.ndim < 2], "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.999), eps=1e-8, foreach=False)
    total = t.total_steps()
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(int(round(cfg.warmup_ratio * total)), total,
                                                             cfg.schedule))
    loss_mod = SupervisedNLL(model)
    for parts in t.plan(0)[:n]:
        idx = parts[0]
        n_sup = int(t._n_sup[idx].sum())
        t0, c0 = time.perf_counter(), time.process_time()
        batch = t.collate(idx)
        with t._autocast():
            nll = loss_mod(*batch)
        (nll / max(1, n_sup)).backward()
        torch.nn.utils.clip_grad_norm_(trainable, cfg.max_grad_norm)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        dt, dc = time.perf_counter() - t0, time.process_time() - c0
        yield dt, dc, int(t._lengths[idx].sum()), int(batch[0].numel()), float(nll.detach()) / max(1, n_sup)


def run_packing_cases(cases: list[str], threads: int, steps: int, warmup: int, rounds: int, cache: Path) -> list[dict]:
    """All cases in this process, interleaved step by step (so that load from other processes on a
    shared machine falls on every case alike), ``rounds`` times from fresh models; each step counts
    with its fastest round."""
    import torch

    torch.set_num_threads(threads)
    torch.set_flush_denormal(True)  # as the trainer does on CPU
    n = warmup + steps
    times = {c: [] for c in cases}
    cpu = {c: [] for c in cases}
    info: dict[str, dict] = {}
    for r in range(rounds):
        jobs = {c: _packing_job(c, threads, n, cache) for c in cases}
        for c, job in jobs.items():
            if len(job.trainer.plan(0)) < n:
                raise RuntimeError(f"{c}: an epoch has {len(job.trainer.plan(0))} steps, fewer than {n}")
        torch.set_num_threads(threads)  # after the sessions, which apply pipeline.num_threads
        iters = {c: _trainer_steps(job, n) for c, job in jobs.items()}
        rows = {c: [] for c in cases}
        for i in range(n):
            for c in cases:
                rows[c].append(next(iters[c]))
            if (i + 1) % 10 == 0:
                print(f"round {r + 1}: step {i + 1}/{n}", flush=True)
        for c in cases:
            times[c].append([x[0] for x in rows[c][warmup:]])
            cpu[c].append([x[1] for x in rows[c][warmup:]])
            job = jobs[c]
            lengths = job.train.lengths
            cur = {"case": c, "dataset": c.split(":")[0], "batching": c.split(":")[1], "threads": threads,
                   "batch_size": job.trainer.cfg.batch_size,
                   "pack_length": job.trainer.pack_length if c.split(":")[1] == "pack" else None,
                   "train_samples": len(job.train), "vocab": len(job.built.tokenizer),
                   "params": sum(q.numel() for q in job.built.model.parameters()), "mean_sample_len": round(float(lengths.mean()), 2),
                   "max_sample_len": int(lengths.max()), "timed_steps": steps,
                   "tokens": sum(x[2] for x in rows[c][warmup:]), "slots": sum(x[3] for x in rows[c][warmup:]),
                   "losses": [round(x[4], 5) for x in rows[c]]}
            if r and cur["losses"] != info[c]["losses"]:
                raise RuntimeError(f"{c}: rounds trained differently (not deterministic)")
            info[c] = cur
        print(f"round {r + 1}: " + ", ".join(f"{c} {info[c]['tokens'] / sum(times[c][-1]):,.0f} tok/s" for c in cases),
              flush=True)
    results = []
    for c in cases:
        best = [min(rt[i] for rt in times[c]) for i in range(steps)]
        best_cpu = [min(rt[i] for rt in cpu[c]) for i in range(steps)]
        out = {k: v for k, v in info[c].items() if k != "losses"}
        out.update(tokens_per_s=round(out["tokens"] / sum(best), 1), best_step_s=sum(best) / steps,
                   tokens_per_cpu_s=round(out["tokens"] / sum(best_cpu), 1), best_step_cpu_s=sum(best_cpu) / steps,
                   real_share=round(out["tokens"] / out["slots"], 4),
                   round_tokens_per_s=[round(out["tokens"] / sum(rt), 1) for rt in times[c]],
                   first_losses=info[c]["losses"][:5])
        results.append(out)
    return results


def _packing_markdown(results: list[dict], command: str) -> str:
    ref = {r["case"]: r for r in results}
    base_i, base_m = ref.get("instruments:pad"), ref.get("ml100k:pad")
    lines = [f"Command: `{command}`", "",
             "| case | batch | vocab / params | samples | mean / max sample len | real tokens / step | real share of computed positions "
             "| real tokens/s (wall) | / Instruments pad | / ML-100k pad | real tokens / CPU s | / Instruments pad "
             "| / ML-100k pad | wall s / step | CPU s / step |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        rel_i = f"{r['tokens_per_s'] / base_i['tokens_per_s']:.2f}" if base_i else "-"
        rel_m = f"{r['tokens_per_s'] / base_m['tokens_per_s']:.2f}" if base_m else "-"
        crel_i = f"{r['tokens_per_cpu_s'] / base_i['tokens_per_cpu_s']:.2f}" if base_i else "-"
        crel_m = f"{r['tokens_per_cpu_s'] / base_m['tokens_per_cpu_s']:.2f}" if base_m else "-"
        name = r["case"] + (f" (rows of {r['pack_length']})" if r["pack_length"] else "")
        lines.append(f"| {name} | {r['batch_size']} | {r['vocab']:,} / {r['params']:,} | {r['train_samples']:,} | {r['mean_sample_len']} / {r['max_sample_len']} | "
                     f"{r['tokens'] / r['timed_steps']:,.0f} | {r['real_share']:.2f} | {r['tokens_per_s']:,.0f} | "
                     f"{rel_i} | {rel_m} | {r['tokens_per_cpu_s']:,.0f} | {crel_i} | {crel_m} | "
                     f"{r['best_step_s']:.4f} | {r['best_step_cpu_s']:.4f} |")
    return "\n".join(lines) + "\n"


def run_packing(args) -> int:
    import platform

    import torch

    cache = Path(args.cache)
    steps = args.steps or 100
    rounds = args.rounds or 2
    cases = args.cases if args.cases != DEFAULT_CASES else PACKING_CASES
    results = run_packing_cases(cases, args.threads, steps, args.warmup, rounds, cache)
    ref = {r["case"]: r for r in results}
    # each case against the two standard references, and against the first case (another dataset's cases)
    bases = [b for b in dict.fromkeys(("instruments:pad", "ml100k:pad", results[0]["case"])) if b in ref]
    ratios = {}
    for r in results:
        for base in bases:
            if r["case"] != base:
                ratios[f"{r['case']} / {base}"] = round(r["tokens_per_s"] / ref[base]["tokens_per_s"], 3)
                ratios[f"{r['case']} / {base} (CPU time)"] = round(
                    r["tokens_per_cpu_s"] / ref[base]["tokens_per_cpu_s"], 3)
    command = "nice -n 19 python benchmarks/lm_train.py " + " ".join(sys.argv[1:])
    meta = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
            "torch": torch.__version__, "command": command, "steps": steps, "warmup": args.warmup, "rounds": rounds,
            "threads": args.threads, "note": "shared machine; compare ratios within one run"}
    out = Path(args.out if args.out != str(ROOT / "benchmarks" / "results" / "lm_train")
               else ROOT / "benchmarks" / "results" / "lm_packing")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps({"meta": meta, "ratios": ratios, "results": results}, indent=2)
                                        + "\n")
    md = _packing_markdown(results, command)
    out.with_suffix(".md").write_text(
        f"# lm.batching on short sequences: real tokens/s of the tiny LM\n\n{meta['machine']}, torch {meta['torch']}, "
        f"{args.threads} thread(s), {steps} timed steps (+{args.warmup} warm-up) per case, {rounds} interleaved rounds "
        f"(fastest round per step); {meta['note']}.\n\n" + md + "\nRatios: " +
        ", ".join(f"{k} = {v}" for k, v in ratios.items()) + "\n")
    print(md)
    print(json.dumps(ratios, indent=1))
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cases", nargs="*", default=DEFAULT_CASES, help="backbone:precision:threads")
    p.add_argument("--steps", type=int, default=None, help="timed steps (default 10 for tiny, 3 for smollm2)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--rounds", type=int, default=None, help="repetitions, fastest per step kept (default 4 tiny, 2 smollm2)")
    p.add_argument("--no-loading", action="store_true", help="skip the SmolLM2 conversion/reload timing")
    p.add_argument("--packing", action="store_true", help="lm.batching pad/bucket/pack on Instruments vs ML-100k pad")
    p.add_argument("--threads", type=int, default=2, help="--packing: torch threads (the quick profile's 2)")
    p.add_argument("--cache", default=str(Path(tempfile.gettempdir()) / "agrec-bench-packing"),
                   help="--packing: folder for the data and code stages, computed once")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "lm_train"))
    args = p.parse_args()
    if args.packing:
        return run_packing(args)
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
