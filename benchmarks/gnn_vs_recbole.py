"""Our LightGCN vs RecBole 1.2.1's LightGCN, side by side in one run on MovieLens-100k.

Same leave-one-out split (RecBole reads it as pre-split atomic files through ``benchmark_filename``),
same embedding size, layers, learning rate, batch size, L2 weight, uniform negative sampling, the same
full-ranking protocol (history masked) and the same early stopping (validation NDCG@10 every
``--eval-every`` epochs, ``--patience`` evaluations). Reports training seconds per epoch of both (and
their ratio) and the test HR@10 / NDCG@10 of each model's best validation checkpoint.

RecBole runs in an isolated virtual environment that this script creates once under
``.cache/recbole-1.2.1-venv`` (no system site packages): torch 2.13.0 (the CPU wheel on this machine),
``recbole==1.2.1`` without its dependencies, and the dependencies it imports, with the pins RecBole 1.2.1
needs today: ``scipy<1.12`` (it calls ``dok_matrix._update``, removed later), hence ``numpy<2``;
``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1`` because it reloads its own pickled checkpoints with torch >= 2.6.
``ray`` (hyper-parameter search) and ``hyperopt`` are left out: nothing here imports them.

    python benchmarks/gnn_vs_recbole.py                      # quick-profile sizes (64 dims, lr 1e-2)
    python benchmarks/gnn_vs_recbole.py --paper --epochs 3 --patience 1   # paper sizes, timing only

Writes ``benchmarks/results/gnn_vs_recbole[_<tag>].{json,md}``.
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

import agrec  # noqa: E402,F401  (first: sets OMP_WAIT_POLICY before torch loads OpenMP)
import torch  # noqa: E402

from agrec.config import load_profile  # noqa: E402
from agrec.data.loaders import load_dataset  # noqa: E402
from agrec.data.split import leave_one_out  # noqa: E402
from agrec.gnn.config import GNNTrainConfig, LightGCNConfig  # noqa: E402
from agrec.gnn.evaluate import evaluate_gnn  # noqa: E402
from agrec.gnn.graph import InteractionGraph  # noqa: E402
from agrec.gnn.registry import build_model  # noqa: E402
from agrec.gnn.trainer import fit  # noqa: E402

VENV = ROOT / ".cache" / "recbole-1.2.1-venv"
REQUIREMENTS = ["torch==2.13.0", "numpy<2", "scipy<1.12", "pandas<3", "tqdm", "colorlog==4.7.2", "colorama==0.4.4",
                "scikit-learn", "pyyaml", "tensorboard", "thop", "tabulate", "plotly", "texttable", "psutil"]
NO_DEPS = ["recbole==1.2.1"]
DATASET = "ml100k_loo"


def ensure_venv(venv: Path = VENV, log=print) -> Path:
    """Create (once) the isolated RecBole environment; returns its python."""
    python = venv / "bin" / "python"
    stamp = venv / ".agrec-requirements.json"
    wanted = {"requirements": REQUIREMENTS, "no_deps": NO_DEPS}
    if python.exists() and stamp.is_file() and json.loads(stamp.read_text()) == wanted:
        return python
    log(f"creating {venv} (RecBole 1.2.1, isolated; takes a minute) ...")
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run(pip + REQUIREMENTS, check=True)
    subprocess.run(pip + ["--no-deps"] + NO_DEPS, check=True)
    stamp.write_text(json.dumps(wanted))
    return python


def write_atomic_files(ds, split, folder: Path) -> None:
    """``<DATASET>.{train,valid,test}.inter`` with raw ids: RecBole's pre-split benchmark files."""
    folder.mkdir(parents=True, exist_ok=True)
    parts = {
        "train": [(u, i) for u in range(split.n_users) for i in split.train[u]],
        "valid": [(u, split.valid[u]) for u in range(split.n_users)],
        "test": [(u, split.test[u]) for u in range(split.n_users)],
    }
    for name, pairs in parts.items():
        lines = ["user_id:token\titem_id:token"] + [f"{ds.user_ids[u]}\t{ds.item_ids[i]}" for u, i in pairs]
        (folder / f"{DATASET}.{name}.inter").write_text("\n".join(lines) + "\n")


def run_ours(ds, split, args) -> dict:
    torch.set_num_threads(args.threads)
    graph = InteractionGraph.from_split(split, ds.n_items)
    model = build_model("lightgcn", LightGCNConfig(embedding_dim=args.dim, n_layers=args.layers,
                                                   reg_weight=args.reg_weight), graph, seed=args.seed)
    cfg = GNNTrainConfig(epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.lr,
                         eval_every=args.eval_every, patience=args.patience, progress=False)
    t0 = time.perf_counter()
    res = fit(model, split, cfg, seed=args.seed)
    fit_seconds = time.perf_counter() - t0
    test = evaluate_gnn(model, split, "test", (5, 10))
    return {"n_users": ds.n_users, "n_items": ds.n_items, "n_train": graph.n_edges, "epochs_run": res.epochs_run,
            "seconds_per_epoch": res.seconds_per_epoch, "epoch_seconds": res.curves["seconds"].tolist(),
            "fit_seconds": fit_seconds, "best_epoch": res.best_epoch, "valid": res.best_valid, "test": test,
            "threads": torch.get_num_threads()}


def run_recbole(python: Path, data: Path, args, work: Path) -> dict:
    spec = {"data_path": str(data), "dataset": DATASET, "dim": args.dim, "layers": args.layers,
            "reg_weight": args.reg_weight, "lr": args.lr, "batch_size": args.batch_size, "epochs": args.epochs,
            "eval_every": args.eval_every, "patience": args.patience, "seed": args.seed, "threads": args.threads,
            "checkpoint_dir": str(work / "saved"), "out": str(work / "out.json")}
    env = {**os.environ, "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1", "OMP_WAIT_POLICY": os.environ["OMP_WAIT_POLICY"],
           "PYTHONPATH": ""}
    # -W ignore: RecBole 1.2.1 on torch 2.13 / pandas 2.3 prints deprecation warnings by the dozen
    subprocess.run([str(python), "-W", "ignore", str(ROOT / "benchmarks" / "_recbole_lightgcn.py")],
                   input=json.dumps(spec), text=True, check=True, cwd=work, env=env)  # cwd: RecBole writes log/ there
    return json.loads((work / "out.json").read_text())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--paper", action="store_true", help="paper sizes: 512 dims, lr 1e-3 (overridable below)")
    p.add_argument("--dim", type=int)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--lr", type=float)
    p.add_argument("--reg-weight", type=float, default=1e-4)
    p.add_argument("--batch-size", type=int, default=2048)
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--eval-every", type=int, default=5)
    p.add_argument("--patience", type=int, default=2)
    p.add_argument("--seeds", type=int, nargs="+", default=[2024],
                   help="one run of each side per seed; the table shows means (± std over seeds)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads of both sides (1: stable timings on a shared machine)")
    p.add_argument("--tag", default="", help="suffix of the result files")
    args = p.parse_args(argv)
    args.dim = args.dim or (512 if args.paper else 64)
    args.lr = args.lr or (1e-3 if args.paper else 1e-2)

    python = ensure_venv()
    profile = load_profile(ROOT / "configs" / "ml100k-quick.yaml")
    ds = load_dataset(profile.data, profile.data_path())
    split = leave_one_out(ds)
    with tempfile.TemporaryDirectory(prefix="agrec-recbole-") as tmp:
        work = Path(tmp)
        write_atomic_files(ds, split, work / DATASET)
        print(f"MovieLens-100k: {ds.n_users} users, {ds.n_items} items, {split.sizes()['train']} training "
              f"interactions; dim {args.dim}, {args.layers} layers, lr {args.lr}, batch {args.batch_size}, "
              f"up to {args.epochs} epochs, threads {args.threads}", flush=True)
        load_before = os.getloadavg()
        ours, theirs = [], []
        for seed in args.seeds:  # alternate the sides so that a change of machine load hits both
            args.seed = seed
            t = time.perf_counter()
            ours.append(run_ours(ds, split, args))
            print(f"seed {seed}: ours done in {time.perf_counter() - t:.0f} s", flush=True)
            t = time.perf_counter()
            theirs.append(run_recbole(python, work, args, work))
            print(f"seed {seed}: recbole done in {time.perf_counter() - t:.0f} s", flush=True)
        del args.seed
        load_after = os.getloadavg()

    same_data = all((a["n_users"], a["n_items"], a["n_train"]) == (b["n_users"], b["n_items"], b["n_train"])
                    for a, b in zip(ours, theirs))
    rows = [_summarise("agrec LightGCN", ours), _summarise("RecBole 1.2.1 LightGCN", theirs)]
    speedup = rows[1]["s/epoch"][0] / rows[0]["s/epoch"][0]
    cols = ["s/epoch", "epochs", "best epoch", "valid NDCG@10", "test HR@10", "test NDCG@10", "test HR@5",
            "test NDCG@5"]
    header = "| model | " + " | ".join(cols) + " |\n|---|" + "---:|" * len(cols)
    lines = [header] + ["| " + r["model"] + " | " + " | ".join(_fmt(c, r[c]) for c in cols) + " |" for r in rows]
    summary = (f"RecBole / agrec seconds per epoch: {speedup:.2f}x; {len(args.seeds)} seed(s), mean ± std; "
               f"same data on both sides: {same_data}; torch threads {args.threads}; "
               f"load average {load_before[0]:.1f} -> {load_after[0]:.1f} on {os.cpu_count()} cores")
    print("\n".join(lines))
    print(summary)
    tag = f"_{args.tag}" if args.tag else ""
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    cmd = "python benchmarks/gnn_vs_recbole.py " + " ".join(argv if argv is not None else sys.argv[1:])
    (out / f"gnn_vs_recbole{tag}.md").write_text(
        f"# LightGCN: agrec vs RecBole 1.2.1 (MovieLens-100k, leave-one-out, full ranking)\n\n"
        f"`{cmd.strip()}`\n\nSettings: {json.dumps(vars(args))}\n\n" + "\n".join(lines) + f"\n\n{summary}\n")
    (out / f"gnn_vs_recbole{tag}.json").write_text(json.dumps(
        {"command": cmd.strip(), "args": vars(args), "ours": ours, "recbole": theirs, "summary": rows,
         "speedup": speedup,
         "same_data": same_data, "loadavg_before": load_before, "loadavg_after": load_after,
         "machine": platform.platform(), "cpus": os.cpu_count()}, indent=2))
    return 0


def _summarise(name: str, runs: list[dict]) -> dict:
    """Mean and std over seeds of the reported quantities."""
    import numpy as np

    values = {
        "s/epoch": [r["seconds_per_epoch"] for r in runs], "epochs": [r["epochs_run"] for r in runs],
        "best epoch": [r["best_epoch"] for r in runs], "valid NDCG@10": [r["valid"]["NDCG@10"] for r in runs],
        **{f"test {k}": [r["test"][k] for r in runs] for k in ("HR@10", "NDCG@10", "HR@5", "NDCG@5")},
    }
    return {"model": name, **{k: (float(np.mean(v)), float(np.std(v))) for k, v in values.items()}}


def _fmt(col: str, value: tuple[float, float]) -> str:
    mean, std = value
    if col in ("epochs", "best epoch"):
        return f"{mean:.0f}" if std == 0 else f"{mean:.1f}"
    digits = 3 if col == "s/epoch" else 4
    return f"{mean:.{digits}f}" + (f" ± {std:.{digits}f}" if std > 0 else "")


if __name__ == "__main__":
    sys.exit(main())
