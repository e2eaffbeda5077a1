"""Hostile and careless input, case by case: what every command-line surface does with it.

Each case feeds one bad input to a command (bad arguments, damaged caches and artefacts, bad ids in data files,
closed pipes) and judges the outcome: **handled** when the command refuses with exit code 2 (1 for checks that
report a failure) and a short message naming what is wrong — no traceback, no silent acceptance, no message
longer than a few hundred characters whatever the size of the bad value — and **bad** otherwise. The verdicts
go to a markdown table (``--out``) and a summary line.

It uses only the command line and the loaders' public entry points, so the same file judges an older checkout:

    .venv/bin/python benchmarks/robustness_cases.py --out /tmp/after.md
    git worktree add /tmp/before <commit>
    PYTHONPATH=/tmp/before .venv/bin/python benchmarks/robustness_cases.py --out /tmp/before.md

Nothing is written outside a temporary folder (the CI profile's run and report folders are redirected there).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CI = ROOT / "configs" / "ml100k-ci.yaml"
MAX_MESSAGE = 400


CASE_SECONDS = 60   # a refusal is immediate; a case still busy after this is judged bad


class CaseTimeout(Exception):
    """Raised in a case that runs past CASE_SECONDS."""


class WouldRun(Exception):
    """Raised instead of executing a stage's notebook."""


@dataclass
class Outcome:
    code: int | None
    out: str
    err: str
    exc: str | None = None


@dataclass
class Case:
    group: str
    name: str
    run: Callable[[], Outcome]
    expect: str = ""            # a substring the message must hold ("" = any named error)
    want_code: tuple[int, ...] = (2,)


def cli(argv: list[str]) -> Outcome:
    """``agrec <argv>`` in this process; an exception escaping ``main`` is a traceback."""
    from agrec.cli import main

    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(argv)
    except SystemExit as e:          # argparse's usage errors
        code = e.code if isinstance(e.code, int) else 2
    except BaseException as e:       # noqa: BLE001 - a traceback is what the case looks for
        return Outcome(None, out.getvalue(), err.getvalue(), f"{type(e).__name__}: {str(e)[:200]}")
    return Outcome(code, out.getvalue(), err.getvalue())


def call(fn: Callable[[], object]) -> Outcome:
    """A library entry point: an :class:`AgrecError` is a named error (code 2), anything else a traceback."""
    from agrec.errors import AgrecError

    try:
        fn()
    except AgrecError as e:
        return Outcome(2, "", f"agrec: error: {e}\n")
    except BaseException as e:  # noqa: BLE001
        return Outcome(None, "", "", f"{type(e).__name__}: {str(e)[:200]}\n{traceback.format_exc(limit=1)[-300:]}")
    return Outcome(0, "", "")


def verdict(case: Case, o: Outcome) -> tuple[str, str]:
    if o.exc is not None:
        if o.exc.startswith(("WouldRun", "CaseTimeout")):
            return "bad", o.exc.split(": ", 1)[1][:120]
        return "bad", f"traceback ({o.exc.splitlines()[0][:120]})"
    if o.code not in case.want_code:
        return "bad", f"exit {o.code}" + (" (accepted silently)" if o.code == 0 else "")
    lines = [ln for ln in o.err.splitlines() if ln.strip()]
    msg = lines[-1] if lines else (o.out.strip().splitlines() or [""])[-1]
    if "Traceback" in o.err:
        return "bad", "traceback on stderr"
    if any(len(ln) > MAX_MESSAGE for ln in lines):
        return "bad", f"message of {max(len(ln) for ln in lines)} characters"
    if case.expect and case.expect not in o.err + o.out:
        return "bad", f"message does not say {case.expect!r}: {msg[:120]!r}"
    return "handled", msg[:150]


# -- setups ----------------------------------------------------------------------------------------------------

class Sandbox:
    def __init__(self, root: Path):
        self.root = root
        self.sets = ["--set", f"pipeline.runs_dir={root / 'runs'}", "--set", f"pipeline.reports_dir={root / 'reports'}"]

    def folder(self, name: str) -> Path:
        p = self.root / name
        if p.exists():
            shutil.rmtree(p)
        p.mkdir(parents=True)
        return p

    def profile(self, name: str, body: str) -> Path:
        p = self.root / f"{name}.yaml"
        p.write_text(body)
        return p


def lcrec(folder: Path, inter: dict, name: str = "T") -> Path:
    (folder / f"{name}.inter.json").write_text(json.dumps(inter), encoding="utf-8")
    items = {it for seq in inter.values() if isinstance(seq, list) for it in seq}
    (folder / f"{name}.index.json").write_text(json.dumps({str(i): [f"<a_{k}>"] for k, i in enumerate(sorted(
        items, key=str))}), encoding="utf-8")
    return folder


def load(cfg_kwargs: dict, folder: Path) -> Outcome:
    from agrec.config import DataConfig
    from agrec.data.loaders import load_dataset

    return call(lambda: load_dataset(DataConfig(**cfg_kwargs), folder))


def fake_report(folder: Path, rows: dict) -> Path:
    """A report folder's results/decode.json through the writer the decode notebook uses."""
    from agrec.run.report import Report

    d = {"n_users": 3, "chosen": {"alpha": 0.2, "tau": 1.0},
         "rows": {k: {"valid": v, "test": v} for k, v in rows.items()}, "significance_test": {}}
    Report(folder).record("decode", d)
    return folder


def build_cases(sb: Sandbox) -> list[Case]:
    cases: list[Case] = []
    add = cases.append
    sets = sb.sets

    # A. stage lists, on every command that takes one
    stage_values = ["", ",", ",,", " ", "data,,gnn", "data,data", "fsm", "DATA", "data;gnn", "../data"]
    for cmd in ("run", "status", "seeds", "report"):
        if cmd == "report":
            continue
        for v in stage_values:
            extra = ["--seeds", "2"] if cmd == "seeds" else []
            add(Case("stage lists", f"{cmd} --stages {v!r}",
                     lambda cmd=cmd, v=v, extra=extra: cli([cmd, "--config", str(CI), "--stages", v, *extra, *sets]),
                     "--stages"))
    for v in ["", "fsm", "../x", "DATA", "data,gnn"]:
        add(Case("stage lists", f"sweep --stage {v!r}",
                 lambda v=v: cli(["sweep", "--config", str(CI), "--stage", v, "--grid", "decode.top_n=5", *sets]),
                 "stage"))

    # B. --set items, on every command that takes them
    bad_sets = [("seed", "expects KEY=VALUE"), ("=5", "is not a profile key"), ("a b=1", "is not a profile key"),
                ("data..x=1", "is not a profile key"), ("seed=1e20", "seed"), ("seed=-1", "seed"),
                ("seed=abc", "seed"), ("unknown.key=1", "unknown"), ("data.min_seq_len=0", "min_seq_len"),
                ("x" * 100000, "expects KEY=VALUE"), ("seed=4294967296", "seed"), ("data.dataset=../x", "dataset"),
                ("seed=1", "twice")]
    for cmd in ("run", "status", "seeds", "sweep", "data", "report"):
        for item, expect in bad_sets:
            argv = {"run": ["run"], "status": ["status"], "seeds": ["seeds", "--seeds", "1"],
                    "sweep": ["sweep", "--stage", "data", "--grid", "decode.top_n=5,6"],
                    "data": ["data", "check"], "report": ["report"]}[cmd]
            more = ["--set", "seed=2"] if item == "seed=1" else []
            label = item if len(item) < 30 else f"{item[:10]}… ({len(item)} characters)"
            add(Case("--set", f"{cmd} --set {label!r}",
                     lambda argv=argv, item=item, more=more: cli([*argv, "--config", str(CI), *sets, *more,
                                                                  "--set", item]), expect))

    # C. --seeds
    for v, expect in [("0", "count"), ("-1,", "[0, 2**32)"), ("100000000", "count"),
                      (",".join(map(str, range(1001))), "at most"), ("a", "expects a count"), ("", "--seeds"),
                      (",", "no seed"), ("1,1", "twice"), (f"{2**40},", "[0, 2**32)"), ("x" * 100000, "expects")]:
        label = v if len(v) < 30 else f"{v[:10]}… ({len(v)} characters)"
        add(Case("--seeds", f"seeds --seeds {label!r}",
                 lambda v=v: cli(["seeds", "--config", str(CI), f"--seeds={v}", *sets]), expect))

    # D. --grid
    for items, expect in [(["decode.top_n"], "expects"), (["decode.top_n="], "no values"),
                          (["decode.top_n=,"], "no values"), (["decode.top_n=5,5"], "twice"),
                          (["a b=1"], "not a profile key"), (["decode.beam_size=0,5"], "beam_size"),
                          (["decode.top_n=5", "decode.top_n=6"], "twice"), (["seed=-1,2"], "seed")]:
        add(Case("--grid", f"sweep --grid {' '.join(items)!r}",
                 lambda items=items: cli(["sweep", "--config", str(CI), "--stage", "data", *sets,
                                          *[a for it in items for a in ("--grid", it)]]), expect))
    add(Case("--grid", "sweep: a key both --set and --grid",
             lambda: cli(["sweep", "--config", str(CI), "--stage", "data", *sets, "--set", "decode.top_n=5",
                          "--grid", "decode.top_n=5,6"]), "both"))

    # E. profiles
    garbage = sb.profile("garbage", "name: [unclosed\n")
    dup = sb.profile("dup", "name: a\nseed: 1\nseed: 2\n")
    notmap = sb.profile("notmap", "- a\n- b\n")
    for cmd in ("run", "status", "seeds", "report", "sweep"):
        argv = {"seeds": ["--seeds", "1"], "sweep": ["--stage", "data", "--grid", "decode.top_n=5"]}.get(cmd, [])
        for label, path, expect in [("missing", sb.root / "nope.yaml", "not found"), ("a folder", sb.root, ""),
                                    ("bad YAML", garbage, "garbage.yaml"), ("key twice", dup, "seed"),
                                    ("not a mapping", notmap, "notmap.yaml")]:
            add(Case("profiles", f"{cmd} --config ({label})",
                     lambda cmd=cmd, argv=argv, path=path: cli([cmd, "--config", str(path), *argv]), expect))

    # F. table2 inputs and output
    def t2(setup: Callable[[Path], None], out: str | None = None) -> Callable[[], Outcome]:
        def run() -> Outcome:
            rep = sb.folder("t2") / "reports"
            folder = rep / "ml-100k" / "ci"
            m = {"HR@5": 0.1, "NDCG@5": 0.1, "HR@10": 0.1, "NDCG@10": 0.1}
            fake_report(folder, {"w/o Graph": m, "AGRec (lightgcn)": m})
            setup(folder)
            return cli(["table2", "--config", str(_t2_profile(rep))] + (["--out", out] if out else []))
        return run

    def _t2_profile(rep: Path) -> Path:
        return sb.profile("t2prof", CI.read_text().replace("reports_dir: ../runs/_reports", f"reports_dir: {rep}")
                          .replace("runs_dir: ../runs", f"runs_dir: {sb.root / 'runs'}"))

    def edit(rel: str, fn: Callable[[str], str]) -> Callable[[Path], None]:
        def setup(folder: Path) -> None:
            p = folder / rel
            p.write_text(fn(p.read_text()))
        return setup

    def seeds_summary(folder: Path) -> None:
        s = folder / "seeds"
        s.mkdir()
        cols = ["method", "n_seeds", *(f"{m} {k}" for m in ("HR@5", "NDCG@5", "HR@10", "NDCG@10")
                                      for k in ("mean", "sd"))]
        (s / "summary.csv").write_text(",".join(cols) + "\n")
        (s / "seeds.csv").write_text("seed\n1\n")

    add(Case("table2", "--out is a folder", t2(lambda f: None, str(sb.root)), "--out"))
    add(Case("table2", "--out ends in .csv", t2(lambda f: None, str(sb.root / "t.csv")), "--out"))
    add(Case("table2", "--out in a missing folder", t2(lambda f: None, str(sb.root / "no" / "t.md")), "--out"))
    add(Case("table2", "decode.json is not JSON", t2(edit("results/decode.json", lambda t: "{")), "decode.json"))
    add(Case("table2", "decode.json: a number edited by hand",
             t2(edit("results/decode.json", lambda t: t.replace("0.1", "0.9999", 1))), "decode.json"))
    add(Case("table2", "decode.json: a field of the wrong type",
             t2(edit("results/decode.json", lambda t: t.replace('"rows": {', '"rows": [{', 1)
                     .replace('}}, "significance_test"', '}}], "significance_test"'))), "decode.json"))
    add(Case("table2", "decode.json deleted", t2(lambda f: (f / "results" / "decode.json").unlink()), "decode.json"))
    add(Case("table2", "seeds/summary.csv cut to its header", t2(seeds_summary), "seeds/"))
    add(Case("table2", "seeds/summary.csv with a bad cell",
             t2(lambda f: (seeds_summary(f), (f / "seeds" / "summary.csv").write_text(
                 (f / "seeds" / "summary.csv").read_text() + "w/o Graph,3" + ",abc" * 8 + "\n"))), "seeds/"))
    add(Case("table2", "profile without a report",
             lambda: cli(["table2", "--config", str(_t2_profile(sb.folder("t2none")))]), "decode"))

    # G. data check
    def check(setup: Callable[[Path], list[str]], code: tuple[int, ...] = (1, 2), expect: str = "") -> Case:
        def run() -> Outcome:
            return cli(["data", "check", *setup(sb.folder("dc"))])
        return Case("data check", "", run, expect, code)

    def recorded_copy(folder: Path, drop: str | None) -> list[str]:
        lcrec(folder, {"0": [0, 1, 2], "1": [1, 2, 3]})
        (folder / "T.item.json").write_text(json.dumps({str(i): {"title": f"t{i}"} for i in range(4)}))
        import hashlib
        files = {n: hashlib.sha256((folder / n).read_bytes()).hexdigest()
                 for n in ("T.inter.json", "T.item.json", "T.index.json")}
        reg = folder / "registry.yaml"
        reg.write_text("datasets:\n  T:\n    source: audit\n    files:\n"
                       + "".join(f"      {n}: {{sha256: {h}}}\n" for n, h in files.items()))
        if drop:
            (folder / drop).unlink()
        return ["--path", str(folder), "--dataset", "T", "--registry", str(reg)]

    for c, name in [(check(lambda f: recorded_copy(f, "T.item.json"), (1,), "T.item.json"),
                     "a recorded item.json deleted"),
                    (check(lambda f: recorded_copy(f, "T.index.json"), (1,), "T.index.json"),
                     "a recorded index.json deleted"),
                    (check(lambda f: recorded_copy(f, "T.inter.json"), (1,), "T.inter.json"),
                     "a recorded inter.json deleted"),
                    (check(lambda f: ["--path", str(f)], (2,), "--dataset"), "--path without --dataset"),
                    (check(lambda f: ["--config", str(CI), "--path", str(f)], (2,), "not both"),
                     "--config and --path"),
                    (check(lambda f: ["--path", str(f), "--dataset", "T", "--set", "seed=1"], (2,), "--set"),
                     "--set without --config"),
                    (check(lambda f: ["--path", str(f / "nope"), "--dataset", "T"], (1,), "not found"),
                     "missing folder"),
                    (check(lambda f: ((f / "T.inter.json").write_text("{"), ["--path", str(f), "--dataset", "T"])[1],
                           (1, 2), "T.inter.json"), "malformed inter.json"),
                    (check(lambda f: ["--path", str(f), "--dataset", "T", "--registry", str(f / "nope.yaml")], (2,),
                           "nope.yaml"), "missing registry file")]:
        c.name = name
        add(c)

    # H. ids in data files, through every loader
    ids = [("empty", ""), ("blank", "  "), ("NUL", "0\x00"), ("zero-width space", "a\u200bb"),
           ("line separator", "a\u2028"), ("tab", "a\tb")]
    for label, bad in ids:
        def lc_user(bad=bad) -> Outcome:
            f = sb.folder("ids")
            lcrec(f, {"0": [0, 1, 2], bad: [0, 1, 2]})
            return load({"dataset": "T", "format": "lcrec", "path": str(f), "min_seq_len": 3}, f)

        def lc_item(bad=bad) -> Outcome:
            f = sb.folder("ids")
            lcrec(f, {"0": [0, bad, 2], "1": [0, 1, 2]})
            return load({"dataset": "T", "format": "lcrec", "path": str(f), "min_seq_len": 3}, f)

        def tab_user(bad=bad) -> Outcome:
            f = sb.folder("ids")
            rows = ["user,item,time", "0,a,1", "0,b,2", "0,c,3"] + [f'"{bad}",{i},{t}' for i, t in
                                                                   (("a", 4), ("b", 5), ("c", 6))]
            (f / "inter.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
            return load({"dataset": "T", "format": "tabular", "path": str(f), "inter_file": "inter.csv",
                         "item_file": None, "user_col": "user", "item_col": "item", "time_col": "time",
                         "require_text": False, "min_seq_len": 3}, f)

        def ml_item(bad=bad) -> Outcome:
            f = sb.folder("ids")
            body = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
            body += "".join(f"1\t{it}\t5\t{t}\n" for t, it in enumerate(["10", bad, "12"], 1))
            (f / "m.inter").write_text(body, encoding="utf-8")
            return load({"dataset": "m", "format": "movielens", "path": str(f), "min_seq_len": 3}, f)

        for fn, where in [(lc_user, "LC-Rec user"), (lc_item, "LC-Rec item"), (tab_user, "tabular user"),
                          (ml_item, "MovieLens item")]:
            add(Case("ids", f"{where} id {label}", fn))

    # I. damaged caches and artefacts
    def embed_case(damage: str) -> Outcome:
        from agrec.semantic_ids import embed as embed_mod
        from agrec.semantic_ids.embed import EmbeddingSpec, embed_texts

        f = sb.folder("emb")
        real = embed_mod.encode_minilm
        embed_mod.encode_minilm = lambda texts, *a, **k: np.ones((len(texts), 4), dtype=np.float32)
        try:
            spec = EmbeddingSpec("minilm", None, 256, True)
            embed_texts(["x", "y"], spec, f / "run1", shared_cache=f / "cache", progress=False)
            entry = next((f / "cache").glob("*.npy"))
            raw = bytearray(entry.read_bytes())
            if damage == "overwritten bytes":
                raw[-16:] = b"\xff\xff\x7f\x7f" * 4
            elif damage == "garbage":
                raw = bytearray(b"not numpy")
            elif damage == "NaN":
                raw[-4:] = b"\x00\x00\xc0\x7f"
            entry.write_bytes(bytes(raw))
            err = io.StringIO()
            with contextlib.redirect_stdout(err):
                arr, info = embed_texts(["x", "y"], spec, f / "run2", shared_cache=f / "cache", progress=False)
            if info["source"] != "computed" or not np.isfinite(arr).all() or arr.max() > 1:
                return Outcome(0, "", "the damaged entry was used")
            return Outcome(2, "", err.getvalue())
        except BaseException as e:  # noqa: BLE001
            return Outcome(None, "", "", f"{type(e).__name__}: {e}")
        finally:
            embed_mod.encode_minilm = real

    for damage in ("overwritten bytes", "garbage", "NaN"):
        add(Case("damage", f"shared embedding cache entry: {damage}", lambda d=damage: embed_case(d), "embedding cache"))

    def fast_check(kind: str) -> Outcome:
        from agrec.data.stage import prepare_data
        from agrec.run.lineage import stage_status
        from agrec.run.session import open_session

        f = sb.folder("fast")
        lcrec(f, {"0": [0, 1, 2, 3], "1": [1, 2, 3]})
        (f / "T.item.json").write_text(json.dumps({str(i): {"title": f"Item {i}"} for i in range(4)}))
        prof = sb.profile("fast", f"name: fast\nseed: 1\ndata: {{dataset: T, format: lcrec, path: {f}}}\n"
                                  f"pipeline: {{runs_dir: {sb.root / 'fastruns'}, reports_dir: {sb.root / 'fr'}}}\n")
        s = open_session(prof)
        with contextlib.redirect_stdout(io.StringIO()):
            prepare_data(s)
        target = f / "T.item.json" if kind == "input" else next((s.run.root / "data").glob("*.npz"))
        st0 = target.stat()
        raw = bytearray(target.read_bytes())
        raw[-3] ^= 0x01
        target.write_bytes(bytes(raw))
        os.utime(target, ns=(st0.st_atime_ns, st0.st_mtime_ns))
        st = stage_status(s.profile, s.run, "data")
        return Outcome(0 if st.current else 2, "", "; ".join(st.reasons))

    add(Case("damage", "input edited in place, size and mtime restored (no --verify)", lambda: fast_check("input"),
             "changed"))
    add(Case("damage", "artefact edited in place, size and mtime restored (no --verify)",
             lambda: fast_check("artefact"), "changed"))

    # J. lab
    lab_profile = sb.profile("lab", CI.read_text().replace("reports_dir: ../runs/_reports",
                                                           f"reports_dir: {sb.root / 'labreports'}")
                             .replace("runs_dir: ../runs", f"runs_dir: {sb.root / 'labruns'}"))
    for port in ("80", "0", "70000", "abc", ""):
        def lab(port=port) -> Outcome:
            from agrec.run.lab import main as lab_main

            err = io.StringIO()
            try:
                with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                    lab_main(["--config", str(lab_profile), "--port", port])
            except SystemExit as e:
                return Outcome(e.code if isinstance(e.code, int) else 2, "", err.getvalue())
            except BaseException as e:  # noqa: BLE001
                return Outcome(None, "", err.getvalue(), f"{type(e).__name__}: {e}")
            return Outcome(0, "", err.getvalue())
        add(Case("lab", f"--port {port!r}", lab, "port"))

    # K. closed pipes (a real subprocess: the pipe must close under it)
    for argv in (["status", "--config", str(CI), *sets], ["info"], ["--help"]):
        def pipe(argv=argv) -> Outcome:
            code = ("import sys\nfrom agrec.cli import main\n"
                    "import agrec.run.pipeline as p\n"
                    "class R:\n    current = True\n    def line(self):\n        return 'x' * 200\n"
                    "p.status = lambda *a, **k: [R()] * 100000\n"
                    "import agrec.run.rundir as r\n"
                    "r.library_versions = lambda: {f'k{i}': 'v' * 100 for i in range(100000)}\n"
                    f"sys.exit(main({argv!r}))\n")
            proc = subprocess.run(f"{sys.executable} -c {shlex.quote(code)} | head -1", shell=True,
                                  capture_output=True, text=True, timeout=300)
            return Outcome(2 if not proc.stderr.strip() else None, proc.stdout, proc.stderr,
                           None if not proc.stderr.strip() else proc.stderr.strip().splitlines()[-1][:200])
        add(Case("closed pipe", f"agrec {argv[0]} | head -1", pipe))
    return cases


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", help="markdown table to write")
    args = ap.parse_args(argv)
    import agrec

    import agrec.run.pipeline

    def would_run(notebook, *a, **k):
        # A bad input must be refused before any stage runs; the audit never executes a notebook.
        raise WouldRun(f"accepted: started executing {Path(notebook).name}")

    agrec.run.pipeline.execute_notebook = would_run

    def would_exec(path, args):
        raise WouldRun(f"accepted: started {Path(path).name}")

    os.execv = would_exec   # the lab's last step replaces the process with JupyterLab

    def too_slow(signum, frame):
        raise CaseTimeout(f"no answer within {CASE_SECONDS} s")

    signal.signal(signal.SIGALRM, too_slow)
    with tempfile.TemporaryDirectory(prefix="agrec-audit-") as tmp:
        sb = Sandbox(Path(tmp))
        cases = build_cases(sb)
        rows = []
        for i, case in enumerate(cases, 1):
            signal.alarm(CASE_SECONDS)
            try:
                o = case.run()
            except BaseException as e:  # noqa: BLE001 - a case whose setup fails on this checkout
                o = Outcome(None, "", "", f"{type(e).__name__}: {str(e)[:200]}")
            finally:
                signal.alarm(0)
            v, detail = verdict(case, o)
            rows.append((i, case.group, case.name, v, detail))
            print(f"[{i}/{len(cases)}] {v:8s} {case.group}: {case.name}", file=sys.stderr, flush=True)
    handled = sum(r[3] == "handled" for r in rows)
    head = (f"agrec {agrec.__version__} from {Path(agrec.__file__).parent}: {handled} of {len(rows)} cases handled, "
            f"{len(rows) - handled} bad")
    print(head)
    if args.out:
        lines = [f"# Robustness cases\n\n{head}\n", "| # | group | case | verdict | what it did |", "|---|---|---|---|---|"]
        lines += [f"| {i} | {g} | {n.replace('|', '/')} | {v} | {d.replace('|', '/')} |" for i, g, n, v, d in rows]
        Path(args.out).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
