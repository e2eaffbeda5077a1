import numpy as np
import pytest

from agrec.data.build import build_dataset, natural_order
from agrec.errors import DataError


def test_natural_order_only_for_ascii_integers():
    assert natural_order(["10", "-2", "3"]) == ["-2", "3", "10"]
    for ids in (["10", "٣"], ["--5", "1"], ["²", "1"], ["+1", "2"], ["1", "x"]):
        assert natural_order(ids) == ids  # first-appearance order, no crash


def test_non_finite_times_are_refused(tmp_path):
    users = np.array(["u", "u", "u"])
    items = np.array(["a", "b", "c"])
    with pytest.raises(DataError, match=r"f\.csv: line 7: timestamp nan is not a finite number; 1 row\(s\) have one"):
        build_dataset("x", tmp_path / "f.csv", users, items, np.array([1.0, 2.0, np.nan]), 3,
                      line_numbers=np.array([5, 6, 7]))
