"""The data stage: load, split, save to the run directory, or reuse what is there.

For a dataset of the registry (:mod:`agrec.data.registry`) the record also says whether the files are the known
ones (``registry``: per file matches / differs / absent, and the statistics), from the sha256s the stage computes
anyway for its input fingerprints; the dataset's notes carry it as one line. ``agrec data check`` says how a copy
differs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agrec.data.check import registry_summary, summary_note
from agrec.data.dataset import SeqDataset
from agrec.data.loaders import load_dataset
from agrec.data.split import LeaveOneOutSplit, leave_one_out
from agrec.data.stats import dataset_statistics, head_share
from agrec.run.lineage import config_key, stage_inputs
from agrec.data.store import load_saved_dataset, load_split, save_dataset, save_split
from agrec.run.rundir import RunDir
from agrec.run.session import Session

if TYPE_CHECKING:
    from agrec.config import Profile

STAGE = "data"


def prepare_data(session: Session, force: bool = False) -> tuple[SeqDataset, LeaveOneOutSplit]:
    """Return the dataset and its leave-one-out split, from the run directory when up to date.

    The stage depends on the ``data`` section and the content of the dataset files (loading is
    deterministic, the seed is unused); see :mod:`agrec.run.lineage`.
    """
    profile, run = session.profile, session.run
    key = config_key(profile, STAGE)
    folder = run.stage_dir(STAGE)
    if not force and run.is_current(STAGE, key, profile):
        return load_saved_dataset(folder), load_split(folder)
    run.invalidate(STAGE)
    ds = load_dataset(profile.data, profile.data_path())
    split = leave_one_out(ds)
    stats = dataset_statistics(ds)
    inputs = stage_inputs(profile, run, STAGE)
    extra = {}
    summary = registry_summary(profile.data.dataset, inputs, stats) if profile.data.format == "lcrec" else None
    if summary is not None:
        ds.notes.append(summary_note(summary))
        extra["registry"] = summary
    save_dataset(folder, ds)
    save_split(folder, split)
    run.mark_done(
        STAGE, key, profile, inputs=inputs, statistics=stats, split_sizes=split.sizes(), notes=ds.notes, **extra
    )
    return ds, split


@dataclass(frozen=True)
class RunData:
    """A run's profile and folder with its data stage's dataset and split, loaded once by the caller and handed
    to the stages that read them (gnn, baselines, the scorers), so that none of them reloads or re-checks the
    data stage."""

    profile: Profile
    run: RunDir
    ds: SeqDataset
    split: LeaveOneOutSplit


def load_run_data(source: Session | RunData) -> RunData:
    """``source`` itself when it is already :class:`RunData`; otherwise the session's profile and run folder
    with the output of :func:`prepare_data` (computed or reused)."""
    if isinstance(source, RunData):
        return source
    ds, split = prepare_data(source)
    return RunData(source.profile, source.run, ds, split)


# Version of results/data.json's layout (data_results; see agrec.run.report).
RESULTS_FORMAT = 1


def data_results(ds: SeqDataset, split: LeaveOneOutSplit, stats: dict[str, Any]) -> dict[str, Any]:
    """What ``report.record("data", …, RESULTS_FORMAT)`` stores: the dataset's statistics row
    (:func:`agrec.data.statistics_table`), the split's sizes, the share of interactions on the 20 % most popular
    items and the loader's notes."""
    return {**stats, "split": split.sizes(), "head20_share": head_share(ds.item_popularity()), "notes": list(ds.notes)}
