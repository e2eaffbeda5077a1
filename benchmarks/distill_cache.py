"""``lm.distill_cache`` on a real run: are the cached teacher targets the uncached ones, and what does a step save?

    python benchmarks/distill_cache.py --config configs/games-cpu-collab-branch.yaml --set seed=2026 \
        --set pipeline.variant=seeds/2026 --epochs 8 --time-steps 40

For a profile with a distillation teacher whose run has its SASRec trained (``<run>/baselines/sasrec/``; nothing
is trained here), the LM stage's own training rows and batches (its plan for each epoch, from the seed), and:

- **equality**: the trainer's cache filled as training fills it (every row once, in batches of rows sorted by
  length), then every batch of the first ``--epochs`` epochs computed both ways, without the cache (the teacher
  over the batch, as each epoch does) and from the cache. A batch counts as identical when its path targets, its
  off-path prefixes, their targets, weights, positions and attention mask are equal bit for bit. Identical in every
  batch of every epoch means training with the cache is training without it (the rest of a step is the same code
  on the same values; ``tests/lm/test_target_cache.py`` checks that on a toy run);
- **cost**: full training steps (forward and backward of the profile's loss, a fresh model) on the first
  ``--time-steps`` batches of epoch 2, without the cache, with it, and without a teacher, interleaved batch by
  batch so that other load on the machine falls on all three alike; wall time per step at the profile's thread
  count (each step its fastest of two rounds). The cache's fill time and size are reported beside.

Results: ``benchmarks/results/distill_cache_<dataset>.md`` (one section per run folder, replaced on a rerun).
"""

from __future__ import annotations

import argparse
import dataclasses
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from agrec.baselines.stage import is_reusable, train_sasrec
from agrec.data.stage import load_run_data
from agrec.errors import AgrecError
from agrec.lm.distill import sasrec_teacher
from agrec.lm.loss import SupervisedNLL
from agrec.lm.stage import make_training_job, resolve_codes
from agrec.run.launch import add_set_option, parse_sets
from agrec.run.session import open_session

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gap_by_history import write_section  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def same(a, b) -> tuple[bool, float]:
    """Whether two ``targets`` outputs are equal bit for bit, and their largest absolute difference of values."""
    (h1, s1, b1), (h2, s2, b2) = a, b
    if not torch.equal(h1, h2) or s1.shape != s2.shape or (b1 is None) != (b2 is None):
        return False, float("inf")
    diff = float((s1 - s2).abs().max()) if len(s1) else 0.0
    equal = torch.equal(s1, s2)
    if b1 is not None:
        for x, y in zip(b1, b2, strict=True):
            if x.shape != y.shape:
                return False, float("inf")
            if x.is_floating_point():
                diff = max(diff, float((x - y).abs().max()) if x.numel() else 0.0)
            equal = equal and torch.equal(x, y)
    return equal, diff


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", required=True, type=Path)
    add_set_option(p)
    p.add_argument("--epochs", type=int, default=1, help="epochs whose every batch is compared (from the first)")
    p.add_argument("--time-steps", type=int, default=40, help="training steps timed per variant")
    p.add_argument("--max-batches", type=int, default=None, help="compare only each epoch's first N batches")
    args = p.parse_args()
    session = open_session(args.config, overrides={"lm.progress": False, **parse_sets(args.sets)})
    profile = session.profile
    cfg = profile.lm
    if cfg.distill_teacher != "sasrec":
        raise AgrecError(f"{args.config}: lm.distill_teacher is {cfg.distill_teacher!r}; this reads 'sasrec'")
    if not 1 <= args.epochs <= cfg.epochs or args.time_steps < 1:
        raise SystemExit(f"--epochs must be in 1..{cfg.epochs} and --time-steps >= 1")
    data = load_run_data(session)
    if not is_reusable(data):
        raise AgrecError(f"{session.run.root}: no trained SASRec of this profile; run the pipeline first")
    threads = profile.pipeline.num_threads or 1
    torch.set_num_threads(threads)
    teacher = sasrec_teacher(train_sasrec(data, progress=False).model)
    codes = resolve_codes(session, data.ds.n_items, data.ds.item_ids)
    split = data.split
    with tempfile.TemporaryDirectory() as tmp:

        def build(c, name):
            return make_training_job(
                c,
                codes,
                split.train,
                split.train,
                split.valid,
                Path(tmp) / name,
                profile.seed,
                "bench",
                teacher=teacher,
                log=lambda s: None,
            ).trainer

        plain = build(dataclasses.replace(cfg, distill_cache=False), "plain")
        cached = build(dataclasses.replace(cfg, distill_cache=True), "cached")
        torch.set_num_threads(threads)
        t0 = time.perf_counter()
        cached.fill_teacher_cache()
        fill_s = time.perf_counter() - t0
        rss_filled = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # GiB (Linux: KiB)
        dc, dp = cached.distiller, plain.distiller
        assert dc is not None and dp is not None and dc.cache is not None
        n_rows, n_entries, mib = len(plain.train), len(dc.cache), dc.cache_nbytes / 2**20
        model = plain.build_model(None)
        V = int(model.get_output_embeddings().weight.shape[0])
        per_epoch = []
        worst = 0.0
        for e in range(args.epochs):
            plan = plain.plan(e)[: args.max_batches]
            identical = 0
            for parts in plan:
                for idx in parts:
                    batch = plain.collate(idx)
                    eq, diff = same(dp.targets(*batch, V), dc.targets(*batch, V))
                    identical += eq
                    worst = max(worst, diff)
            per_epoch.append((e + 1, sum(len(x) for x in plan), identical))
            print(f"epoch {e + 1}: {identical:,} of {sum(len(x) for x in plan):,} batches identical", flush=True)
        # cost: a fresh model, its training loss with each distiller, interleaved on the same batches
        model.train()
        mods = {
            "without the cache": SupervisedNLL(model, cfg.label_smoothing, cfg.tiny.item_loss, dp),
            "with the cache": SupervisedNLL(model, cfg.label_smoothing, cfg.tiny.item_loss, dc),
            "no teacher": SupervisedNLL(model, cfg.label_smoothing, cfg.tiny.item_loss, None),
        }
        plan = plain.plan(min(1, cfg.epochs - 1))
        batches = [plain.collate(parts[0]) for parts in plan[: args.time_steps]]
        best = {k: [float("inf")] * len(batches) for k in mods}
        for _ in range(2):
            for i, b in enumerate(batches):
                for k, mod in mods.items():
                    t = time.perf_counter()
                    mod(*b).backward()
                    best[k][i] = min(best[k][i], time.perf_counter() - t)
                    model.zero_grad(set_to_none=True)
        ms = {k: 1000 * float(np.mean(v)) for k, v in best.items()}
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    total = sum(n for _, n, _ in per_epoch)
    same_all = sum(i for _, _, i in per_epoch)
    lines = [
        f"## {profile.name}" + (f" ({profile.pipeline.variant})" if profile.pipeline.variant else ""),
        "",
        f"`python benchmarks/distill_cache.py --config {args.config}"
        + "".join(f" --set {s}" for s in args.sets)
        + f" --epochs {args.epochs} --time-steps {args.time_steps}"
        + ("" if args.max_batches is None else f" --max-batches {args.max_batches}")
        + f"` at {commit}; {threads} thread(s); "
        f"lm.distill_branch_tokens {cfg.distill_branch_tokens}.",
        "",
        f"- Cache: {n_rows:,} training rows, {n_entries:,} distinct, {mib:,.0f} MiB of targets, filled in "
        f"{fill_s:.0f} s; this process's peak RSS after the fill {rss_filled:.2f} GiB (the teacher, the data and "
        "the cache).",
        f"- Equality: {same_all:,} of {total:,} batches identical bit for bit (epochs 1-{args.epochs}: "
        + ", ".join(f"{i:,}/{n:,}" for _, n, i in per_epoch)
        + f"); largest absolute difference of any target or weight {worst:.3g}.",
        f"- Wall time per training step, {len(batches)} steps of epoch {min(2, cfg.epochs)}, fastest of 2 rounds, "
        "interleaved: "
        + ", ".join(f"{k} {v:.1f} ms" for k, v in ms.items())
        + f"; with/without the cache {ms['with the cache'] / ms['without the cache']:.3f}.",
    ]
    out = RESULTS / f"distill_cache_{profile.data.dataset}.md"
    head = (
        f"# lm.distill_cache on {profile.data.dataset}\n\n"
        "Made by `benchmarks/distill_cache.py` (its docstring says what is compared and timed)."
    )
    write_section(out, head, lines[0][3:], lines)
    print("\n".join(lines))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
