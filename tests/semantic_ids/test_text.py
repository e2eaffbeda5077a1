"""Item text templates: an item whose fields are all empty has no text, whatever labels the template adds."""
import numpy as np
import pandas as pd
import pytest

from agrec.data.dataset import SeqDataset
from agrec.errors import ConfigError, DataError
from agrec.semantic_ids.text import item_texts, render


def toy_ds(info):
    n = len(next(iter(info.values())))
    return SeqDataset(name="toy", user_ids=["u"], item_ids=[f"i{i}" for i in range(n)],
                      sequences=[np.arange(n)], item_info=pd.DataFrame(info))


@pytest.mark.parametrize("template, info", [
    ("Categories: {categories}", {"categories": [["a"], []]}),
    ("Categories: {categories}", {"categories": [["a"], ["", " "]]}),
    ("{title}. Tags: {tags}", {"title": ["A", " "], "tags": [["t"], [""]]}),
    ("Title: {title}", {"title": ["A", None]}),
    ("Title: {title}", {"title": ["A", np.nan]}),
    ("Title: {title}", pd.DataFrame({"title": pd.array(["A", pd.NA], dtype="string")}).to_dict("list")),
])
def test_labels_without_values_are_an_empty_text(template, info):
    with pytest.raises(DataError, match=rf"toy: item 'i1' has an empty text \(template '{template}'\): all its fields "
                                        rf"are empty"):
        item_texts(toy_ds(info), template)


def test_template_without_fields_is_refused():
    with pytest.raises(ConfigError, match=r"semantic_ids\.template 'hello' uses no item field"):
        item_texts(toy_ds({"title": ["a", "b"]}), "hello")


def test_empty_list_entries_are_dropped():
    assert render("{tags}", {"tags": ["", "a", " ", "b"]}) == "a, b"
    assert item_texts(toy_ds({"title": ["A", ""], "tags": [[], ["x"]]}), "{title}[. Tags: {tags}]") == ["A", ". Tags: x"]
