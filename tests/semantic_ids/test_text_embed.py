"""Item text templates, text embeddings (MiniLM offline, mean-pooled LM states) and the embedding cache."""
import hashlib
import json
import os

import numpy as np
import pandas as pd
import pytest
import torch

from agrec.data.dataset import SeqDataset
from agrec.errors import ConfigError, DataError
from agrec.semantic_ids import embed as embed_mod
from agrec.semantic_ids.embed import EmbeddingSpec, embed_texts, encode_minilm, mean_pooled_lm_embeddings
from agrec.semantic_ids.text import TEMPLATES, item_texts, render


def toy_ds(info, text=None):
    n = len(info)
    return SeqDataset(name="toy", user_ids=["u"], item_ids=[str(i) for i in range(n)],
                      sequences=[np.arange(n)], item_text=text, item_info=pd.DataFrame(info))


def test_movielens_and_amazon_templates():
    row = {"title": "Heat", "year": "1995", "genres": ["Action", "Crime"]}
    assert render(TEMPLATES["movielens"], row) == "Heat (1995). Genres: Action, Crime"
    assert render(TEMPLATES["movielens"], {"title": "Heat", "year": "", "genres": []}) == "Heat"
    amz = {"title": "Strings", "brand": "", "categories": ["Guitar", "Parts"], "description": "x " * 400}
    out = render(TEMPLATES["amazon"], amz)
    assert out.startswith("Title: Strings. Categories: Guitar, Parts. Description: x x")
    assert "Brand" not in out and len(out) == len("Title: Strings. Categories: Guitar, Parts. Description: ") + 499
    # braces inside values are text, not fields
    assert render("{title}[ by {brand}]", {"title": "a {b}", "brand": "c"}) == "a {b} by c"


def test_item_texts_auto_custom_and_errors():
    ds = toy_ds({"title": ["A", "B"], "genres": [["x"], []]}, text=["loader A", "loader B"])
    assert item_texts(ds) == ["loader A", "loader B"]
    assert item_texts(ds, "{title}[: {genres}]") == ["A: x", "B"]
    with pytest.raises(ConfigError, match=r"field 'brand' is not an item column"):
        item_texts(ds, "{brand}")
    with pytest.raises(DataError, match=r"item '1' has an empty text"):
        item_texts(ds, "[{genres}]")
    with pytest.raises(DataError, match="has no item text"):
        item_texts(toy_ds({"title": ["A"]}))


@pytest.fixture(scope="module")
def tiny_lm():
    """A 2-layer Llama with a word-level tokenizer, built in memory (nothing downloaded)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    words = "<unk> the a movie about space war love story dog cat comedy drama".split()
    tk = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="<unk>")  # no pad token on purpose
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(words), hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64)
    return LlamaForCausalLM(cfg).eval(), tok


def test_mean_pooled_lm_is_padding_invariant(tiny_lm):
    model, tok = tiny_lm
    texts = ["a movie about space war", "dog", "the love story of a cat and a dog comedy drama"]
    batched = mean_pooled_lm_embeddings(model, tok, texts, batch_size=3, normalize=False, progress=False)
    assert batched.shape == (3, 16) and batched.dtype == np.float32
    alone = np.stack([mean_pooled_lm_embeddings(model, tok, [t], normalize=False, progress=False)[0] for t in texts])
    np.testing.assert_allclose(batched, alone, rtol=1e-4, atol=1e-5)
    # the mean over the text's own tokens, computed directly
    ids = torch.tensor([tok("dog")["input_ids"]])
    h = model.model(input_ids=ids).last_hidden_state[0].mean(0).detach().numpy()
    np.testing.assert_allclose(batched[1], h, rtol=1e-4, atol=1e-5)
    normed = mean_pooled_lm_embeddings(model, tok, texts, batch_size=2, progress=False)
    np.testing.assert_allclose(np.linalg.norm(normed, axis=1), 1.0, rtol=1e-5)
    assert model.training is False


def test_minilm_loads_offline_and_embeds_meaningfully():
    e = encode_minilm(["Toy Story (1995). Genres: Animation, Children's, Comedy",
                       "Toy Story 2 (1999). Genres: Animation, Children's, Comedy",
                       "Heat (1995). Genres: Action, Crime, Thriller"], progress=False)
    assert os.environ.get("HF_HUB_OFFLINE") == "1"
    assert e.shape == (3, 384) and e.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, rtol=1e-5)
    cos = e @ e.T
    assert cos[0, 1] > cos[0, 2] + 0.2


def test_embedding_cache_run_folder_and_shared(tmp_path, monkeypatch):
    calls = []

    def fake(texts, batch_size, max_length, normalize, progress, device="cpu", dtype="float64"):
        calls.append(list(texts))
        return np.arange(len(texts) * 4, dtype=np.float32).reshape(len(texts), 4)

    monkeypatch.setattr(embed_mod, "encode_minilm", fake)
    spec = EmbeddingSpec("minilm", None, 256, True)
    shared = tmp_path / "cache"
    a, info = embed_texts(["x", "y"], spec, tmp_path / "run1", shared_cache=shared, progress=False)
    assert info["source"] == "computed" and len(calls) == 1
    b, info = embed_texts(["x", "y"], spec, tmp_path / "run1", shared_cache=shared, progress=False)
    assert info["source"] == "run" and len(calls) == 1
    c, info = embed_texts(["x", "y"], spec, tmp_path / "run2", shared_cache=shared, progress=False)
    assert info["source"] == "shared_cache" and len(calls) == 1
    np.testing.assert_array_equal(a, c)
    _, info = embed_texts(["x", "z"], spec, tmp_path / "run1", shared_cache=shared, progress=False)
    assert info["source"] == "computed" and len(calls) == 2  # other texts, other key
    _, info = embed_texts(["x", "z"], spec, tmp_path / "run1", shared_cache=shared, progress=False, refresh=True)
    assert info["source"] == "computed" and len(calls) == 3  # refresh (the stage's force) ignores caches
    assert spec.key(["x", "y"]) != EmbeddingSpec("minilm", None, 128, True).key(["x", "y"])
    assert spec.key(["xy"]) != spec.key(["x", "y"])


def test_code_tree_html_works_offline(tmp_path):
    from agrec.semantic_ids import CodeTable
    from agrec.semantic_ids.plots import code_tree_figure, save_plotly_html

    t = CodeTable(codes=[[0, 0], [0, 1], [1, 0]], codebook_sizes=(2, 2))
    fig = code_tree_figure(t, ["<A>", "B", "C"])
    tr = fig.data[0]
    assert list(tr.ids) == ["a0", "a1", "a0/b0", "a0/b1", "a1/b0", "item0", "item1", "item2"]
    assert list(tr.values) == [2, 1, 1, 1, 1, 1, 1, 1] and tr.parents[5] == "a0/b0"
    assert tr.hovertext[5] == "&lt;A&gt;<br><a_0><b_0>"  # titles escaped, full ID shown
    out = save_plotly_html(fig, tmp_path / "rep" / "figures" / "tree.html", static_dir=tmp_path / "_static")
    html = out.read_text()
    assert 'src="../../_static/plotly.min.js"' in html and "cdn.plot.ly" not in html
    assert (tmp_path / "_static" / "plotly.min.js").stat().st_size > 1_000_000


def test_lm_encoder_from_a_local_checkpoint(tmp_path, tiny_lm):
    model, tok = tiny_lm
    model.save_pretrained(tmp_path / "lm")
    tok.save_pretrained(tmp_path / "lm")
    spec = EmbeddingSpec("lm", f"path:{tmp_path / 'lm'}", 64, True)
    texts = ["a movie about space", "a dog story"]
    e, info = embed_texts(texts, spec, tmp_path / "run", batch_size=2, progress=False)
    assert info["source"] == "computed" and e.shape == (2, 16)
    np.testing.assert_allclose(e, mean_pooled_lm_embeddings(model, tok, texts, progress=False), rtol=1e-5, atol=1e-6)
    with pytest.raises(ConfigError, match="folder not found"):
        embed_texts(texts, EmbeddingSpec("lm", f"path:{tmp_path / 'nope'}", 64, True), tmp_path / "run2",
                    progress=False)


class _FakeSentenceModel(torch.nn.Module):
    """Stands in for SentenceTransformer: encode() returns its weight's rows in the model's dtype."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.w = torch.nn.Parameter(torch.randn(3, 5, dtype=torch.float32))
        self.max_seq_length = 512
        self.seen_dtype = None

    def encode(self, texts, batch_size, show_progress_bar, convert_to_tensor, normalize_embeddings):
        assert convert_to_tensor
        self.seen_dtype = self.w.dtype
        out = self.w[: len(texts)].detach()
        return torch.nn.functional.normalize(out, dim=1) if normalize_embeddings else out


def test_encode_minilm_forward_in_float64_returns_float32():
    model = _FakeSentenceModel()
    e64 = encode_minilm(["a", "b", "c"], model=model, progress=False)
    assert model.seen_dtype == torch.float64 and e64.dtype == np.float32
    # exactly the float64 result rounded once to float32
    exact = torch.nn.functional.normalize(model.w.detach(), dim=1).numpy().astype(np.float32)
    np.testing.assert_array_equal(e64, exact)
    model32 = _FakeSentenceModel()
    e32 = encode_minilm(["a", "b", "c"], model=model32, progress=False, dtype="float32")
    assert model32.seen_dtype == torch.float32 and e32.dtype == np.float32
    with pytest.raises(ConfigError, match="embed_dtype"):
        encode_minilm(["a"], model=_FakeSentenceModel(), progress=False, dtype="float16")


def test_embedding_key_depends_on_forward_dtype():
    texts = ["x", "y"]
    k64 = EmbeddingSpec("minilm", None, 256, True).key(texts)
    assert EmbeddingSpec("minilm", None, 256, True, "float64").key(texts) == k64
    assert EmbeddingSpec("minilm", None, 256, True, "float32").key(texts) != k64


@pytest.mark.parametrize("damage", ["overwrite_bytes", "record_missing", "garbage", "non_finite_same_sha"])
def test_damaged_shared_cache_entry_is_recomputed_and_named_never_used(tmp_path, monkeypatch, capsys, damage):
    calls = []

    def fake(texts, batch_size, max_length, normalize, progress, device="cpu", dtype="float64"):
        calls.append(list(texts))
        return np.arange(len(texts) * 4, dtype=np.float32).reshape(len(texts), 4)

    monkeypatch.setattr(embed_mod, "encode_minilm", fake)
    spec = EmbeddingSpec("minilm", None, 256, True)
    shared = tmp_path / "cache"
    good, _ = embed_texts(["x", "y"], spec, tmp_path / "run1", shared_cache=shared, progress=False)
    entry = shared / f"{spec.key(['x', 'y'])}.npy"
    rec = json.loads(entry.with_suffix(".json").read_text())
    assert rec["sha256"] == hashlib.sha256(entry.read_bytes()).hexdigest() and rec["shape"] == [2, 4]
    raw = bytearray(entry.read_bytes())
    if damage == "overwrite_bytes":   # same size, the values near 3.4e38 of the reported case
        raw[-16:] = b"\xff\xff\x7f\x7f" * 4
        entry.write_bytes(bytes(raw))
    elif damage == "record_missing":
        entry.with_suffix(".json").unlink()
    elif damage == "garbage":
        entry.write_bytes(b"not a numpy file")
    else:                             # a NaN whose record was forged to match: the values are checked too
        arr = np.load(entry)
        arr[0, 0] = np.nan
        np.save(entry, arr)
        rec["sha256"] = hashlib.sha256(entry.read_bytes()).hexdigest()
        entry.with_suffix(".json").write_text(json.dumps(rec))
    capsys.readouterr()
    again, info = embed_texts(["x", "y"], spec, tmp_path / "run2", shared_cache=shared, progress=False)
    assert info["source"] == "computed" and len(calls) == 2
    np.testing.assert_array_equal(again, good)
    out = capsys.readouterr().out
    assert f"embedding cache: {entry}" in out and "recomputed" in out
    # the recomputed entry is whole again and used from then on
    _, info = embed_texts(["x", "y"], spec, tmp_path / "run3", shared_cache=shared, progress=False)
    assert info["source"] == "shared_cache" and len(calls) == 2


def test_damaged_run_folder_embeddings_are_recomputed(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(embed_mod, "encode_minilm",
                        lambda texts, *a, **k: np.ones((len(texts), 3), dtype=np.float32))
    spec = EmbeddingSpec("minilm", None, 256, True)
    embed_texts(["x"], spec, tmp_path / "run", progress=False)
    f = tmp_path / "run" / "embeddings.npy"
    raw = bytearray(f.read_bytes())
    raw[-4:] = b"\x00\x00\xc0\x7f"    # a NaN in place of the last value, same size
    f.write_bytes(bytes(raw))
    arr, info = embed_texts(["x"], spec, tmp_path / "run", progress=False)
    assert info["source"] == "computed" and np.isfinite(arr).all()
    assert "is damaged" in capsys.readouterr().out
