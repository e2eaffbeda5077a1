"""The data stage: load, split, save to the run directory, or reuse what is there."""

from __future__ import annotations

from agrec.data.dataset import SeqDataset
from agrec.data.loaders import load_dataset
from agrec.data.split import LeaveOneOutSplit, leave_one_out
from agrec.data.stats import dataset_statistics
from agrec.lineage import config_key
from agrec.data.store import load_saved_dataset, load_split, save_dataset, save_split
from agrec.session import Session

STAGE = "data"


def prepare_data(session: Session, force: bool = False) -> tuple[SeqDataset, LeaveOneOutSplit]:
    """Return the dataset and its leave-one-out split, from the run directory when up to date.

    The stage depends on the ``data`` section and the content of the dataset files (loading is
    deterministic, the seed is unused); see :mod:`agrec.lineage`.
    """
    profile, run = session.profile, session.run
    key = config_key(profile, STAGE)
    folder = run.stage_dir(STAGE)
    if not force and run.is_current(STAGE, key, profile):
        return load_saved_dataset(folder), load_split(folder)
    run.invalidate(STAGE)
    ds = load_dataset(profile.data, profile.data_path())
    split = leave_one_out(ds)
    save_dataset(folder, ds)
    save_split(folder, split)
    run.mark_done(STAGE, key, profile, statistics=dataset_statistics(ds), split_sizes=split.sizes(), notes=ds.notes)
    return ds, split
