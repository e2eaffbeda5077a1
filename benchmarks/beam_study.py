"""Beam size at decode: does a wider beam rank the next item better, and at what cost? (Validation only.)

    PYTHONPATH=$PWD .venv/bin/python benchmarks/beam_study.py --config configs/games-cpu-collab-distill.yaml \
        --set seed=2025 --set pipeline.variant=seeds/2025 --label "seed 2025" --scorer sasrec --alpha 0.4
    PYTHONPATH=$PWD .venv/bin/python benchmarks/beam_study.py --report

The profile's trained LM (its run folder's lm stage, which must be current: nothing is trained here) decodes the
validation item of ``--users`` validation users at each of ``--beams`` (trie-constrained beam search, the decode
stage's ``decode`` settings otherwise, each user's history left out): the LM alone (α = 0), and with
``--scorer``/``--alpha``/``--tau`` also AGRec steered by that scorer's top-n FSM at that point. The users are
drawn with the profile's seed from the validation users outside the LM's epoch-selection sample
(``lm.select_users``) and outside the decode stage's α-selection sample (``evaluation.select_users``); SASRec and
the GNN chose their epochs on every validation user, which all beams share. Every beam is compared with the
profile's ``decode.beam_size`` on the same users (paired: exact sign test for HR@10, Wilcoxon for NDCG@10;
:mod:`agrec.analysis.significance`), with the mean difference (this beam − the profile's).
Nothing here reads a test item.

Results: ``benchmarks/results/beam_study_<dataset>_<profile>_<label>.json``; ``--report`` writes
``benchmarks/results/beam_study.md`` from all of them. Seconds are wall time on a shared machine: compare beams of
one run (they run one after another in one process), not across runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import sys
import time
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
KS = (5, 10)


def run(args: argparse.Namespace) -> dict:
    import torch

    from agrec.analysis.significance import paired_test, user_gains
    from agrec.baselines.stage import is_reusable as sasrec_reusable
    from agrec.data.stage import load_run_data
    from agrec.decode import ItemTrie, generate_items
    from agrec.decode.evaluate import build_inputs, scorer_rankings, unselected_users
    from agrec.errors import AgrecError
    from agrec.lm.stage import load_lm
    from agrec.run.launch import parse_sets
    from agrec.run.lineage import stage_status
    from agrec.run.session import open_session
    from agrec.scorers import load_scorer

    session = open_session(args.config, run_dir=args.run_dir, overrides=parse_sets(args.sets))
    profile = session.profile
    bad = [b for b in args.beams if b < 10]
    if bad:
        raise AgrecError(f"--beams: NDCG@10 needs at least 10 beams, got {bad}")
    st = stage_status(profile, session.run, "lm")
    if not st.current:
        raise AgrecError(f"{session.run.root}: the lm stage is {st.state} ({'; '.join(st.reasons)}); train it first")
    if args.scorer == "sasrec" and not sasrec_reusable(session):
        raise AgrecError(f"{session.run.root}: no current SASRec in baselines/sasrec; nothing is trained here")
    if args.scorer and args.scorer != "sasrec" and not stage_status(profile, session.run, "gnn").current:
        raise AgrecError(f"{session.run.root}: the gnn stage is not current; nothing is trained here")
    torch.set_num_threads(args.threads)
    data = load_run_data(session)
    split = data.split
    bundle = load_lm(session)
    trie = ItemTrie.build(bundle.item_token_ids)
    # users that chose nothing: outside the LM's epoch-selection sample and the decode stage's α-selection sample
    alpha_sample = profile.evaluation.select_users is not None and profile.evaluation.select_users < split.n_users
    users = unselected_users(profile, split.n_users, args.users)
    if len(users) == 0:
        raise AgrecError(f"{args.config}: every validation user is in a selection sample; no user is left to study")
    inp = build_inputs(split, bundle.prompt_ids, "valid", users, profile.evaluation.exclude_history)
    fsm = None
    if args.scorer:
        scorer = load_scorer(data, args.scorer, lm=bundle)
        top = scorer_rankings(scorer, {"valid": inp}, profile.decode.top_n)["valid"]
        fsm = (top.items, top.scores)
    rows = {"LM alone": (0.0, None)}
    if fsm is not None:
        rows[f"AGRec ({args.scorer}) α={args.alpha:g}"] = (args.alpha, fsm)
    beams = sorted(set(args.beams) | {profile.decode.beam_size})  # the profile's beam is every test's reference
    out_rows, gains = [], {}
    for beam in beams:
        for name, (alpha, f) in rows.items():
            # the decode stage's settings, at this beam (τ: --tau, the profile's chosen one where its grid has one)
            cfg = dataclasses.replace(profile.decode, alpha=alpha, beam_size=beam, tau=args.tau)
            t0 = time.perf_counter()
            res = generate_items(
                bundle.model,
                inp.prompts,
                trie,
                fsm_inputs=f,
                cfg=cfg,
                exclude=inp.exclude,
                k=10,
                pad_token_id=bundle.pad_token_id,
            )
            sec = time.perf_counter() - t0
            items = res.items.numpy()
            gains[(name, beam)] = user_gains(items, inp.targets, KS)
            m = {k: float(g.mean()) for k, g in gains[(name, beam)].items()}  # evaluate_rankings' numbers exactly
            out_rows.append(
                {"row": name, "beam": beam, **m, "seconds": round(sec, 1), "users_per_s": round(len(users) / sec, 1)}
            )
            print(f"{name} beam {beam}: NDCG@10 {m['NDCG@10']:.4f} HR@10 {m['HR@10']:.4f} ({sec:.0f} s)", flush=True)
    ref_beam = profile.decode.beam_size
    for r in out_rows:
        ref = gains.get((r["row"], ref_beam))
        if ref is None or r["beam"] == ref_beam:
            continue
        for metric in ("HR@10", "NDCG@10"):
            t = paired_test(gains[(r["row"], r["beam"])][metric], ref[metric], metric, n_resamples=999, seed=0)
            r[f"Δ{metric} vs beam {ref_beam}"] = t.mean_diff  # this beam − the profile's, over the same users
            r[f"p {metric}"] = t.p_value
    return {
        "config": str(args.config),
        "run_dir": str(session.run.root),
        "label": args.label,
        "dataset": profile.data.dataset,
        "profile": profile.name,
        "seed": profile.seed,
        "users": len(users),
        "threads": args.threads,
        "profile_beam": ref_beam,
        "outside_alpha_sample": alpha_sample,
        "outside_lm_selection_sample": profile.lm.select == "ndcg",
        "rows": out_rows,
    }


def report() -> Path:
    import pandas as pd

    lines = [
        "# Beam size at decode (validation only)",
        "",
        "`benchmarks/beam_study.py`: the trained LM of a run decodes the validation item of users outside its "
        "epoch-selection sample at each beam size; p: paired tests against the profile's beam on the same "
        "users. Seconds: one process, beams one after another (compare within a run).",
        "",
    ]
    for path in sorted(RESULTS.glob("beam_study_*.json")):
        d = json.loads(path.read_text())
        lines += [
            f"## {d['dataset']} / {d['profile']} ({d['label']}), {d['users']} validation users, {d['threads']} threads",
            "",
            f"run: `{d['run_dir']}`; profile beam {d['profile_beam']}",
            "",
        ]
        df = pd.DataFrame(d["rows"]).astype(object).where(lambda x: x.notna(), "")
        lines += [df.to_markdown(index=False, floatfmt=".4g"), ""]
    out = RESULTS / "beam_study.md"
    out.write_text("\n".join(lines))
    return out


def main() -> int:
    from agrec.run.launch import add_set_option

    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--config")
    p.add_argument("--run-dir", default=None)
    add_set_option(p, "profile override (repeatable), e.g. seed=2025")
    p.add_argument("--label", default="run")
    p.add_argument("--users", type=int, default=2048)
    p.add_argument("--beams", type=int, nargs="+", default=[10, 20, 40])
    p.add_argument("--scorer", default=None)
    p.add_argument("--alpha", type=float, default=0.4)
    p.add_argument("--tau", type=float, default=1.0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--report", action="store_true")
    args = p.parse_args()
    if args.report:
        print(report())
        return 0
    if not args.config:
        p.error("--config is required unless --report")
    res = run(args)
    name = re.sub(r"[^A-Za-z0-9]+", "_", f"{res['dataset']}_{res['profile']}_{args.label}").strip("_")
    path = RESULTS / f"beam_study_{name}.json"
    path.write_text(json.dumps(res, indent=1) + "\n")
    print(path)
    print(report())
    return 0


if __name__ == "__main__":
    sys.exit(main())
