"""Did a profile change help on test? The same rows of two profiles' reports, paired over users and pooled over seeds.

    python benchmarks/profile_pair.py reports/Games/cpu-collab-branch reports/Games/cpu-collab-distill \
        --rows "w/o Graph" "AGRec (selected)"

``agrec seeds`` tests rows of one profile against each other; this tests one row of profile A against the same row of
profile B, where both profiles split the same data the same way (same users, same test items) and differ in
something upstream (the LM, the codes). Each argument is a profile's report folder: its own seed's report at the
top, other seeds under ``seeds/<seed>/`` (``agrec seeds``' layout); a seed counts when both profiles have its
``results/decode_outcomes.npz`` (:func:`agrec.decode.outcomes.read_outcomes` checks each against its manifest and its
recorded metrics). Per seed and pooled over the common seeds, with the user as the unit (each user's outcome averaged
over seeds first, as ``agrec seeds`` pools): HR@K by the exact McNemar / sign test, NDCG@K by Wilcoxon with a
bootstrap 95 % interval of the mean difference (:func:`agrec.analysis.significance.paired_test`). Nothing is decoded
again, and nothing here chooses anything: it reads test outcomes that both runs already reported.

Results: ``benchmarks/results/profile_pair_<dataset>.md``, one section per pair of profiles (replaced on a rerun).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from agrec.analysis.significance import paired_test
from agrec.decode.outcomes import Outcomes, outcome_gains, read_outcomes
from agrec.errors import AgrecError
from agrec.run.seeds import SEEDS_DIR

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gap_by_history import write_section  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
KS = (5, 10)
METRICS = tuple(f"{m}@{k}" for k in KS for m in ("HR", "NDCG"))


def seed_reports(report: Path) -> dict[int, Outcomes]:
    """Every seed's outcomes under one profile's report folder (its own seed at the top, others in
    ``seeds/<seed>/``), by seed. A folder without outcomes is left out; one seed found twice is an error."""
    found: dict[int, Outcomes] = {}
    folders = [report, *sorted(p for p in (report / SEEDS_DIR).glob("*") if p.is_dir() and p.name.isdigit())]
    for folder in folders:
        o = read_outcomes(folder, required=False)
        if o is None:
            continue
        if o.seed in found:
            raise AgrecError(f"{report}: seed {o.seed} has outcomes in both {found[o.seed].path} and {o.path}")
        found[o.seed] = o
    if not found:
        raise AgrecError(f"{report}: no results/decode_outcomes.npz in it or in seeds/<seed>/ (run its decode stage)")
    return found


def paired_rows(a: dict[int, Outcomes], b: dict[int, Outcomes], rows: list[str]) -> tuple[list[int], list[dict]]:
    """For each row and each common seed (then pooled): both profiles' means and the paired test of A against B.
    Returns the common seeds and one dict per (row, seed or "pooled", metric)."""
    seeds = sorted(set(a) & set(b))
    if not seeds:
        raise AgrecError(f"no seed in common: A has {sorted(a)}, B has {sorted(b)}")
    for s in seeds:
        oa, ob = a[s], b[s]
        if not (np.array_equal(oa.users, ob.users) and np.array_equal(oa.targets, ob.targets)):
            raise AgrecError(
                f"seed {s}: {oa.path} and {ob.path} are not the same test users and items (another split?); "
                "only profiles over the same data split can be paired"
            )
        for row in rows:
            for o in (oa, ob):
                if row not in o.ranks:
                    raise AgrecError(f"{o.path}: no row {row!r} (rows: {', '.join(o.ranks)})")
    out = []
    for row in rows:
        gains_a = [outcome_gains(a[s], row, KS) for s in seeds]
        gains_b = [outcome_gains(b[s], row, KS) for s in seeds]
        for i, label in [*enumerate(seeds), (None, "pooled")]:
            for m in METRICS:
                ga = np.stack([g[m] for g in gains_a]) if i is None else gains_a[i][m]
                gb = np.stack([g[m] for g in gains_b]) if i is None else gains_b[i][m]
                t = paired_test(ga, gb, m)
                out.append({"row": row, "seed": label, "metric": m, "test": t})
    return seeds, out


def section(name: str, a: Path, b: Path, seeds: list[int], results: list[dict]) -> list[str]:
    lines = [
        f"## {name}",
        "",
        f"A = `{a}`, B = `{b}`; seeds in common: {', '.join(map(str, seeds))}. Test, all users of the split; "
        "p: exact McNemar (one seed) / sign test on seed-averaged users (HR), Wilcoxon signed-rank (NDCG); "
        "CI: paired bootstrap 95 % of the mean NDCG difference A - B.",
        "",
        "| row | seed | metric | A | B | A - B | relative | p | 95 % CI | users A better / worse |",
        "|---|---|---|---:|---:|---:|---:|---:|---|---|",
    ]
    for r in results:
        t = r["test"]
        rel = t.mean_diff / t.other_mean if t.other_mean else float("nan")
        ci = f"[{t.ci_low:+.4f}, {t.ci_high:+.4f}]" if t.ci_low is not None else ""
        lines.append(
            f"| {r['row']} | {r['seed']} | {r['metric']} | {t.reference_mean:.4f} | {t.other_mean:.4f} | "
            f"{t.mean_diff:+.4f} | {rel:+.1%} | {t.p_value:.2g} | {ci} | {t.n_better} / {t.n_worse} |"
        )
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("a", type=Path, help="profile A's report folder, e.g. reports/Games/cpu-collab-branch")
    p.add_argument("b", type=Path, help="profile B's report folder (the reference)")
    p.add_argument("--rows", nargs="+", default=["w/o Graph", "AGRec (selected)"], help="decode rows to compare")
    args = p.parse_args()
    a, b = seed_reports(args.a), seed_reports(args.b)
    seeds, results = paired_rows(a, b, args.rows)
    dataset = a[seeds[0]].config.get("data", {}).get("dataset") or args.a.parent.name
    name = f"{args.a.name} against {args.b.name}"
    out = RESULTS / f"profile_pair_{dataset}.md"
    head = (
        f"# {dataset}: one row of two profiles, paired on test\n\n"
        "Made by `benchmarks/profile_pair.py` (see its docstring); one section per pair of profiles."
    )
    lines = section(name, args.a, args.b, seeds, results)
    write_section(out, head, name, lines)
    print("\n".join(lines))
    print(f"-> {out}")


if __name__ == "__main__":
    main()
