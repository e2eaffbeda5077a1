"""Where does one row lose to another? Two rows of a finished decode stage, compared per history-length bucket.

    python benchmarks/gap_by_history.py --config configs/games-cpu-collab-distill.yaml \
        --run-dir runs/Games/cpu-collab-distill/seeds/2026 --rows "SASRec only" "w/o Graph" --edges 5 10 20

The users of both rows' test rankings are put into buckets by the number of items before their test item (the
split's history, not truncated to any model's window): ``(0, 5], (5, 10], (10, 20], (20, ∞)`` for ``--edges 5 10
20``. Per bucket: users, each row's NDCG@10, the relative gap, the paired Wilcoxon p, and the bucket's share of
the whole gap (its users' summed difference over all users' summed difference). Nothing is decoded again.
Results: ``benchmarks/results/gap_by_history_<dataset>.md`` (one section per run folder, replaced on a rerun).
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import numpy as np

from agrec.analysis.significance import paired_test, user_gains
from agrec.data.stage import load_run_data
from agrec.decode.stage import load_rankings
from agrec.errors import AgrecError
from agrec.io import atomic_write_text
from agrec.run.session import open_session

RESULTS = Path(__file__).resolve().parent / "results"


def buckets(lengths: np.ndarray, edges: list[int]) -> list[tuple[str, np.ndarray]]:
    """(label, mask) per bucket ``(lo, hi]`` of ``lengths [U]``, the last one open."""
    bounds = [0, *edges, None]
    out = []
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        mask = (lengths > lo) & (lengths <= hi) if hi is not None else lengths > lo
        out.append((f"({lo}, {hi}]" if hi is not None else f"> {lo}", mask))
    return out


def compare(a: np.ndarray, b: np.ndarray, lengths: np.ndarray, edges: list[int]) -> list[dict]:
    """Per bucket of ``lengths [U]``: NDCG@10 of the per-user gains ``a [U]`` and ``b [U]``, the gap ``1 - b/a``,
    Wilcoxon p, and the bucket's share of ``sum(a - b)``."""
    total = float((a - b).sum())
    rows = []
    for label, m in [*buckets(lengths, edges), ("all", np.ones_like(lengths, dtype=bool))]:
        if not m.any():
            continue
        ma, mb = float(a[m].mean()), float(b[m].mean())
        rows.append(
            {
                "bucket": label,
                "users": int(m.sum()),
                "a": ma,
                "b": mb,
                "gap": 1.0 - mb / ma if ma else float("nan"),
                "p": paired_test(a[m], b[m], "NDCG@10").p_value,
                "share": float((a[m] - b[m]).sum()) / total if total else float("nan"),
            }
        )
    return rows


def write_section(out: Path, head: str, name: str, lines: list[str]) -> None:
    """Write ``lines`` (starting ``## name``) into the markdown file ``out`` under its title ``head``: in place of
    the section of that name where there is one (a rerun keeps its place), after the others where there is not
    (atomically)."""
    old = re.split(r"(?m)^(?=## )", out.read_text(encoding="utf-8"))[1:] if out.is_file() else []
    sections = [s.rstrip() for s in old]
    new = "\n".join(lines)
    at = [i for i, s in enumerate(sections) if s.startswith(f"## {name}\n")]
    sections = [new if i == at[0] else s for i, s in enumerate(sections) if i not in at[1:]] if at else [*sections, new]
    atomic_write_text(out, "\n\n".join([head.rstrip(), *sections]) + "\n")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", required=True, type=Path)
    p.add_argument("--run-dir", type=Path, help="the run folder (default: the profile's)")
    p.add_argument("--rows", nargs=2, required=True, metavar=("A", "B"), help="two decode rows, e.g. 'SASRec only'")
    p.add_argument("--edges", nargs="+", type=int, default=[5, 10, 20], help="bucket bounds (history items)")
    args = p.parse_args()
    if sorted(set(args.edges)) != args.edges or args.edges[0] <= 0:
        raise SystemExit(f"--edges must be increasing positive integers, got {args.edges}")
    session = open_session(args.config, run_dir=args.run_dir)
    split = load_run_data(session).split
    ranked = [load_rankings(session.run.root / "decode", row, "test") for row in args.rows]
    users = ranked[0]["users"]
    for row, r in zip(args.rows, ranked, strict=True):
        if not np.array_equal(r["users"], users):
            raise AgrecError(f"{args.rows[0]!r} and {row!r} rank different test users")
        if not np.array_equal(r["targets"], split.test[users]):
            raise AgrecError(f"{row!r}: its test targets are not this run's split's")
    lengths = np.array([len(split.history(int(u), "test")) for u in users])
    a, b = (user_gains(r["items"], r["targets"])["NDCG@10"] for r in ranked)
    rows = compare(a, b, lengths, args.edges)
    root = session.run.root.resolve().parts  # named from the runs folder down, wherever the checkout lies
    where = "/".join(root[len(root) - root[::-1].index("runs") :]) if "runs" in root else str(session.run.root)
    name = f"{args.rows[0]} against {args.rows[1]}, runs/{where}"
    lines = [
        f"## {name}",
        "",
        f"`{args.config}`, test users by history length (items before the test item); NDCG@10, gap = 1 − B/A, "
        "Wilcoxon p, share of the whole gap.",
        "",
        f"| history | users | A: {args.rows[0]} | B: {args.rows[1]} | gap | p | share |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r['bucket']} | {r['users']:,} | {r['a']:.4f} | {r['b']:.4f} | {100 * r['gap']:.1f} % | {r['p']:.2g} | "
        f"{100 * r['share']:.0f} % |"
        for r in rows
    ]
    print("\n".join(lines), flush=True)
    dataset = session.profile.data.dataset
    out = RESULTS / f"gap_by_history_{dataset}.md"
    head = f"# Where one row loses to another, by history length: {dataset} (benchmarks/gap_by_history.py)\n"
    write_section(out, head, name, lines)


if __name__ == "__main__":
    main()
