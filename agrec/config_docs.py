"""The configuration reference (``docs/config.md``), generated from the profile's dataclasses.

Every profile key is a field of a dataclass below :class:`agrec.config.Profile`; its documentation is the
comment written beside the field in the source: the comment lines directly above it and the comment at the end
of its line (section rulers such as ``# -- optimisation --`` are headings, not documentation). A key without
such a comment is *undocumented*, which ``tests/test_config_docs.py`` refuses, as it refuses a
``docs/config.md`` that differs from what this module generates. Regenerate it with::

    python -m agrec.config_docs            # writes docs/config.md
    python -m agrec.config_docs --check    # exits 1 naming what is stale or undocumented
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import io
import json
import sys
import textwrap
import tokenize
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from agrec.canonical import NEUTRAL, field_dataclass, is_runtime
from agrec.config import Profile
from agrec.io import atomic_write_text

DOC_PATH = Path(__file__).resolve().parent.parent / "docs" / "config.md"


@dataclass(frozen=True)
class KeyDoc:
    """One profile key as the reference shows it."""

    key: str  # dotted name, e.g. ``lm.tiny.n_layers``
    type: str  # the annotation as written in the source
    default: str  # the default as YAML would spell it (JSON literals)
    doc: str  # the field's comment; "" when it has none
    marker: str  # "runtime", "neutral" or "" (see agrec/canonical.py)
    owner: str  # module.Class the field is declared in


@dataclass(frozen=True)
class SectionDoc:
    """A dataclass that holds keys: its dotted prefix, the class and the first paragraph of its docstring."""

    prefix: str  # "" for the top level, else e.g. "lm.tiny"
    owner: str
    doc: str


def _is_ruler(comment: str) -> bool:
    return comment.startswith("--")


@cache
def field_comments(cls: type) -> dict[str, str]:
    """``{field name: comment}`` for the annotated fields written in ``cls``'s class body.

    The comment is the block of ``#`` lines directly above the field (a blank line or code ends it; a section
    ruler ``# -- ... --`` is not part of it) followed by the trailing comment of the field's own line.
    """
    try:
        src = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):
        return {}
    lines = src.splitlines()
    trailing: dict[int, str] = {}  # 0-based line -> trailing comment
    full: dict[int, str] = {}  # 0-based line -> whole-line comment
    for tok in tokenize.generate_tokens(io.StringIO(src).readline):
        if tok.type != tokenize.COMMENT:
            continue
        row, col = tok.start[0] - 1, tok.start[1]
        text = tok.string.lstrip("#").strip()
        if lines[row][:col].strip():
            trailing[row] = text
        else:
            full[row] = text
    names = {f.name for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else set()
    out: dict[str, str] = {}
    for i, line in enumerate(lines):
        stripped = line.strip()
        if not stripped or stripped.startswith(("#", "def ", "@")) or line[:1] not in (" ", "\t"):
            continue
        name = stripped.split(":", 1)[0].strip()
        if name not in names or name in out or ":" not in stripped:
            continue
        above: list[str] = []
        j = i - 1
        while j >= 0 and j in full and not _is_ruler(full[j]):
            above.insert(0, full[j])
            j -= 1
        parts = [" ".join(above)] if above else []
        if i in trailing:
            parts.append(trailing[i])
        out[name] = "; ".join(p for p in parts if p)
    return out


def _owner(cls: type, name: str) -> type:
    """The class in ``cls``'s MRO whose body declares field ``name`` (comments live there)."""
    for base in cls.__mro__:
        if name in getattr(base, "__annotations__", {}):
            return base
    return cls


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def _yaml_literal(value: Any) -> str:
    if value is dataclasses.MISSING:
        return "(required)"
    try:
        return json.dumps(value)
    except TypeError:
        return repr(value)


def _first_paragraph(doc: str | None) -> str:
    text = inspect.cleandoc(doc or "")
    return " ".join(text.split("\n\n", 1)[0].split())


def collect(cls: type = Profile, prefix: str = "") -> tuple[list[SectionDoc], list[KeyDoc]]:
    """Every section (dataclass) and every key below ``cls``, in declaration order.

    A field that holds a dataclass is a section, not a key; fields marked ``internal`` (set by the loader,
    not a YAML key) are left out.
    """
    sections = [SectionDoc(prefix.rstrip("."), f"{cls.__module__}.{cls.__qualname__}", _first_paragraph(cls.__doc__))]
    keys: list[KeyDoc] = []
    nested: list[tuple[type, str]] = []
    for f in dataclasses.fields(cls):
        if f.metadata.get("internal"):
            continue
        sub = field_dataclass(f)
        if sub is not None:
            nested.append((sub, f"{prefix}{f.name}."))
            continue
        owner = _owner(cls, f.name)
        marker = "runtime" if is_runtime(f) else "neutral" if f.metadata.get(NEUTRAL) else ""
        keys.append(
            KeyDoc(
                key=f"{prefix}{f.name}",
                type=str(f.type),
                default=_yaml_literal(_default(f)),
                doc=field_comments(owner).get(f.name, ""),
                marker=marker,
                owner=f"{owner.__module__}.{owner.__qualname__}",
            )
        )
    for sub, p in nested:
        s, k = collect(sub, p)
        sections += s
        keys += k
    return sections, keys


def undocumented(keys: list[KeyDoc] | None = None) -> list[str]:
    """Dotted names of the keys that have no comment in the source."""
    if keys is None:
        keys = collect()[1]
    return [k.key for k in keys if not k.doc]


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


MARKERS = {
    "runtime": "**runtime**: recorded, never part of a cache key (changing it recomputes nothing)",
    "neutral": "**neutral**: outside the cache key while it holds its default (runs made before it existed stay "
    "current)",
}


def render(sections: list[SectionDoc] | None = None, keys: list[KeyDoc] | None = None) -> str:
    """The Markdown of ``docs/config.md``: one table per section, every key with type, default and comment."""
    if sections is None or keys is None:
        sections, keys = collect()
    out = [
        "# Configuration reference",
        "",
        "<!-- Generated by `python -m agrec.config_docs` from the dataclasses of agrec/*/config.py; do not edit. -->",
        "",
        "Every key a profile (`configs/*.yaml`) may set, with its type and default, generated from the comment "
        "beside each field in the source. Set a key in YAML by nesting its dotted name, or on the command line "
        "with `--set lm.epochs=8`. Two markers say how a key enters the cache keys "
        "([Running: one cache-key policy](running.md)):",
        "",
        *(f"- {text}" for text in MARKERS.values()),
        "",
        "Every other key is part of the key of each stage that reads its section: changing it recomputes that "
        "stage and what depends on it.",
        "",
        f"{len(keys)} keys in {len(sections)} sections.",
        "",
    ]
    by_section: dict[str, list[KeyDoc]] = {}
    for k in keys:
        by_section.setdefault(k.key.rsplit(".", 1)[0] if "." in k.key else "", []).append(k)
    for s in sections:
        rows = by_section.get(s.prefix, [])
        if not rows:
            continue
        out += [f"## `{s.prefix}`" if s.prefix else "## Top level", ""]
        if s.doc:
            out += [s.doc, ""]
        out += [f"Declared in `{s.owner}`.", "", "| key | type | default | meaning |", "|---|---|---|---|"]
        for k in rows:
            meaning = _cell(k.doc) + (f" ({k.marker})" if k.marker else "")
            out.append(f"| `{k.key}` | `{_cell(k.type)}` | `{_cell(k.default)}` | {meaning} |")
        out.append("")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m agrec.config_docs", description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="do not write; exit 1 if docs/config.md is stale")
    ap.add_argument("--out", type=Path, default=DOC_PATH, help="where to write (default: docs/config.md)")
    args = ap.parse_args(argv)
    sections, keys = collect()
    missing = undocumented(keys)
    if missing:
        print(
            f"{len(missing)} undocumented profile key(s): write a comment beside each field: " + ", ".join(missing),
            file=sys.stderr,
        )
    text = render(sections, keys) + "\n"
    if args.check:
        current = args.out.read_text(encoding="utf-8") if args.out.exists() else ""
        if current != text:
            print(f"{args.out} is stale: run python -m agrec.config_docs", file=sys.stderr)
            return 1
        return 1 if missing else 0
    atomic_write_text(args.out, text)
    print(f"wrote {args.out}: {len(keys)} keys, {len(keys) - len(missing)} documented")
    return 1 if missing else 0


if __name__ == "__main__":
    raise SystemExit(main())
