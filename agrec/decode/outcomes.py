"""Per-user test outcomes in the report folder, so that a seed can be paired with seeds run elsewhere.

``agrec seeds`` pools its paired tests over users and seeds, which needs every row's per-user outcome on the
test item. The decode stage keeps those in its run folder (``rankings/``, the top-K items of every user), which
is large, machine-local and usually not kept: a study whose seeds ran on different machines or days had only
their means. The decode notebook therefore also writes ``results/decode_outcomes.npz`` into the report: for each
row, the rank of the test item in the row's list (1 = first, 0 = not in it), beside the users, their test items,
the rows' recorded settings and metrics, the seed and the configuration the stage ran with. Ranks are all
HR@K and NDCG@K need (``K`` up to the list's length), and the file is small (a few hundred KiB for 50,000 users).

Its sha256 is in the report's ``results/manifest.json`` like every result file, and :func:`read_outcomes` checks
it, checks that the ranks give back the recorded test metrics exactly, and refuses another layout.
"""

from __future__ import annotations

import io
import json
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from agrec.errors import AgrecError
from agrec.io import atomic_write_bytes
from agrec.manifest import check_manifest, update_manifest

if TYPE_CHECKING:
    from agrec.config import Profile
    from agrec.decode.stage import DecodeReport
    from agrec.run.report import Report

OUTCOMES = "decode_outcomes.npz"  # in the report's results/
OUTCOMES_FORMAT = 1
TARGET = "test"  # the item the outcomes are of (validation only chose α)


@dataclass
class Outcomes:
    """One decode stage's per-user test outcomes (see the module docstring).

    ``ranks[row]`` is ``int32 [U]``: the 1-based rank of ``targets[u]`` in that row's list for ``users[u]``, 0 where
    it is not in the list (the list holds ``list_length`` items). ``rows`` are the decode results' rows (name,
    settings, metrics); ``config``, ``decode_key`` and ``protocol`` what decided them (:func:`decode_identity`)."""

    seed: int
    config: dict[str, Any]
    decode_key: str
    protocol: Any
    chosen: dict[str, Any]
    rows: list[dict[str, Any]]
    users: np.ndarray
    targets: np.ndarray
    ranks: dict[str, np.ndarray]
    list_length: int
    path: Path


def decode_identity(profile: "Profile") -> dict[str, Any]:
    """What decides a decode stage's numbers, as its report's outcomes record it: the keyed configuration sections
    of the stage (``baselines`` too: SASRec's rows and a distillation teacher), its key and its protocol version."""
    from agrec.run.lineage import SECTIONS_OF, STAGE_PROTOCOL, config_key

    key = profile.key_dict()
    return {
        "config": {s: key[s] for s in SECTIONS_OF["decode"] if s in key and s != "seed"},
        "decode_key": config_key(profile, "decode"),
        "protocol": STAGE_PROTOCOL.get("decode"),
    }


def write_outcomes(report: "Report", dec: "DecodeReport", profile: "Profile") -> Path:
    """Write ``<report>/results/decode_outcomes.npz`` from the decode stage's ``results.json`` and test rankings
    (atomically), and its sha256 into the results' manifest. Every row must have test rankings over the same users."""
    from agrec.analysis.significance import rows_ranks
    from agrec.decode.stage import read_results
    from agrec.run.report import RESULTS_KIND

    res = read_results(dec.folder)  # what the stage stored (plain JSON), not the notebook's objects
    if not res["rows"]:
        raise AgrecError(f"{dec.folder}: the decode stage has no rows; nothing to record")
    names = [r["name"] for r in res["rows"]]
    users, targets, ranks, length = rows_ranks(dec.folder, names, TARGET)
    meta = {
        "format": OUTCOMES_FORMAT,
        "seed": profile.seed,
        **decode_identity(profile),
        "chosen": res["chosen"],
        "rows": [{k: r[k] for k in ("name", "settings", "metrics") if k in r} for r in res["rows"]],
        "list_length": length,
    }
    buf = io.BytesIO()
    np.savez_compressed(
        buf,
        meta=np.array(json.dumps(meta, sort_keys=True)),
        users=np.asarray(users, dtype=np.int64),
        targets=np.asarray(targets, dtype=np.int64),
        ranks=np.stack([ranks[n] for n in names]).astype(np.int32),
    )
    folder = report.root / "results"
    path = atomic_write_bytes(folder / OUTCOMES, buf.getvalue())
    update_manifest(folder, [OUTCOMES], RESULTS_KIND)
    return path


def read_outcomes(report_dir: str | Path, required: bool = True) -> Outcomes | None:
    """``results/decode_outcomes.npz`` of a report folder, checked against the folder's manifest and against its
    own recorded test metrics. Missing: a named error, or None when not ``required``."""
    from agrec.run.report import RESULTS_KIND

    folder = Path(report_dir) / "results"
    path = folder / OUTCOMES
    remedy = (
        "rerun that run's decode stage to rewrite it (agrec run --config <profile> --stages decode, or for one seed "
        "of agrec seeds: agrec seeds --config <profile> --seeds <seed>,)"
    )
    if not path.is_file():
        if not required:
            return None
        raise AgrecError(f"{path}: no per-user decode outcomes (written by the decode stage's report); {remedy}")
    check_manifest(folder, RESULTS_KIND, [OUTCOMES], remedy)
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            users, targets, ranks = z["users"], z["targets"], z["ranks"]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error) as e:
        raise AgrecError(f"{path}: cannot be read as decode outcomes ({type(e).__name__}: {e}); {remedy}") from None
    if not isinstance(meta, dict) or meta.get("format") != OUTCOMES_FORMAT:
        got = meta.get("format") if isinstance(meta, dict) else None
        raise AgrecError(f"{path}: outcomes of layout {got!r}, this version reads {OUTCOMES_FORMAT}; {remedy}")
    lacking = sorted({"seed", "config", "decode_key", "protocol", "chosen", "rows", "list_length"} - set(meta))
    if lacking:
        raise AgrecError(f"{path}: the outcomes' record lacks {', '.join(lacking)}; {remedy}")
    rows = meta["rows"]
    if not isinstance(rows, list) or ranks.shape != (len(rows), len(users)) or targets.shape != users.shape:
        raise AgrecError(
            f"{path}: {len(rows) if isinstance(rows, list) else '?'} rows recorded but ranks of shape "
            f"{ranks.shape} for {len(users)} users; {remedy}"
        )
    try:
        out = Outcomes(
            seed=int(meta["seed"]),
            config=dict(meta["config"]),
            decode_key=str(meta["decode_key"]),
            protocol=meta["protocol"],
            chosen=dict(meta["chosen"]),
            rows=rows,
            users=users,
            targets=targets,
            ranks={str(r["name"]): ranks[i] for i, r in enumerate(rows)},
            list_length=int(meta["list_length"]),
            path=path,
        )
        for r in rows:  # the ranks must give back the numbers the report shows, or they are not that run's
            recorded = {m: float(v) for m, v in r["metrics"][TARGET].items() if m.split("@")[0] in ("HR", "NDCG")}
            gains = outcome_gains(out, r["name"], ks=sorted({int(m.split("@")[1]) for m in recorded}))
            for m, want in recorded.items():
                if not np.isclose(gains[m].mean(), want, rtol=0, atol=1e-9):
                    raise AgrecError(
                        f"{path}: row {r['name']!r}: the per-user ranks give {m} {gains[m].mean():.6f}, the record "
                        f"{want:.6f}; {remedy}"
                    )
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise AgrecError(f"{path}: the outcomes' record is malformed ({type(e).__name__}: {e}); {remedy}") from None
    return out


def outcome_gains(out: Outcomes, row: str, ks: list[int] | tuple[int, ...]) -> dict[str, np.ndarray]:
    """Per-user ``HR@K`` and ``NDCG@K`` (float64 ``[U]``) of a row, as
    :func:`agrec.analysis.significance.user_gains` gives them from the full rankings."""
    from agrec.analysis.significance import rank_gains

    if max(ks, default=0) > out.list_length:
        raise AgrecError(f"{out.path}: @{max(ks)} asked of lists of {out.list_length} items")
    return rank_gains(out.ranks[row], ks)
