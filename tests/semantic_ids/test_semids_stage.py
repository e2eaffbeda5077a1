"""The semantic-ID stage end to end: MovieLens-100k (CI profile), imported codes, caching, determinism."""
import json

import numpy as np
import pytest

from agrec.errors import DataError
from agrec.semantic_ids import CodeTable
from agrec.semantic_ids import embed as embed_mod
from agrec.semantic_ids.stage import prepare_codes, prepare_semantic_ids
from agrec.run.session import open_session

from conftest import CI_PROFILE, write_json

SHORT = {"semantic_ids.rqvae.epochs": 6, "semantic_ids.rqvae.eval_every": 3}


def session(tmp_path, name="run", **overrides):
    return open_session(CI_PROFILE, run_dir=tmp_path / name, report_dir=tmp_path / f"{name}_rep",
                        overrides={**SHORT, **overrides})


def test_movielens_codes_are_collision_free_cached_and_deterministic(tmp_path):
    s = session(tmp_path)
    sem = prepare_semantic_ids(s, progress=False)
    codes = sem.codes
    assert codes.n_items == 1682 and codes.is_collision_free()
    assert codes.codebook_sizes[:3] == (32, 32, 32)
    rec = sem.record
    assert rec["source"] == "rqvae" and rec["after"]["collision_rate"] == 0.0
    assert rec["before"]["collision_rate"] > 0 and rec["dedup"]["extra_level"]
    assert codes.n_levels == 4 and codes.codebook_sizes[3] == rec["before"]["max_group"]
    np.testing.assert_array_equal(sem.raw_codes.codes, codes.codes[:, :3])
    assert sem.embeddings.shape == (1682, 384) and len(sem.texts) == 1682
    assert sem.texts[0] == "Toy Story (1995). Genres: Animation, Children's, Comedy"
    assert set(sem.train_log["epoch"]) == set(range(7))
    folder = s.run.root / "semantic_ids"
    for f in ("codes.json", "codes_raw.json", "ml-100k.index.json", "embeddings.npy", "rqvae.safetensors",
              "rqvae.json", "train_log.csv", "texts.json", "stage.json"):
        assert (folder / f).is_file(), f
    index = json.loads((folder / "ml-100k.index.json").read_text())
    assert index["1"] == codes.item_tokens(0) and len(index) == 1682
    # the exported index imports back to the same table
    back = CodeTable.from_index_json(folder / "ml-100k.index.json", item_ids=codes.item_ids,
                                     codebook_sizes=codes.codebook_sizes)
    np.testing.assert_array_equal(back.codes, codes.codes)

    stamp = s.run.record_path("semantic_ids").stat().st_mtime_ns
    again = prepare_codes(s)  # reused, not recomputed
    assert s.run.record_path("semantic_ids").stat().st_mtime_ns == stamp
    np.testing.assert_array_equal(again.codes, codes.codes)

    other = prepare_codes(session(tmp_path, "run2"))  # same seed, fresh run dir: identical codes
    np.testing.assert_array_equal(other.codes, codes.codes)
    reseeded = prepare_codes(session(tmp_path, "run3", seed=7))
    assert reseeded.is_collision_free() and not np.array_equal(reseeded.codes, codes.codes)


@pytest.fixture
def index_only_dir(tmp_path):
    """LC-Rec folder with interactions and an index.json that has duplicates, no item text."""
    d = tmp_path / "lcrec"
    d.mkdir()
    write_json(d / "Toy.inter.json", {"0": [0, 1, 2, 3], "1": [1, 2, 4, 5], "2": [5, 4, 3, 2, 1, 0]})
    write_json(d / "Toy.index.json", {
        "0": ["<a_0>", "<b_0>", "<c_0>", "<d_0>"],
        "1": ["<a_0>", "<b_0>", "<c_0>", "<d_0>"],   # duplicate of 0
        "2": ["<a_1>", "<b_2>", "<c_0>", "<d_5>"],
        "3": ["<a_1>", "<b_2>", "<c_0>", "<d_5>"],   # duplicate of 2
        "4": ["<a_1>", "<b_2>", "<c_0>", "<d_5>"],   # duplicate of 2
        "5": ["<a_2>", "<b_0>", "<c_1>", "<d_1>"],
    })
    return d


def lcrec_overrides(d, **kw):
    return {"data.format": "lcrec", "data.dataset": "Toy", "data.path": str(d), "data.require_text": False, **kw}


@pytest.mark.parametrize("dedup, expected_last", [
    ("extra_level", None),
    ("reassign", [0, 1, 5, 0, 1, 1]),  # lowest free last code under the same prefix, in item order
])
def test_given_codes_are_used_and_made_collision_free(tmp_path, index_only_dir, dedup, expected_last):
    s = session(tmp_path, **lcrec_overrides(index_only_dir, **{"semantic_ids.dedup": dedup}))
    sem = prepare_semantic_ids(s, progress=False)
    assert sem.record["source"] == "index.json" and sem.record["fit"] is None
    assert sem.raw_codes.n_collisions() == 3 and sem.codes.is_collision_free()
    assert sem.embeddings is None and sem.train_log.empty
    assert not (s.run.root / "semantic_ids" / "rqvae.safetensors").exists()
    if dedup == "extra_level":
        assert sem.codes.codes[:, 4].tolist() == [0, 1, 0, 1, 2, 0]
        assert sem.codes.item_tokens(4)[-1] == "<e_2>"
    else:
        assert sem.codes.n_levels == 4 and sem.codes.codes[:, 3].tolist() == expected_last
    exported = json.loads((s.run.root / "semantic_ids" / "Toy.index.json").read_text())
    assert exported["3"] == sem.codes.item_tokens(3)


def test_training_path_on_lcrec_text_with_reassign(tmp_path, monkeypatch, lcrec_dir):
    # four 2-d "embeddings": 0 and 1 identical, so they collide; reassign moves one to a free code
    vecs = np.array([[1, 0], [1, 0], [0, 1], [-1, 0], [0, -1]], dtype=np.float32)
    monkeypatch.setattr(embed_mod, "encode_minilm", lambda texts, *a, **k: vecs[:len(texts)])
    s = session(tmp_path, **{"data.format": "lcrec", "data.dataset": "Toy", "data.path": str(lcrec_dir),
                             "semantic_ids.use_given_codes": False, "semantic_ids.method": "rkmeans",
                             "semantic_ids.dedup": "reassign", "semantic_ids.embedding_cache": None,
                             "semantic_ids.rqvae.n_levels": 2, "semantic_ids.rqvae.codebook_size": 4})
    sem = prepare_semantic_ids(s, progress=False)
    assert sem.record["source"] == "rkmeans" and sem.texts[0].startswith("Title: Item 0")
    assert sem.codes.is_collision_free() and sem.codes.n_levels == 2
    assert sem.record["dedup"]["reassigned"] == sem.record["before"]["n_items"] - sem.record["before"]["n_unique"]


def test_no_text_and_no_codes_is_a_clear_error(tmp_path, index_only_dir):
    s = session(tmp_path, **lcrec_overrides(index_only_dir, **{"semantic_ids.use_given_codes": False}))
    with pytest.raises(DataError, match="no item text and no given codes"):
        prepare_semantic_ids(s, progress=False)


def test_collaborative_codes_need_no_text(tmp_path, index_only_dir):
    """A dataset without item text gets learned codes from its training interactions (encoder collaborative)."""
    s = session(tmp_path, **lcrec_overrides(index_only_dir, **{
        "semantic_ids.use_given_codes": False, "semantic_ids.encoder": "collaborative",
        "semantic_ids.collaborative_dim": 2, "semantic_ids.method": "rkmeans",
        "semantic_ids.rqvae.n_levels": 2, "semantic_ids.rqvae.codebook_size": 2}))
    sem = prepare_semantic_ids(s, progress=False)
    assert sem.record["source"] == "rkmeans" and sem.texts is None and sem.codes.is_collision_free()
    assert sem.record["embedding"]["encoder"] == "collaborative" and sem.embeddings.shape == (6, 2)
    folder = s.run.root / "semantic_ids"
    np.testing.assert_array_equal(np.load(folder / "embeddings.npy"), sem.embeddings)
    # training prefixes: user 0 [0, 1], user 1 [1, 2], user 2 [5, 4, 3, 2]: every item has an edge, none is zero
    assert np.all(np.linalg.norm(sem.embeddings, axis=1) > 0)
    again = prepare_semantic_ids(s, progress=False)  # reused from the run folder
    np.testing.assert_array_equal(again.embeddings, sem.embeddings)
    np.testing.assert_array_equal(again.codes.codes, sem.codes.codes)


def test_given_codes_embed_the_text_only_when_diagnostics_are_asked_for(tmp_path, monkeypatch, lcrec_dir):
    """lcrec_dir has item text and given codes: the codes need no embedding, so none is computed unless the
    profile asks for the text diagnostics; then they are computed, and dropped again when no longer asked for."""
    calls = []

    def fake(texts, *a, **k):
        calls.append(len(texts))
        return np.ones((len(texts), 3), dtype=np.float32)

    monkeypatch.setattr(embed_mod, "encode_minilm", fake)
    base = {"data.format": "lcrec", "data.dataset": "Toy", "data.path": str(lcrec_dir),
            "semantic_ids.embedding_cache": None}
    s = session(tmp_path, **base)
    sem = prepare_semantic_ids(s, progress=False)
    folder = s.run.root / "semantic_ids"
    assert calls == [] and sem.embeddings is None and sem.record["embedding"] is None
    assert sem.record["source"] == "index.json" and len(sem.texts) == 5 and (folder / "texts.json").is_file()
    assert not (folder / "embeddings.npy").exists()
    s = session(tmp_path, **base, **{"semantic_ids.text_diagnostics": True})
    sem = prepare_semantic_ids(s, progress=False)
    assert calls == [5] and sem.embeddings.shape == (5, 3) and (folder / "embeddings.npy").is_file()
    s = session(tmp_path, **base)                          # asked for no longer: recomputed without them
    sem = prepare_semantic_ids(s, progress=False)
    assert calls == [5] and sem.embeddings is None and not (folder / "embeddings.npy").exists()
    assert "embeddings.npy" not in s.run.read_record("semantic_ids")["artefacts"]
