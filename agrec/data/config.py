"""Configuration of the data stage."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from agrec.errors import ConfigError
from agrec.paths import check_name, check_path


@dataclass
class DataConfig:
    """Which dataset to load and how to split it.

    ``format``: ``movielens`` (the embedded MovieLens-100k from the ``recbole`` wheel, or RecBole
    atomic files in ``path``), ``lcrec`` (LC-Rec / LETTER JSON files ``X.inter.json``,
    ``X.item.json``, optional ``X.index.json``) or ``tabular`` (CSV/TSV interactions + item table).
    """

    dataset: str = "ml-100k"  # name of the dataset; also the file prefix for lcrec/movielens
    # movielens: RecBole atomic files (or the embedded ml-100k); lcrec: LC-Rec/LETTER JSON; tabular: CSV/TSV
    format: Literal["movielens", "lcrec", "tabular"] = "movielens"
    path: str | None = None  # folder with the files; None = embedded MovieLens-100k
    # Leave-one-out needs >= 3 items (train >= 1, valid, test); SASRec/LC-Rec practice is 5-core data.
    min_seq_len: int = 3
    require_text: bool = True  # every item must have text (False when codes are given)
    # tabular layout only
    inter_file: str = "interactions.csv"
    item_file: str | None = "items.csv"  # tabular: the item table (id + text columns); None = no item text
    user_col: str = "user_id"  # tabular: the interactions' user-id column
    item_col: str = "item_id"  # tabular: the item-id column (interactions and item table)
    time_col: str = "timestamp"  # tabular: a number or a date; orders each user's interactions
    sort_by_time: bool = False  # False: a file whose rows are not chronological per user is an error
    text_cols: list[str] | None = None  # item-table columns joined into the item text; None = all but id

    def __post_init__(self) -> None:
        # The dataset name is a folder below runs_dir / reports_dir and a file prefix inside data.path.
        check_name(self.dataset, "data.dataset")
        if self.path is not None:
            check_path(self.path, "data.path")
        check_path(self.inter_file, "data.inter_file")
        if self.item_file is not None:
            check_path(self.item_file, "data.item_file")
        cols = {"data.user_col": self.user_col, "data.item_col": self.item_col, "data.time_col": self.time_col}
        if len(set(cols.values())) < 3:
            raise ConfigError(
                f"data.user_col, data.item_col and data.time_col must be three different columns, got {cols}"
            )
        if self.min_seq_len < 3:
            raise ConfigError(
                f"data.min_seq_len must be >= 3 for a leave-one-out split "
                f"(train, validation, test), got {self.min_seq_len}"
            )
