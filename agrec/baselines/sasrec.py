"""SASRec (Kang & McAuley, "Self-Attentive Sequential Recommendation", ICDM 2018), trained with full-softmax
cross-entropy as RecBole 1.2.1's ``SASRec`` with ``loss_type: CE`` (the strong variant of the model).

Architecture as RecBole's: item + learned positional embeddings -> LayerNorm -> dropout -> ``n_layers``
post-norm Transformer blocks (self-attention with a causal mask, GELU feed-forward, residuals, LayerNorm) ->
the hidden state of position t scores every item by a dot product with the *shared* item embedding table.
The blocks are :class:`torch.nn.TransformerEncoderLayer` (``norm_first=False``); it differs from RecBole's
hand-written block only in one extra dropout inside the feed-forward net (torch's ``dropout`` between the
activation and the second linear layer).

Ids: the project's items are ``0 .. n_items-1``; inside the model item ``i`` is row ``i + 1`` of the embedding
table and row 0 is padding (zero, never trained, never scored: logits cover the ``n_items`` real items only,
where RecBole's include its padding row). Sequences are **right-padded**: items first, then zeros, so that
position embeddings count from the first item (as in RecBole) and, the mask being causal, padding can never
reach a real position.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from agrec.baselines.config import SASRecConfig

PAD = 0


class SASRec(nn.Module):
    """SASRec over ``n_items`` items; ``seed`` fixes the initial weights (RecBole's init: N(0, 0.02))."""

    name = "sasrec"

    def __init__(self, cfg: SASRecConfig, n_items: int, seed: int = 0):
        super().__init__()
        if n_items <= 0:
            raise ValueError(f"n_items must be > 0, got {n_items}")
        self.cfg, self.n_items = cfg, n_items
        self.max_seq_length = cfg.max_seq_length
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.item_embedding = nn.Embedding(n_items + 1, cfg.hidden_size, padding_idx=PAD)
            self.position_embedding = nn.Embedding(cfg.max_seq_length, cfg.hidden_size)
            self.layers = nn.ModuleList()
            for _ in range(cfg.n_layers):
                layer = nn.TransformerEncoderLayer(
                    cfg.hidden_size,
                    cfg.n_heads,
                    dim_feedforward=cfg.inner_size,
                    dropout=cfg.hidden_dropout_prob,
                    activation="gelu",
                    layer_norm_eps=cfg.layer_norm_eps,
                    batch_first=True,
                    norm_first=False,
                )
                # The attention-probability dropout has its own rate (RecBole's attn_dropout_prob);
                # MultiheadAttention reads this attribute in forward.
                layer.self_attn.dropout = cfg.attn_dropout_prob
                self.layers.append(layer)
            self.layer_norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
            self.dropout = nn.Dropout(cfg.hidden_dropout_prob)
            self.apply(self._init_weights)
        with torch.no_grad():
            self.item_embedding.weight[PAD].zero_()

    def _init_weights(self, module: nn.Module) -> None:
        # RecBole's SASRec._init_weights: N(0, initializer_range) for linear and embedding weights, zero biases,
        # LayerNorm (1, 0); MultiheadAttention's fused input projection is a bare Parameter, treated as Linear.
        std = self.cfg.initializer_range
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=std)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.MultiheadAttention):
            nn.init.normal_(module.in_proj_weight, mean=0.0, std=std)
            nn.init.zeros_(module.in_proj_bias)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)

    @property
    def device(self) -> torch.device:
        return self.item_embedding.weight.device

    # -- inputs ---------------------------------------------------------------------------------------
    def encode_histories(self, histories: Sequence[np.ndarray | Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Right-padded model input of each history's last ``max_seq_length`` items.

        Returns ``(item_seq [B, L] int64 model ids, lengths [B] int64)`` on the model's device, ``L`` the longest
        kept history. Raises ValueError for an empty history (SASRec has nothing to attend to) or a bad item id.
        """
        kept = [np.asarray(h, dtype=np.int64)[-self.max_seq_length :] for h in histories]
        lengths = np.fromiter((len(h) for h in kept), dtype=np.int64, count=len(kept))
        if len(kept) and lengths.min() == 0:
            raise ValueError(f"history {int(np.argmin(lengths))} is empty: SASRec needs at least one item")
        seq = np.zeros((len(kept), int(lengths.max()) if len(kept) else 1), dtype=np.int64)
        for b, h in enumerate(kept):
            if h.min() < 0 or h.max() >= self.n_items:
                raise ValueError(
                    f"history {b} holds item {int(h[(h < 0) | (h >= self.n_items)][0])}, "
                    f"not an item id (0..{self.n_items - 1})"
                )
            seq[b, : len(h)] = h + 1
        return torch.from_numpy(seq).to(self.device), torch.from_numpy(lengths).to(self.device)

    # -- model ----------------------------------------------------------------------------------------
    def forward(self, item_seq: torch.Tensor) -> torch.Tensor:
        """Hidden state of every position, ``[B, L, hidden_size]``, from right-padded ``item_seq [B, L]``
        (model ids, 0 = padding, ``L <= max_seq_length``). Position t sees items 0..t only."""
        L = item_seq.size(1)
        if L > self.max_seq_length:
            raise ValueError(f"sequence length {L} exceeds max_seq_length {self.max_seq_length}")
        positions = torch.arange(L, device=item_seq.device)
        x = self.item_embedding(item_seq) + self.position_embedding(positions)[None]
        x = self.dropout(self.layer_norm(x))
        causal = nn.Transformer.generate_square_subsequent_mask(L, device=item_seq.device, dtype=x.dtype)
        for layer in self.layers:
            x = layer(x, src_mask=causal, is_causal=True)
        return x

    def item_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Scores of every real item, ``[..., n_items]``, from hidden states ``[..., hidden_size]`` (the shared
        item embedding is the output projection; the padding row is not an item)."""
        return hidden @ self.item_embedding.weight[1:].T

    def calculate_loss(self, item_seq: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean full-softmax cross-entropy over the trained positions.

        Args:
            item_seq: ``[B, L]`` right-padded model ids (the inputs).
            targets: ``[B, L]`` project item id that position t must predict, -1 where nothing is trained
                (padding, or context-only positions of a window).
        """
        hidden = self.forward(item_seq)
        keep = targets >= 0
        return F.cross_entropy(self.item_logits(hidden[keep]), targets[keep])

    def full_sort_predict(self, item_seq: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Scores of every item after each sequence, ``[B, n_items]`` (no history masking here)."""
        hidden = self.forward(item_seq)
        last = hidden[torch.arange(len(lengths), device=hidden.device), lengths - 1]
        return self.item_logits(last)
