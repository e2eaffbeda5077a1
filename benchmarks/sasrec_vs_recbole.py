"""Our SASRec (full-softmax CE) vs RecBole 1.2.1's SASRec (``loss_type: CE``) on MovieLens-100k, one run each.

Same leave-one-out split, same training pairs (RecBole reads pre-augmented benchmark files: one row per prefix
of a user's training sequence, its last ``max_seq_length`` items, and the next item; valid rows: the training
sequence -> the validation item; test rows: training + validation item -> the test item), the same model and
optimiser settings (RecBole's SASRec defaults unless overridden), the same selection (validation NDCG@10 every
``--eval-every`` epochs, ``--patience`` evaluations). RecBole's sequential full-sort evaluation does not mask the
user's history, so ours is selected and compared without masking here; the project's protocol (history masked)
is reported beside it for our model. Reports seconds per training epoch and test HR@10 / NDCG@10. Both sides train at the same time (two
processes, one torch thread each), so on a shared machine they see the same load.

RecBole runs in the isolated virtual environment of ``benchmarks/gnn_vs_recbole.py`` (created once).

    python benchmarks/sasrec_vs_recbole.py --epochs 20 --patience 3

Writes ``benchmarks/results/sasrec_vs_recbole[_<tag>].{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import agrec  # noqa: E402,F401  (first: sets OMP_WAIT_POLICY before torch loads OpenMP)
import torch  # noqa: E402

from agrec.baselines.config import SASRecConfig  # noqa: E402
from agrec.baselines.sasrec import SASRec  # noqa: E402
from agrec.baselines.scorer import SASRecScorer, evaluate_sasrec  # noqa: E402
from agrec.baselines.trainer import fit  # noqa: E402
from agrec.config import load_profile  # noqa: E402
from agrec.data.loaders import load_dataset  # noqa: E402
from agrec.data.split import leave_one_out  # noqa: E402
from gnn_vs_recbole import ensure_venv  # noqa: E402

DATASET = "ml100k_seq"


def write_atomic_files(ds, split, folder: Path, L: int) -> int:
    """``<DATASET>.{train,valid,test}.inter`` with raw ids and the (truncated) item list of each row."""
    folder.mkdir(parents=True, exist_ok=True)
    tok = ds.item_ids
    rows: dict[str, list[tuple[int, list[int], int]]] = {"train": [], "valid": [], "test": []}
    for u in range(split.n_users):
        s = list(split.train[u])
        rows["train"] += [(u, s[max(0, j - L):j], s[j]) for j in range(1, len(s))]
        rows["valid"].append((u, s[-L:], int(split.valid[u])))
        rows["test"].append((u, (s + [int(split.valid[u])])[-L:], int(split.test[u])))
    for name, part in rows.items():
        lines = ["user_id:token\titem_id_list:token_seq\titem_id:token"] + [
            f"{ds.user_ids[u]}\t{' '.join(str(tok[i]) for i in hist)}\t{tok[t]}" for u, hist, t in part]
        (folder / f"{DATASET}.{name}.inter").write_text("\n".join(lines) + "\n")
    return len(rows["train"])


def run_ours(ds, split, args) -> dict:
    torch.set_num_threads(args.threads)
    cfg = SASRecConfig(learning_rate=args.lr, batch_size=args.batch_size, epochs=args.epochs,
                       eval_every=args.eval_every, patience=args.patience, max_seq_length=args.max_seq_length,
                       train_stride=args.stride, exclude_history=False, progress=False)
    model = SASRec(cfg, ds.n_items, seed=args.seed)
    scorer = SASRecScorer(model, split)
    t0 = time.perf_counter()
    res = fit(model, split, cfg, args.seed, evaluate=lambda m: evaluate_sasrec(scorer, "valid", (5, 10), False))
    fit_seconds = time.perf_counter() - t0
    return {"n_users": ds.n_users, "n_items": ds.n_items, "n_train": res.n_targets, "n_windows": res.n_windows,
            "epochs_run": res.epochs_run, "seconds_per_epoch": res.seconds_per_epoch,
            "epoch_seconds": res.curves["seconds"].tolist(), "fit_seconds": fit_seconds,
            "best_epoch": res.best_epoch, "valid": res.best_valid,
            "valid_curve": res.curves.get("valid_NDCG@10", []).tolist() if len(res.curves) else [],
            "test": evaluate_sasrec(scorer, "test", (5, 10), exclude_history=False),
            "test_history_masked": evaluate_sasrec(scorer, "test", (5, 10), exclude_history=True),
            "threads": torch.get_num_threads()}


def start_recbole(python: Path, data: Path, args, work: Path) -> subprocess.Popen:
    """Start RecBole's side in the background (it runs while ours trains: on a shared machine both then see
    the same load)."""
    spec = {"data_path": str(data), "dataset": DATASET, "max_seq_length": args.max_seq_length, "lr": args.lr,
            "batch_size": args.batch_size, "epochs": args.epochs, "eval_every": args.eval_every,
            "patience": args.patience, "seed": args.seed, "threads": args.threads,
            "checkpoint_dir": str(work / "saved"), "out": str(work / "out.json")}
    env = {**os.environ, "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1", "OMP_WAIT_POLICY": os.environ["OMP_WAIT_POLICY"],
           "PYTHONPATH": ""}
    # -W ignore: RecBole 1.2.1 on torch 2.13 / pandas 2.3 prints deprecation warnings by the dozen
    proc = subprocess.Popen([str(python), "-W", "ignore", str(ROOT / "benchmarks" / "_recbole_sasrec.py")],
                            stdin=subprocess.PIPE, text=True, cwd=work, env=env)  # cwd: RecBole writes log/ there
    proc.stdin.write(json.dumps(spec))
    proc.stdin.close()
    return proc


def finish_recbole(proc: subprocess.Popen, work: Path) -> dict:
    if proc.wait() != 0:
        raise SystemExit(f"RecBole's SASRec failed (exit {proc.returncode})")
    return json.loads((work / "out.json").read_text())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    d = SASRecConfig()
    p.add_argument("--lr", type=float, default=d.learning_rate)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--max-seq-length", type=int, default=d.max_seq_length)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--eval-every", type=int, default=1)
    p.add_argument("--patience", type=int, default=3)
    p.add_argument("--stride", type=int, default=1, help="our train_stride (1: RecBole's training pairs)")
    p.add_argument("--seed", type=int, default=2024)
    p.add_argument("--threads", type=int, default=1, help="torch threads of both sides")
    p.add_argument("--tag", default="", help="suffix of the result files")
    args = p.parse_args(argv)

    python = ensure_venv()
    profile = load_profile(ROOT / "configs" / "ml100k-quick.yaml")
    ds = load_dataset(profile.data, profile.data_path())
    split = leave_one_out(ds)
    with tempfile.TemporaryDirectory(prefix="agrec-recbole-sasrec-") as tmp:
        work = Path(tmp)
        n_rows = write_atomic_files(ds, split, work / DATASET, args.max_seq_length)
        print(f"MovieLens-100k: {ds.n_users} users, {ds.n_items} items, {n_rows} training prefixes; "
              f"{json.dumps(vars(args))}", flush=True)
        load_before = os.getloadavg()
        t = time.perf_counter()
        proc = start_recbole(python, work, args, work)
        ours = run_ours(ds, split, args)
        print(f"ours done in {time.perf_counter() - t:.0f} s", flush=True)
        theirs = finish_recbole(proc, work)
        print(f"recbole done in {time.perf_counter() - t:.0f} s", flush=True)
        load_after = os.getloadavg()

    same_data = (ours["n_users"], ours["n_items"], ours["n_train"]) == (theirs["n_users"], theirs["n_items"],
                                                                      theirs["n_train"])
    rows = [("agrec SASRec (CE)", ours), ("RecBole 1.2.1 SASRec (CE)", theirs)]
    cols = ["s/epoch", "epochs", "best epoch", "valid NDCG@10", "test HR@10", "test NDCG@10"]
    lines = ["| model | " + " | ".join(cols) + " |", "|---|" + "---:|" * len(cols)]
    for name, r in rows:
        lines.append(f"| {name} | {r['seconds_per_epoch']:.1f} | {r['epochs_run']} | {r['best_epoch']} | "
                     f"{r['valid']['NDCG@10']:.4f} | {r['test']['HR@10']:.4f} | {r['test']['NDCG@10']:.4f} |")
    m = ours["test_history_masked"]
    summary = (f"History not masked on either side (RecBole's sequential protocol); ours with the history masked "
               f"(the project's protocol): test HR@10 {m['HR@10']:.4f}, NDCG@10 {m['NDCG@10']:.4f}. "
               f"Same data on both sides: {same_data}; torch threads {args.threads}, both sides concurrently; load average "
               f"{load_before[0]:.1f} -> {load_after[0]:.1f} on {os.cpu_count()} cores (shared machine).")
    print("\n".join(lines))
    print(summary)
    tag = f"_{args.tag}" if args.tag else ""
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    cmd = "python benchmarks/sasrec_vs_recbole.py " + " ".join(argv if argv is not None else sys.argv[1:])
    (out / f"sasrec_vs_recbole{tag}.md").write_text(
        f"# SASRec (CE): agrec vs RecBole 1.2.1 (MovieLens-100k, leave-one-out, full ranking)\n\n"
        f"`{cmd.strip()}`\n\nSettings: {json.dumps(vars(args))}\n\n" + "\n".join(lines) + f"\n\n{summary}\n")
    (out / f"sasrec_vs_recbole{tag}.json").write_text(json.dumps(
        {"command": cmd.strip(), "args": vars(args), "ours": ours, "recbole": theirs, "same_data": same_data,
         "loadavg_before": load_before, "loadavg_after": load_after, "machine": platform.platform(),
         "cpus": os.cpu_count()}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
