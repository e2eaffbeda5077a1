"""An item-level input embedding beside the code tokens (``lm.tiny.item_embedding``).

The generative LM sees an item only through its semantic-ID code tokens, so two items that share their first
codes look alike until the last code, and an item's own identity (which SASRec learns one vector for) is
never an input. This adds one learned vector per item to the input embedding at the *last* code token of
every complete item in the sequence: at that position the item is fully known from the tokens before it, and
what the position predicts is the *next* item's first code, so the vector never reveals a code the model is
asked for. Positions inside an item, the answer being generated and every non-code token get nothing.

The item at a position is read from the token ids themselves (the last ``n_levels`` tokens, one per level in
order, form an item's code tuple; codes are unique per item), so every caller that feeds token ids (training,
validation loss, the decoder's prompt forward, ``generate``) gets it without passing anything new. A decoder
step that feeds one generated token sees no complete item, which is right: the answer's item is unknown.

The vectors are a parameter ``item_weight`` ``[n_items, hidden]`` registered on the input-embedding module,
zero at the start (the model begins as the one without them, and the seed's other weights are unchanged), and
added by a forward hook, so the model stays a plain ``LlamaForCausalLM``. Checkpoints keep them in their own
file :data:`ITEM_EMBEDDING_FILE` beside ``model.safetensors``.
"""

from __future__ import annotations

from pathlib import Path
from typing import cast

import torch
import torch.nn.functional as F

from agrec.errors import AgrecError

ITEM_EMBEDDING_FILE = "item_embedding.safetensors"
PARAM = "item_weight"  # the parameter's name on the input-embedding module
INDEXER = "item_indexer"  # the attribute holding its ItemIndexer (the item loss reads items from token ids too)


class ItemIndexer:
    """Finds, in token ids, the positions where an item's code tuple ends and which item it is.

    Args:
        item_token_ids: ``LongTensor[n_items, n_levels]``, the vocabulary ids of each item's codes
            (:attr:`agrec.lm.vocab.CodeVocab.item_token_ids`); the rows must be distinct.
        vocab_size: the model's vocabulary size (ids of ``input_ids`` are below it).
    """

    def __init__(self, item_token_ids: torch.Tensor, vocab_size: int):
        items = item_token_ids.to(torch.long).cpu()
        if items.ndim != 2 or items.shape[0] == 0:
            raise ValueError(f"item_token_ids must be [n_items > 0, n_levels], got {tuple(items.shape)}")
        n_items, n_levels = items.shape
        if int(items.max()) >= vocab_size or int(items.min()) < 0:
            raise ValueError(f"item_token_ids hold ids outside the vocabulary of {vocab_size}")
        level = torch.full((vocab_size,), -1, dtype=torch.long)
        code = torch.zeros(vocab_size, dtype=torch.long)
        radix = []
        for lvl in range(n_levels):
            ids = torch.unique(items[:, lvl])
            if bool((level[ids] >= 0).any()):
                raise ValueError(f"a code token id is used at level {lvl} and at another level")
            level[ids] = lvl
            code[ids] = torch.arange(len(ids))
            radix.append(len(ids))
        # mixed-radix key of a code tuple: level 0 most significant
        weights = torch.ones(n_levels, dtype=torch.long)
        for lvl in range(n_levels - 2, -1, -1):
            weights[lvl] = weights[lvl + 1] * radix[lvl + 1]
        keys = (code[items] * weights).sum(dim=1)
        sorted_keys, order = torch.sort(keys)
        if n_items > 1 and bool((sorted_keys[1:] == sorted_keys[:-1]).any()):
            raise ValueError(
                "two items share one code tuple: an item embedding needs unique codes (semantic_ids.dedup)"
            )
        self.n_items, self.n_levels = n_items, n_levels
        self._tables = {"level": level, "code": code, "weights": weights, "keys": sorted_keys, "order": order}
        self._on: dict[torch.device, dict[str, torch.Tensor]] = {}

    @property
    def code_token_ids(self) -> torch.Tensor:
        """``LongTensor[n_code_tokens]``: the vocabulary ids of the code tokens of every level, ascending."""
        return torch.nonzero(self._tables["level"] >= 0).squeeze(1)

    def _at(self, device: torch.device) -> dict[str, torch.Tensor]:
        if device not in self._on:
            self._on[device] = {k: v.to(device) for k, v in self._tables.items()}
        return self._on[device]

    def __call__(self, input_ids: torch.Tensor) -> torch.Tensor:
        """``input_ids`` ``LongTensor[..., T]`` -> ``LongTensor[..., T]``: at each position where the last
        ``n_levels`` tokens are one item's codes in level order, that item's index; -1 elsewhere."""
        t = self._at(input_ids.device)
        level, code = t["level"][input_ids], t["code"][input_ids]
        T = input_ids.shape[-1]
        ends = level == self.n_levels - 1
        key = torch.zeros_like(input_ids)
        for back in range(self.n_levels):  # back = how many positions before the item's last code
            lvl = self.n_levels - 1 - back
            if back >= T:
                ends = torch.zeros_like(ends)
                break
            lv = F.pad(level[..., : T - back], (back, 0), value=-1)
            cd = F.pad(code[..., : T - back], (back, 0), value=0)
            ends = ends & (lv == lvl)
            key = key + cd * t["weights"][lvl]
        pos = torch.searchsorted(t["keys"], key).clamp(max=self.n_items - 1)
        found = ends & (t["keys"][pos] == key)
        return torch.where(found, t["order"][pos], torch.full_like(pos, -1))


def add_item_embedding(
    model: torch.nn.Module, item_token_ids: torch.Tensor, dropout: float = 0.0
) -> torch.nn.Parameter:
    """Give ``model`` (a transformers causal LM) an item-level input embedding: a zero-initialised parameter
    ``item_weight`` ``[n_items, hidden]`` on its input-embedding module, added by a forward hook at the last
    code token of every complete item (see the module docstring). Returns the parameter.

    ``dropout``: while the module is training, each position's item vector is left out with this probability
    and the kept ones are scaled by ``1 / (1 - dropout)`` (inverted dropout; eval mode adds every vector), so
    that the LM cannot lean on memorised item identities alone.

    Register it before any other hook on the input embedding (e.g. :func:`agrec.lm.dropout.add_hidden_dropout`),
    so that those see the sum. Raises ValueError if the model has one already or the codes are not unique."""
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"item-embedding dropout must be in [0, 1), got {dropout}")
    embed = _input_embeddings(model)
    if hasattr(embed, PARAM):
        raise ValueError(f"{type(model).__name__} already has an item embedding")
    tokens: torch.Tensor = embed.weight  # type: ignore[assignment]
    indexer = ItemIndexer(item_token_ids, int(tokens.shape[0]))
    weight = torch.nn.Parameter(
        torch.zeros(indexer.n_items, int(tokens.shape[1]), dtype=tokens.dtype, device=tokens.device)
    )
    embed.register_parameter(PARAM, weight)
    setattr(embed, INDEXER, indexer)

    def hook(module: torch.nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
        idx = indexer(args[0])
        w = getattr(module, PARAM)
        scale = (idx >= 0).to(output.dtype)
        if dropout and module.training:
            scale = scale * (torch.rand(idx.shape, device=idx.device) >= dropout).to(output.dtype) / (1.0 - dropout)
        return output + F.embedding(idx.clamp(min=0), w) * scale.unsqueeze(-1)

    embed.register_forward_hook(hook)
    return weight


@torch.no_grad()
def init_item_embedding(model: torch.nn.Module, vectors: torch.Tensor) -> torch.Tensor:
    """Start ``model``'s item embedding (:func:`add_item_embedding`) from another model's item vectors
    (``lm.tiny.item_init: teacher``: the distillation teacher's) instead of zeros. Returns the values set,
    ``[n_items, hidden]``.

    ``vectors`` ``[n_items, d]``, row ``i`` for item ``i``. The two spaces share no basis, so only the geometry
    (which items lie close, which far) carries over: with ``d <= hidden`` the vectors fill the first ``d``
    dimensions and the rest stay zero (the LM's basis is arbitrary at initialisation); with ``d > hidden`` they are
    centred and projected onto their ``hidden`` leading principal directions (the most variance any linear map to
    ``hidden`` dimensions keeps). The result is then scaled so that its mean row norm equals the mean norm of the
    LM's code-token input embeddings: an item vector starts as large as one token embedding, neither drowning the
    codes it is added to nor vanishing beside them.

    Raises ValueError if the model has no item embedding, ``vectors`` has the wrong number of rows, or holds a
    non-finite or all-zero value set."""
    weight = item_embedding(model)
    if weight is None:
        raise ValueError(f"{type(model).__name__} has no item embedding to initialise (lm.tiny.item_embedding)")
    indexer = item_indexer(model)
    assert indexer is not None
    n_items, hidden = weight.shape
    v = vectors.detach().to(torch.float64).cpu()
    if v.ndim != 2 or v.shape[0] != n_items:
        raise ValueError(f"item vectors of shape {tuple(v.shape)}, expected [{n_items}, d] (one row per item)")
    if not bool(torch.isfinite(v).all()):
        raise ValueError("the item vectors hold NaN or infinite values")
    if v.shape[1] > hidden:
        v = v - v.mean(dim=0, keepdim=True)
        _, _, vh = torch.linalg.svd(v, full_matrices=False)
        v = v @ vh[:hidden].T  # fewer than hidden columns when there are fewer items than dimensions
    v = F.pad(v, (0, hidden - v.shape[1]))
    norm = float(v.norm(dim=1).mean())
    if norm == 0.0:
        raise ValueError("the item vectors are all zero: nothing to start from")
    # the code tokens' rows only: the specials' rows are not what an item vector is added to
    tokens = cast(torch.Tensor, _input_embeddings(model).weight).detach()
    target = float(tokens[indexer.code_token_ids.to(tokens.device)].to(torch.float64).norm(dim=1).mean())
    out = (v * (target / norm)).to(weight.dtype)
    weight.copy_(out.to(weight.device))
    return out


def item_embedding(model: torch.nn.Module) -> torch.nn.Parameter | None:
    """The model's item-embedding parameter, or None if it has none."""
    return getattr(_input_embeddings(model), PARAM, None)


def item_indexer(model: torch.nn.Module) -> ItemIndexer | None:
    """The :class:`ItemIndexer` of the model's item embedding, or None if it has none."""
    return getattr(_input_embeddings(model), INDEXER, None)


def _input_embeddings(model: torch.nn.Module) -> torch.nn.Module:
    get = getattr(model, "get_input_embeddings", None)
    if get is None:
        raise ValueError(f"{type(model).__name__} is not a transformers model (no get_input_embeddings)")
    return get()


def state_dict_without(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """``model.state_dict()`` less the item embedding: what ``save_pretrained`` writes for a plain Llama."""
    return {k: v for k, v in model.state_dict().items() if not k.endswith("." + PARAM)}


def save_item_embedding(model: torch.nn.Module, folder: Path) -> None:
    """Write the model's item embedding to ``folder/``:data:`ITEM_EMBEDDING_FILE`."""
    from safetensors.torch import save_file

    weight = item_embedding(model)
    if weight is None:
        raise ValueError(f"{type(model).__name__} has no item embedding to save")
    save_file({PARAM: weight.detach().cpu().contiguous()}, str(Path(folder) / ITEM_EMBEDDING_FILE))


def load_item_embedding(
    model: torch.nn.Module, folder: Path, item_token_ids: torch.Tensor, dropout: float = 0.0
) -> torch.nn.Parameter:
    """Add an item embedding to ``model`` (:func:`add_item_embedding`, with ``dropout``) with the values saved in
    ``folder``.

    Raises :class:`AgrecError` naming the file if it is missing or its shape is not ``[n_items, hidden]``."""
    from safetensors.torch import load_file

    path = Path(folder) / ITEM_EMBEDDING_FILE
    if not path.is_file():
        raise AgrecError(f"{path}: missing; the checkpoint was trained with lm.tiny.item_embedding but lacks it")
    saved = load_file(str(path)).get(PARAM)
    weight = add_item_embedding(model, item_token_ids, dropout)
    if saved is None or tuple(saved.shape) != tuple(weight.shape):
        shape = None if saved is None else tuple(saved.shape)
        raise AgrecError(f"{path}: holds {PARAM} of shape {shape}, expected {tuple(weight.shape)} (items x hidden)")
    with torch.no_grad():
        weight.copy_(saved.to(weight.dtype))
    return weight
