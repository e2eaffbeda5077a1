"""``agrec data check``: is a copy of an LC-Rec dataset the one the registry knows, and can the pipeline use it?

For the dataset of a profile (``data.dataset`` in ``data.path``) it reports, one line per fact:

- files: present / absent, and the sha256 (or, where only that is recorded, git's blob id) against the
  registry (:mod:`agrec.data.registry`); "no recorded checksum" where nothing is recorded;
- statistics of ``<D>.inter.json`` (users, items, interactions, average / min / max length, repeated
  interactions, test / validation items already in their user's history) against the registry and, where
  recorded, the paper's Table 1;
- coverage: every interacted item has codes (``<D>.index.json``) and / or text (``<D>.item.json``);
- codes: entries, levels, codebook sizes (largest code + 1) and collisions (items sharing a full code tuple,
  which the semantic-ID stage separates with ``semantic_ids.dedup``).

A line is ``ok``, ``DIFFERS`` / ``MISSING`` / ``ERROR`` (the check fails: exit code 1), or informative
(``absent`` for an optional file, ``unknown`` where nothing is recorded, ``note``). A dataset that is not in
the registry gets its values printed, a note, and the entry that would record it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agrec.data.lcrec import inter_sequences, lcrec_text, read_json
from agrec.data.registry import FILE_KINDS, REGISTRY_FILE, DatasetRecord, file_digests, load_registry
from agrec.errors import DataError
from agrec.semantic_ids.codes import CodeTable
from agrec.errors import ConfigError

FAILING = ("DIFFERS", "MISSING", "ERROR")
SHOW_IDS = 5  # ids listed when items lack codes / text


@dataclass
class Line:
    """One reported fact: ``status`` (ok, DIFFERS, MISSING, ERROR, absent, unknown, note), what, and detail."""

    section: str
    status: str
    name: str
    detail: str

    @property
    def failing(self) -> bool:
        return self.status in FAILING


@dataclass
class CheckReport:
    """The check of one dataset folder; :meth:`format` is what ``agrec data check`` prints."""

    dataset: str
    folder: Path
    record: DatasetRecord | None
    lines: list[Line] = field(default_factory=list)
    measured: dict[str, dict[str, Any]] = field(default_factory=dict)  # section -> values (for a new entry)
    sha256: dict[str, str] = field(default_factory=dict)  # file name -> sha256 of this copy

    @property
    def ok(self) -> bool:
        return not any(line.failing for line in self.lines)

    def add(self, section: str, status: str, name: str, detail: str) -> None:
        self.lines.append(Line(section, status, name, detail))

    def format(self) -> str:
        out = [f"{self.dataset}: {self.folder} (LC-Rec layout)"]
        if self.record is not None:
            paper = (
                "the paper's Table 1 is recorded too" if self.record.paper else "the paper's Table 1 is not recorded"
            )
            out.append(f"registry: {self.record.source} (statistics measured on those files; {paper})")
            out.extend(f"note: {n}" for n in self.record.notes)
        else:
            out.append(
                f"registry: {self.dataset} is not a known dataset: nothing to compare with; the values below "
                f"are this copy's"
            )
        section = None
        for line in self.lines:
            if line.section != section:
                section = line.section
                out.append(section)
            out.append(f"  {line.status:8s}  {line.name:24s}  {line.detail}".rstrip())
        failing = [line for line in self.lines if line.failing]
        if failing:
            out.append(
                f"result: FAILED, {len(failing)} problem(s): "
                + "; ".join(f"{line.name} {line.status.lower()}" for line in failing)
            )
        elif self.record is None:
            out.append("result: ok (usable; not in the registry, so nothing was compared)")
            out.append(f"to record it, add to agrec/data/{REGISTRY_FILE.name} under datasets:")
            out.extend("  " + s for s in registry_entry(self).splitlines())
        else:
            unknown = sum(line.status == "unknown" for line in self.lines)
            out.append(
                "result: ok, everything recorded matches"
                + (f" ({unknown} value(s) without a recorded counterpart)" if unknown else "")
            )
        return "\n".join(out) + "\n"


# -- measurements -----------------------------------------------------------------------------------------------


def inter_statistics(seqs: dict[str, list[str]]) -> dict[str, Any]:
    """The values of :data:`STAT_KEYS`. ``repeats``: interactions with an item the user already had;
    ``test_in_history`` / ``valid_in_history``: users whose leave-one-out test item (the last) / validation item
    (the one before) is already among the items before it (users of 3 items or more, leave-one-out's minimum),
    the targets that a ranking with the history excluded can never hit."""
    lengths = [len(s) for s in seqs.values()]
    n = sum(lengths)
    return {
        "users": len(seqs),
        "items": len({it for s in seqs.values() for it in s}),
        "interactions": n,
        "avg_length": round(n / len(seqs), 4) if seqs else 0.0,
        "min_length": min(lengths) if lengths else 0,
        "max_length": max(lengths) if lengths else 0,
        "repeats": sum(len(s) - len(set(s)) for s in seqs.values()),
        "test_in_history": sum(len(s) >= 3 and s[-1] in s[:-1] for s in seqs.values()),
        "valid_in_history": sum(len(s) >= 3 and s[-2] in s[:-2] for s in seqs.values()),
    }


def code_shape(index: Any, path: Path) -> dict[str, Any]:
    """The values of :data:`CODE_KEYS` of an ``index.json`` (``codebook_sizes``: largest code per level + 1)."""

    if not isinstance(index, dict):
        raise DataError(f"{path}: expected an object {{item: [codes]}}, got {type(index).__name__}")
    table = CodeTable.from_tokens(list(index.values()), [str(k) for k in index], source=str(path))
    groups = Counter(map(tuple, table.codes.tolist()))
    shared = [c for c in groups.values() if c > 1]
    return {
        "entries": table.n_items,
        "levels": table.n_levels,
        "codebook_sizes": list(table.codebook_sizes),
        "colliding_items": sum(shared),
        "collision_groups": len(shared),
        "largest_group": max(groups.values()) if groups else 0,
    }


def item_texts(items: Any, path: Path) -> dict[str, str]:
    """``{item: LC-Rec text}`` of an ``item.json`` (empty string: no text)."""
    if not isinstance(items, dict):
        raise DataError(f"{path}: expected an object {{item: {{fields}}}}, got {type(items).__name__}")
    out = {}
    for it, meta in items.items():
        if not isinstance(meta, dict):
            raise DataError(f"{path}: item {it!r}: expected an object of fields, got {type(meta).__name__}")
        out[str(it)] = lcrec_text(meta)
    return out


# -- the check --------------------------------------------------------------------------------------------------


def _fmt(key: str, value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if key == "avg_length":
        return f"{float(value):.4f}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, list):
        return "[" + ", ".join(str(v) for v in value) + "]"
    return str(value)


def _compare(
    report: CheckReport,
    section: str,
    values: dict[str, Any],
    recorded: dict[str, Any],
    label: str = "recorded",
    suffix: str = "",
) -> None:
    for key, value in values.items():
        if key not in recorded:
            report.add(
                section,
                "unknown" if report.record is not None else "",
                key + suffix,
                _fmt(key, value) + (" (not recorded)" if report.record is not None else ""),
            )
        elif _fmt(key, value) == _fmt(key, recorded[key]):
            report.add(section, "ok", key + suffix, _fmt(key, value))
        else:
            report.add(section, "DIFFERS", key + suffix, f"{_fmt(key, value)}, {label} {_fmt(key, recorded[key])}")


def _ids(ids: list[str]) -> str:
    shown = ", ".join(repr(i) for i in ids[:SHOW_IDS])
    return shown + (", …" if len(ids) > SHOW_IDS else "")


def _history_note(exclude_history: bool | dict[str, bool] | None) -> str:
    """What the profile's ``exclude_history`` settings do with targets already in their user's history."""
    if exclude_history is None:
        return "a ranking that excludes the history can never hit them (evaluation.exclude_history)"
    settings = {"evaluation.exclude_history": exclude_history} if isinstance(exclude_history, bool) else exclude_history
    first = next(iter(settings))
    masked = [k for k, v in settings.items() if v]
    kept = [k for k, v in settings.items() if not v]
    if not kept:
        return f"the profile's {', '.join(masked)}: true masks them, so no row can hit them"
    if not masked:
        return f"the profile's {', '.join(kept)}: false keeps history items rankable"
    # mixed: the decoded rows follow the first (evaluation); each other one sets how its scorer is stopped early
    # and ranked in its own row
    others = "; ".join(
        f"{k}: {str(v).lower()} {'masks' if v else 'keeps'} them in that scorer's early stopping and its own row"
        for k, v in settings.items()
        if k != first and v != settings[first]
    )
    how = "masks them in" if settings[first] else "keeps them rankable in"
    return f"the profile's {first}: {str(settings[first]).lower()} {how} the decoded rows; {others}"


def check_lcrec(
    folder: str | Path,
    dataset: str,
    registry: dict[str, DatasetRecord] | None = None,
    min_seq_len: int = 3,
    dedup: str = "extra_level",
    exclude_history: bool | dict[str, bool] | None = None,
    use_given_codes: bool = True,
) -> CheckReport:
    """Check the LC-Rec files of ``dataset`` in ``folder`` against ``registry`` (default: the committed one).

    ``min_seq_len``, ``dedup`` and ``exclude_history`` are the profile's (``data.min_seq_len``,
    ``semantic_ids.dedup``; ``exclude_history``: ``{setting: value}`` of every ``exclude_history`` the profile
    sets, ``evaluation.exclude_history`` first, or that one value alone; None: no profile), for the notes on what
    the pipeline will do with short users, colliding codes and targets already in their user's history.
    ``use_given_codes``: the profile's ``semantic_ids.use_given_codes``; False makes the item text a needed file.
    """
    folder = Path(folder)
    registry = load_registry() if registry is None else registry
    rec = registry.get(dataset)
    report = CheckReport(dataset=dataset, folder=folder, record=rec)
    paths = {k: folder / f"{dataset}.{k}.json" for k in FILE_KINDS}
    if not folder.is_dir():
        report.add("files", "MISSING", f"{folder.name}/", "folder not found (data.path)")
        return report

    # files
    for kind in FILE_KINDS:
        p = paths[kind]
        frec = rec.files.get(p.name) if rec is not None else None
        if not p.is_file():
            if frec is not None and kind == "item" and paths["index"].is_file() and use_given_codes:
                # the authors' folder has item text, this copy only the codes: the same rows (the given codes make
                # the semantic IDs), a report with item ids where titles would be
                report.add(
                    "files",
                    "absent",
                    p.name,
                    f"in the registry's copy of {dataset}, not in this one: the semantic IDs come from "
                    f"{paths['index'].name} (the reports show item ids; a profile that makes its own codes, "
                    "semantic_ids.use_given_codes: false, needs it)",
                )
            elif frec is not None:  # the registry's copy of the dataset has this file: this copy is incomplete
                report.add("files", "MISSING", p.name, f"recorded in the registry for {dataset}, not in {folder}")
            elif kind == "inter":
                report.add("files", "MISSING", p.name, "required (the interactions)")
            elif kind == "item" and not paths["index"].is_file():
                report.add(
                    "files",
                    "MISSING",
                    p.name,
                    f"required: neither {p.name} (item text) nor {paths['index'].name} (codes) is present",
                )
            elif kind == "item" and use_given_codes:
                report.add("files", "absent", p.name, f"optional: no item text; codes come from {paths['index'].name}")
            elif kind == "item":
                report.add(
                    "files",
                    "MISSING",
                    p.name,
                    f"required: the profile makes its own codes from the item text (semantic_ids.use_given_codes: "
                    f"false), {paths['index'].name} is not used",
                )
            elif paths["item"].is_file():
                report.add(
                    "files",
                    "absent",
                    p.name,
                    "optional: no given codes; the semantic_ids stage makes them from the item text",
                )
            continue
        sha, blob = file_digests(p)
        report.sha256[p.name] = sha
        if frec is not None and frec.sha256 is not None:
            if sha == frec.sha256:
                report.add("files", "ok", p.name, f"sha256 {sha[:12]}… as recorded")
            else:
                report.add("files", "DIFFERS", p.name, f"sha256 {sha}, recorded {frec.sha256}")
        elif frec is not None and frec.git_blob is not None:
            if blob == frec.git_blob:
                report.add("files", "ok", p.name, f"git blob {blob[:12]}… as recorded (sha256 {sha[:12]}…)")
            else:
                report.add("files", "DIFFERS", p.name, f"git blob {blob}, recorded {frec.git_blob}")
        else:
            report.add("files", "unknown", p.name, f"sha256 {sha}: no recorded checksum")

    parsed: dict[str, Any] = {}
    for kind in FILE_KINDS:
        if paths[kind].is_file():
            try:
                raw = read_json(paths[kind])
                parsed[kind] = {"inter": inter_sequences, "item": item_texts, "index": lambda x, _p: x}[kind](
                    raw, paths[kind]
                )
            except DataError as e:
                report.add("files", "ERROR", paths[kind].name, str(e))

    # statistics
    seqs = parsed.get("inter")
    if seqs is not None:
        stats = inter_statistics(seqs)
        report.measured["statistics"] = stats
        _compare(report, "statistics", stats, rec.statistics if rec is not None else {})
        if rec is not None and rec.paper:
            _compare(report, "statistics", {k: stats[k] for k in rec.paper}, rec.paper, "paper", " (paper Table 1)")
        short = sum(len(s) < min_seq_len for s in seqs.values())
        report.add(
            "statistics",
            "note",
            "short users",
            f"{short:,} user(s) shorter than data.min_seq_len = {min_seq_len}"
            + (" (the data stage filters and counts them)" if short else ""),
        )
        repeated = {"test": stats["test_in_history"], "validation": stats["valid_in_history"]}
        if any(repeated.values()):
            what = " and ".join(
                f"{n:,} {t} item(s) ({n / len(seqs):.1%} of the users)" for t, n in repeated.items() if n
            )
            report.add(
                "statistics",
                "note",
                "targets in history",
                f"{what} already in the user's history: {_history_note(exclude_history)}",
            )

    # coverage
    if seqs is not None:
        used = list(dict.fromkeys(it for s in seqs.values() for it in s))
        index, texts = parsed.get("index"), parsed.get("item")
        if isinstance(index, dict):
            missing = [it for it in used if it not in index]
            if missing:
                report.add(
                    "coverage",
                    "MISSING",
                    "codes",
                    f"{len(missing):,} of {len(used):,} interacted items have "
                    f"no codes in {paths['index'].name}: {_ids(missing)}",
                )
            else:
                report.add("coverage", "ok", "codes", f"{len(used):,} of {len(used):,} interacted items")
            extra = len(set(index) - set(used))
            if extra:
                report.add(
                    "coverage",
                    "note",
                    "codes",
                    f"{extra:,} entries of {paths['index'].name} are never interacted (not in the catalogue)",
                )
        if texts is not None:
            missing = [it for it in used if not texts.get(it)]
            if not missing:
                report.add("coverage", "ok", "text", f"{len(used):,} of {len(used):,} interacted items")
            else:
                what = f"{len(missing):,} of {len(used):,} interacted items have no text: {_ids(missing)}"
                if isinstance(index, dict) and use_given_codes:
                    report.add("coverage", "note", "text", what + " (their codes are given)")
                elif isinstance(index, dict):
                    report.add(
                        "coverage",
                        "MISSING",
                        "text",
                        what + " (semantic_ids.use_given_codes: false makes the codes from text: every item needs it)",
                    )
                else:
                    report.add("coverage", "MISSING", "text", what + " (no codes given: every item needs text)")
        elif paths["index"].is_file() and use_given_codes:
            report.add(
                "coverage",
                "absent",
                "text",
                "no item text: the semantic_ids stage uses the given codes, the reports show item ids",
            )

    # item text (without interactions too: Yelp's public folder)
    texts = parsed.get("item")
    if texts is not None:
        shape = {"entries": len(texts), "with_text": sum(bool(t) for t in texts.values())}
        report.measured["text"] = shape
        _compare(report, "text", shape, rec.text if rec is not None else {})

    # codes
    if "index" in parsed:
        try:
            shape = code_shape(parsed["index"], paths["index"])
        except DataError as e:
            report.add("codes", "ERROR", paths["index"].name, str(e))
        else:
            report.measured["codes"] = shape
            _compare(report, "codes", shape, rec.codes if rec is not None else {})
            if shape["colliding_items"]:
                report.add(
                    "codes",
                    "note",
                    "collisions",
                    f"{shape['colliding_items']:,} items share their code tuple with another; the semantic_ids "
                    f"stage separates them (semantic_ids.dedup = {dedup})",
                )
    return report


def check_profile(profile: Any, registry: dict[str, DatasetRecord] | None = None) -> CheckReport:
    """:func:`check_lcrec` of a profile's dataset (``data.format`` must be ``lcrec``)."""

    cfg = profile.data
    if cfg.format != "lcrec":
        raise ConfigError(
            f"agrec data check: data.format is {cfg.format!r}; the check covers the LC-Rec layout "
            f"(data.format: lcrec) of the paper's datasets"
        )
    if profile.data_path() is None:
        raise ConfigError("agrec data check: data.path is not set")
    return check_lcrec(
        profile.data_path(),
        cfg.dataset,
        registry,
        cfg.min_seq_len,
        profile.semantic_ids.dedup,
        _history_settings(profile),
        profile.semantic_ids.use_given_codes,
    )


def _history_settings(profile: Any) -> dict[str, bool]:
    """Every ``exclude_history`` in effect in the profile, ``evaluation``'s first: the GNN's early stopping, the
    LM's checkpoint choice where it decodes (``lm.select: ndcg``), SASRec's where it is a scorer."""
    settings = {
        "evaluation.exclude_history": profile.evaluation.exclude_history,
        "gnn.train.exclude_history": profile.gnn.train.exclude_history,
    }
    if profile.lm.select == "ndcg":
        settings["lm.select_exclude_history"] = profile.lm.select_exclude_history
    ev = profile.evaluation
    if "sasrec" in {ev.scorer, *ev.scorers, *(ev.fuse or ())}:
        settings["baselines.sasrec.exclude_history"] = profile.baselines.sasrec.exclude_history
    return settings


def registry_entry(report: CheckReport) -> str:
    """The YAML entry that would record this copy (sha256 of each file and the measured values)."""
    import yaml

    entry: dict[str, Any] = {
        "source": "<repository @ commit, folder>",
        "files": {name: {"sha256": sha} for name, sha in report.sha256.items()},
    }
    for section in ("statistics", "text", "codes"):
        if section in report.measured:
            entry[section] = report.measured[section]
    return yaml.safe_dump({report.dataset: entry}, sort_keys=False, default_flow_style=None, width=120)


# -- the data stage's record ------------------------------------------------------------------------------------


def registry_summary(
    dataset: str, inputs: dict[str, str], statistics: dict[str, Any], registry: dict[str, DatasetRecord] | None = None
) -> dict[str, Any] | None:
    """What the data stage records about the registry, from what it computed anyway (no extra read).

    ``inputs``: the stage's input fingerprints (``{"data:<file>": "sha256:<hex>" | "absent"}``);
    ``statistics``: :func:`agrec.data.stats.dataset_statistics` of the loaded dataset. Returns None for a
    dataset that is not in the registry. Statistics are compared only when no user was filtered (a filter
    changes them legitimately).
    """
    registry = load_registry() if registry is None else registry
    rec = registry.get(dataset)
    if rec is None:
        return None
    files: dict[str, str] = {}
    for name, fp in inputs.items():
        if not name.startswith("data:"):
            continue
        fname = name[5:]
        frec = rec.files.get(fname)
        if fp == "absent":
            files[fname] = "absent"
        elif frec is None or frec.sha256 is None:
            files[fname] = "no recorded sha256"
        else:
            files[fname] = "matches" if fp == f"sha256:{frec.sha256}" else "differs"
    if statistics.get("filtered_users"):
        stats = f"not compared: {statistics['filtered_users']} user(s) filtered by data.min_seq_len"
    else:
        keys = [k for k in ("users", "items", "interactions", "min_length", "max_length") if k in rec.statistics]
        diff = [
            f"{k} {statistics[k]} (recorded {rec.statistics[k]})" for k in keys if statistics[k] != rec.statistics[k]
        ]
        stats = ("differs: " + ", ".join(diff)) if diff else ("matches" if keys else "not recorded")
    matches = "differs" not in files.values() and not stats.startswith("differs")
    return {"source": rec.source, "files": files, "statistics": stats, "matches": matches}


def summary_note(summary: dict[str, Any]) -> str:
    """One line for the dataset's notes (shown and recorded by the data notebook)."""
    matched = [f for f, s in summary["files"].items() if s == "matches"]
    if summary["matches"]:
        return (
            f"registry: {', '.join(matched) or 'no file'} match{'es' if len(matched) == 1 else ''} "
            f"{summary['source']} (sha256); statistics: {summary['statistics']}"
        )
    bad = [f for f, s in summary["files"].items() if s == "differs"]
    what = ", ".join(bad + (["statistics"] if summary["statistics"].startswith("differs") else []))
    return f"registry: {what} differ(s) from {summary['source']}; `agrec data check` says how"
