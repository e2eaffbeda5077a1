"""Data layer: loaders for MovieLens-100k, LC-Rec JSON and CSV/TSV, one dataset type, leave-one-out split."""

from agrec.data.config import DataConfig
from agrec.data.dataset import SeqDataset
from agrec.data.loaders import load_dataset
from agrec.data.split import LeaveOneOutSplit, leave_one_out
from agrec.data.stats import dataset_statistics, statistics_table

__all__ = [
    "DataConfig",
    "SeqDataset",
    "LeaveOneOutSplit",
    "load_dataset",
    "leave_one_out",
    "dataset_statistics",
    "statistics_table",
]
