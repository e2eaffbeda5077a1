"""The shape of the package ("the house"): numbers a refactoring can report before and after.

    .venv/bin/python benchmarks/house.py [--rev COMMIT] [--json out.json] [--root agrec]

Reads the working tree, or with ``--rev`` a commit (``git ls-tree`` + ``git show``, no checkout), parses each ``.py``
file under ``--root`` with ``ast`` (nothing is imported) and prints a Markdown summary (``--json``: every number):

1. modules and physical lines per folder;
2. the import graph between the package's modules. ``import a.b.c`` points at the deepest existing module of
   ``a.b.c``; ``from a.b import c`` at ``a.b.c`` if that is a module, else at ``a.b`` (a package means its
   ``__init__``); relative imports alike. Not seen: ``importlib`` imports, the parent packages an import runs.
   An import is top-level (module or class body), lazy (in a function) or TYPE_CHECKING (never runs).
   Arrows = distinct runtime (top-level or lazy) module -> module edges, self-edges left out;
3. import circles: strongly connected components of more than one module, of the runtime graph and of the
   top-level-only graph;
4. arrows running up: imports of a module of a strictly higher layer. The layers, a fixed rule:
   0 foundation: errors io canonical fingerprint seed threads devices progress metrics manifest;
   1 configuration: config, paths, every ``<pkg>.config``;
   2 libraries: scorers, and the modules of a stage package (one with a ``stage`` module) but its stage, run,
     train, config and ``__init__``;
   3 stage entry points and the run layer: ``<pkg>.stage``, ``<pkg>.run``, ``<pkg>.train``, session, rundir,
     lineage, provenance, runlock, launch (the stage launchers' shared command line), report (the report
     folder's writer and results reader, which the session hands to the stages' notebooks; layer 4 before
     the run package existed);
   4 orchestration and front ends: pipeline seeds cli lab htmlreport config_docs __main__, and table2 (the
     ``agrec table2`` command, which reads the reports of many runs; layer 2 by default before).
   A package ``__init__`` takes the highest layer of its own package's modules it imports at runtime (2 if none).
   A module not listed by full name takes the layer of its last name component (``agrec.run.session`` is 3 like
   the earlier ``agrec.session``); any other is layer 2 and printed as defaulted;
5. the ten longest functions and methods (``end_lineno - lineno + 1``);
6. modules with a module docstring.

The output is sorted: the same tree gives the same report.
"""

from __future__ import annotations

import argparse
import ast
import json
import subprocess
from collections import Counter, defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
LAYER_NAMES: dict[int, set[str]] = {
    0: {"errors", "io", "canonical", "fingerprint", "seed", "threads", "devices", "progress", "metrics", "manifest"},
    1: {"config", "paths"},
    3: {"session", "rundir", "lineage", "provenance", "runlock", "launch", "report"},
    4: {"pipeline", "seeds", "cli", "lab", "htmlreport", "config_docs", "__main__", "analysis.table2"},
}


def read_sources(repo: Path, root: str, rev: str | None) -> dict[str, str]:
    """Path (relative to the repository, posix) -> source of every .py file under root."""
    if rev is None:
        return {p.relative_to(repo).as_posix(): p.read_text() for p in sorted((repo / root).rglob("*.py"))}
    git = ["git", "-C", str(repo)]
    names = subprocess.run([*git, "ls-tree", "-r", "--name-only", rev, f"{root}/"], check=True, capture_output=True)
    paths = [n for n in names.stdout.decode().splitlines() if n.endswith(".py")]
    show = [subprocess.run([*git, "show", f"{rev}:{p}"], check=True, capture_output=True) for p in paths]
    return {p: s.stdout.decode() for p, s in zip(paths, show, strict=True)}


def module_name(path: str) -> str:
    parts = path[: -len(".py")].split("/")
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def resolve(name: str, modules: set[str]) -> str | None:
    """The deepest existing module of a dotted name."""
    parts = name.split(".")
    return next((m for n in range(len(parts), 0, -1) if (m := ".".join(parts[:n])) in modules), None)


def import_targets(node: ast.Import | ast.ImportFrom, mod: str, is_pkg: bool, modules: set[str]) -> list[str]:
    """The package's modules one import statement points at (empty for stdlib / third-party)."""
    if isinstance(node, ast.Import):
        return [t for a in node.names if (t := resolve(a.name, modules))]
    base = node.module or ""
    if node.level:
        pkg = mod.split(".") if is_pkg else mod.split(".")[:-1]
        if node.level - 1 >= len(pkg):
            return []
        pkg = pkg[: len(pkg) - (node.level - 1)]
        base = ".".join(pkg + ([base] if base else []))
    out = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else resolve(base, modules) for a in node.names]
    return [t for t in out if t]


def walk_imports(tree: ast.AST) -> list[tuple[ast.Import | ast.ImportFrom, str]]:
    """Every import statement with its kind: top, lazy (in a function) or type_checking."""
    found: list[tuple[ast.Import | ast.ImportFrom, str]] = []

    def visit(nodes: Iterable[ast.AST], in_func: bool, in_tc: bool) -> None:
        for node in nodes:
            if isinstance(node, ast.Import | ast.ImportFrom):
                found.append((node, "type_checking" if in_tc else "lazy" if in_func else "top"))
            elif isinstance(node, ast.If) and "TYPE_CHECKING" in (getattr(node.test, a, 0) for a in ("id", "attr")):
                visit(node.body, in_func, True)
                visit(node.orelse, in_func, in_tc)
            else:
                func = isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
                visit(ast.iter_child_nodes(node), in_func or func, in_tc)

    visit([tree], False, False)
    return found


def functions(tree: ast.AST, prefix: str = "") -> list[tuple[int, str]]:
    """(lines, qualified name) of every function and method."""
    out: list[tuple[int, str]] = []
    for child in ast.iter_child_nodes(tree):
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            name = f"{prefix}{child.name}"
            if not isinstance(child, ast.ClassDef):
                out.append(((child.end_lineno or child.lineno) - child.lineno + 1, name))
            out += functions(child, f"{name}.")
        else:
            out += functions(child, prefix)
    return out


def sccs(nodes: list[str], edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (iterative Kosaraju), largest first."""
    order: list[str] = []
    seen: set[str] = set()
    for start in nodes:  # 1. depth-first finishing order
        if start not in seen:
            seen.add(start)
            work = [(start, iter(sorted(edges.get(start, ()))))]
            while work:
                v, it = work[-1]
                if (w := next((w for w in it if w not in seen), None)) is None:
                    order.append(work.pop()[0])
                else:
                    seen.add(w)
                    work.append((w, iter(sorted(edges.get(w, ())))))
    back: dict[str, set[str]] = defaultdict(set)
    for v, ws in edges.items():
        for w in ws:
            back[w].add(v)
    comps: list[list[str]] = []
    seen = set()
    for start in reversed(order):  # 2. what reaches each root, on the reversed graph, in reverse finishing order
        if start not in seen:
            seen.add(start)
            comp, todo = [], [start]
            while todo:
                comp.append(v := todo.pop())
                new = sorted(back[v] - seen)
                seen.update(new)
                todo += new
            comps.append(sorted(comp))
    return sorted((c for c in comps if len(c) > 1), key=lambda c: (-len(c), c))


def layers(pkg: str, modules: dict[str, bool], runtime: dict[str, set[str]]) -> tuple[dict[str, int], list[str]]:
    """The layer of every module (the rule in the module docstring) and the modules that defaulted to 2."""
    stage_pkgs = {m.rsplit(".", 1)[0] for m in modules if m.endswith(".stage")}
    layer: dict[str, int] = {}
    defaulted: list[str] = []
    for m, is_pkg in sorted(modules.items()):
        rel = m[len(pkg) + 1 :]
        if is_pkg:
            continue
        if hit := [n for n, names in LAYER_NAMES.items() if rel in names]:
            layer[m] = hit[0]
        elif rel == "scorers":
            layer[m] = 2
        elif m.rsplit(".", 1)[0] in stage_pkgs:
            last = rel.rsplit(".", 1)[-1]
            layer[m] = 1 if last == "config" else 3 if last in {"stage", "run", "train"} else 2
        elif hit := [n for n, names in LAYER_NAMES.items() if rel.rsplit(".", 1)[-1] in names]:
            layer[m] = hit[0]
        else:
            layer[m] = 2
            defaulted.append(m)

    def init_layer(m: str, seen: frozenset[str]) -> int:
        own = [t for t in runtime.get(m, ()) if t.startswith(f"{m}.") and t not in seen]
        got = [layer[t] if t in layer else init_layer(t, seen | {t}) for t in own]
        return max(got, default=2)

    for m in sorted(m for m, is_pkg in modules.items() if is_pkg):
        layer[m] = init_layer(m, frozenset({m}))
    return layer, defaulted


def measure(sources: dict[str, str], root: str) -> dict[str, Any]:
    pkg = root.replace("/", ".")
    modules = {module_name(p): p.endswith("/__init__.py") for p in sources}
    names = set(modules)
    folders: dict[str, Counter[str]] = defaultdict(Counter)
    kinds: dict[tuple[str, str], set[str]] = defaultdict(set)
    lazy_per_file: Counter[str] = Counter()
    lazy = Counter({"all": 0, "package": 0, "outside": 0})
    longest: list[tuple[int, str, str]] = []
    documented = 0
    for path, text in sorted(sources.items()):
        tree, mod = ast.parse(text, filename=path), module_name(path)
        folders[path.rsplit("/", 1)[0]].update(modules=1, lines=len(text.splitlines()))
        documented += ast.get_docstring(tree) is not None
        longest += [(n, path, q) for n, q in functions(tree)]
        for node, kind in walk_imports(tree):
            targets = import_targets(node, mod, modules[mod], names)
            if kind == "lazy":
                lazy_per_file[path] += 1
                lazy.update(["all", "package" if targets else "outside"])
            for t in targets:
                if t != mod:
                    kinds[(mod, t)].add(kind)
    runtime: dict[str, set[str]] = defaultdict(set)
    top: dict[str, set[str]] = defaultdict(set)
    for (s, t), ks in kinds.items():
        if ks & {"top", "lazy"}:
            runtime[s].add(t)
        if "top" in ks:
            top[s].add(t)
    layer, defaulted = layers(pkg, modules, runtime)
    up = [
        {"from": s, "to": t, "layers": f"{layer[s]}->{layer[t]}", "kind": "top" if t in top[s] else "lazy"}
        for s in sorted(runtime)
        for t in sorted(runtime[s])
        if layer[t] > layer[s]
    ]
    longest.sort(key=lambda x: (-x[0], x[1], x[2]))
    return {
        "modules": len(modules),
        "lines": sum(c["lines"] for c in folders.values()),
        "folders": {f: dict(sorted(c.items())) for f, c in sorted(folders.items())},
        "arrows": sum(len(v) for v in runtime.values()),
        "arrows_top_level": sum(len(v) for v in top.values()),
        "arrows_type_checking_only": sum(ks == {"type_checking"} for ks in kinds.values()),
        "in_function_imports": dict(lazy),
        "in_function_imports_top_files": sorted(lazy_per_file.items(), key=lambda x: (-x[1], x[0]))[:10],
        "scc_runtime": sccs(sorted(names), runtime),
        "scc_top_level": sccs(sorted(names), top),
        "layers": dict(sorted(layer.items())),
        "layer_defaulted": defaulted,
        "arrows_up": up,
        "longest_functions": [{"lines": n, "file": p, "name": q} for n, p, q in longest[:10]],
        "docstrings": {"with": documented, "total": len(modules)},
    }


def markdown(r: dict[str, Any], title: str) -> str:
    out = [f"# The house: {title}", "", f"{r['modules']} modules, {r['lines']} lines", ""]
    out += ["| folder | modules | lines |", "|---|---:|---:|"]
    out += [f"| {f} | {c['modules']} | {c['lines']} |" for f, c in r["folders"].items()]
    lz = r["in_function_imports"]
    out += ["", "## Imports", f"- arrows (runtime module -> module): {r['arrows']} ({r['arrows_top_level']} top-level)"]
    out += [f"- arrows only under TYPE_CHECKING: {r['arrows_type_checking_only']}"]
    out += [
        f"- imports inside functions: {lz['all']} ({lz['package']} of the package, {lz['outside']} stdlib/third-party)"
    ]
    out += [f"  - {p}: {n}" for p, n in r["in_function_imports_top_files"]]
    for key, what in (("scc_runtime", "runtime (top-level + lazy)"), ("scc_top_level", "top-level only")):
        comps = r[key]
        out += ["", f"## Import circles, {what}: {len(comps)}, sizes {[len(c) for c in comps]}"]
        out += [f"- largest: {', '.join(comps[0])}"] if comps else []
        out += [f"- {', '.join(c)}" for c in comps[1:]]
    out += ["", f"## Arrows running up: {len(r['arrows_up'])}"]
    out += [f"- {a['from']} -> {a['to']} ({a['layers']}, {a['kind']})" for a in r["arrows_up"]]
    out += [f"- layer 2 by default: {', '.join(r['layer_defaulted']) or 'none'}"]
    out += ["", "## Longest functions"] + [f"- {f['lines']} {f['file']}:{f['name']}" for f in r["longest_functions"]]
    d = r["docstrings"]
    out += ["", f"## Module docstrings: {d['with']}/{d['total']}"]
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rev", help="a git commit to measure (default: the working tree)")
    ap.add_argument("--json", type=Path, help="write every number to this file")
    ap.add_argument("--root", default="agrec", help="the package folder, relative to the repository")
    args = ap.parse_args()
    report = {"rev": args.rev, **measure(read_sources(REPO, args.root, args.rev), args.root)}
    print(markdown(report, args.rev or "working tree"))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
