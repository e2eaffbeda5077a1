"""Save / load a :class:`SeqDataset` and its split in a run directory (no pickle)."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from agrec.data.dataset import SeqDataset
from agrec.data.split import LeaveOneOutSplit
from agrec.io import atomic_write_bytes, atomic_write_json

DATASET_NPZ = "dataset.npz"
DATASET_JSON = "dataset.json"
SPLIT_NPZ = "split.npz"


def _pack(seqs: list[np.ndarray], dtype) -> tuple[np.ndarray, np.ndarray]:
    offsets = np.zeros(len(seqs) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(s) for s in seqs])
    flat = np.concatenate(seqs).astype(dtype) if seqs else np.zeros(0, dtype)
    return flat, offsets


def _unpack(flat: np.ndarray, offsets: np.ndarray) -> list[np.ndarray]:
    return [flat[offsets[i] : offsets[i + 1]] for i in range(len(offsets) - 1)]


def _npz_bytes(**arrays: np.ndarray) -> bytes:
    """A compressed ``.npz`` whose bytes depend on the arrays only.

    ``np.savez_compressed`` stamps each zip entry with the current time, so the same data saved twice
    differs; the data stage's digest (which every downstream stage keys on) would then change on a mere
    recomputation. Entries here carry a fixed timestamp; ``np.load`` reads the file as usual.
    """
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, arr in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            with zf.open(info, "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.asanyarray(arr), allow_pickle=False)
    return buf.getvalue()


def save_dataset(folder: Path, ds: SeqDataset) -> None:
    seq, off = _pack(ds.sequences, np.int64)
    arrays = {"sequences": seq, "offsets": off}
    if ds.timestamps is not None:
        arrays["timestamps"], _ = _pack(ds.timestamps, np.float64)
    atomic_write_bytes(folder / DATASET_NPZ, _npz_bytes(**arrays))
    meta = {
        "name": ds.name,
        "user_ids": ds.user_ids,
        "item_ids": ds.item_ids,
        "item_text": ds.item_text,
        "item_codes": ds.item_codes,
        "n_filtered_users": ds.n_filtered_users,
        "n_filtered_interactions": ds.n_filtered_interactions,
        "notes": ds.notes,
        "item_info": json.loads(ds.item_info.to_json(orient="records")) if len(ds.item_info.columns) else [],
    }
    atomic_write_json(folder / DATASET_JSON, meta, indent=None)


def load_saved_dataset(folder: Path) -> SeqDataset:
    with np.load(folder / DATASET_NPZ) as z:
        seqs = _unpack(z["sequences"], z["offsets"])
        times = _unpack(z["timestamps"], z["offsets"]) if "timestamps" in z.files else None
    meta = json.loads((folder / DATASET_JSON).read_text(encoding="utf-8"))
    info = pd.DataFrame(meta.pop("item_info"))
    info.index.name = "item"
    return SeqDataset(sequences=seqs, timestamps=times, item_info=info, **meta)


def save_split(folder: Path, split: LeaveOneOutSplit) -> None:
    train, off = _pack(split.train, np.int64)
    atomic_write_bytes(folder / SPLIT_NPZ, _npz_bytes(train=train, offsets=off, valid=split.valid, test=split.test))


def load_split(folder: Path) -> LeaveOneOutSplit:
    with np.load(folder / SPLIT_NPZ) as z:
        return LeaveOneOutSplit(train=_unpack(z["train"], z["offsets"]), valid=z["valid"], test=z["test"])
