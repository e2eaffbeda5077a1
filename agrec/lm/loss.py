"""The training objective: summed token NLL over the supervised positions (paper Eq. 8).

Only supervised positions need logits. For a pretrained backbone with an instruction prompt that
is a few tokens out of ~150, and the LM head (vocabulary x hidden) is a large share of the compute,
so for the standard decoder-only architectures the head is applied to the gathered hidden states of
those positions only. Other architectures (whose head may scale or soft-cap logits) go through the
model's own forward.

Packed micro-batches (``lm.batching: pack``) pass ``position_ids`` and ``segment_ids``; the block-diagonal
causal mask is built here, in the form the model's attention takes (:mod:`agrec.lm.batching`).

``lm.tiny.item_loss`` (weight λ > 0, with ``lm.tiny.item_embedding``) adds a dense next-item objective beside the
generative one, the hybrid training of generative and dense retrieval (e.g. LIGER, Yang et al. 2024): at each
position right before a supervised item's first code, the final hidden state scores *every* item by a dot
product with the item vectors the input already uses (tied, as SASRec ties its input and output item
embeddings), and the loss adds λ times the cross-entropy of the item that follows. The LM still recommends by
generating codes, and the validation loss stays the codes' NLL; the trained head can also rank and steer on its own
(the evaluation scorer ``lm``, :mod:`agrec.lm.item_scorer`).

``lm.distill_teacher`` (with a :class:`~agrec.lm.distill.CodeDistiller`) mixes into each code position's loss the
teacher recommender's distribution over that position's codes (knowledge distillation, :mod:`agrec.lm.distill`);
with ``lm.distill_branch_tokens`` the rows are extended by off-path prefixes under a tree attention mask in the same
forward.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from agrec.lm.batching import attention_form, attn_implementation, block_causal_mask, check_packable
from agrec.lm.distill import CodeDistiller
from agrec.lm.finetune import unwrap
from agrec.lm.item_embedding import item_embedding, item_indexer
from agrec.lm.prompts import IGNORE

# *ForCausalLM classes whose logits are exactly lm_head(final hidden state).
PLAIN_HEAD_ARCHS = frozenset(
    {
        "LlamaForCausalLM",
        "MistralForCausalLM",
        "Qwen2ForCausalLM",
        "Qwen3ForCausalLM",
        "Phi3ForCausalLM",
        "OlmoForCausalLM",
        "Olmo2ForCausalLM",
        "GraniteForCausalLM",
    }
)


class SupervisedNLL(nn.Module):
    """Wraps a causal LM so that one ``forward`` gives the summed NLL of the supervised tokens.

    A module of its own so that DDP can wrap it: DDP synchronises gradients only for computations
    that go through the wrapped module's ``forward``.
    """

    def __init__(
        self,
        model: nn.Module,
        label_smoothing: float = 0.0,
        item_loss: float = 0.0,
        distiller: CodeDistiller | None = None,
    ):
        super().__init__()
        self.model = model
        # lm.distill_teacher: soft code targets from a teacher recommender, mixed into the training loss only
        self.distiller = distiller
        # lm.label_smoothing: the training loss spreads this much of each target's mass uniformly over the
        # vocabulary (F.cross_entropy's label_smoothing); 0 is the paper's NLL. Validation stays plain NLL.
        self.label_smoothing = label_smoothing
        base = unwrap(model)
        self.fast = type(base).__name__ in PLAIN_HEAD_ARCHS and hasattr(base, "model")
        # lm.tiny.item_loss: the weight of the dense next-item term (module docstring); 0 = codes only
        if item_loss < 0:
            raise ValueError(f"item_loss must be >= 0, got {item_loss}")
        self.item_loss = float(item_loss)
        if distiller is not None and distiller.branch_tokens:
            if not self.fast:
                raise ValueError(
                    f"lm.distill_branch_tokens needs a plain-head causal LM ({', '.join(sorted(PLAIN_HEAD_ARCHS))}), "
                    f"got {type(base).__name__}"
                )
            check_packable(model, "lm.distill_branch_tokens")
        if self.item_loss and (item_embedding(base) is None or not self.fast):
            raise ValueError(
                f"item_loss needs a plain-head causal LM ({', '.join(sorted(PLAIN_HEAD_ARCHS))}) with an item "
                f"embedding (lm.tiny.item_embedding), got {type(base).__name__}"
                f"{'' if item_embedding(base) is None else ' (an item embedding, but not a plain head)'}"
            )

    def _hidden(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None,
        position_ids: torch.Tensor | None,
        segment_ids: torch.Tensor | None,
    ) -> torch.Tensor:
        """The final hidden states ``[B, T, H]`` of a plain-head model (after its last norm: what the LM head
        reads)."""
        kw = self._attention(attention_mask, position_ids, segment_ids)
        return unwrap(self.model).model(input_ids=input_ids, use_cache=False, **kw).last_hidden_state

    def _with_branches(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None, labels: torch.Tensor
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """One forward of a padded batch with the distiller's off-path prefixes appended to its rows
        (:class:`agrec.lm.distill.Branches`). Returns the rows' own final hidden states ``[B, T, H]`` (the same
        computation as without the prefixes) and ``(has, soft, branch loss)``: the path targets and the prefixes' summed
        soft loss."""
        distiller = self.distiller
        assert distiller is not None
        head = unwrap(self.model).get_output_embeddings()
        has, soft, br = distiller.targets(input_ids, attention_mask, labels, int(head.weight.shape[0]))
        if br is None:  # no position with a teacher: the plain forward
            hidden = self._hidden(input_ids, attention_mask, None, None)
            return hidden, (has, soft, hidden.sum() * 0.0)
        B, T = input_ids.shape
        ids = torch.cat([input_ids, br.input_ids], 1)
        pos = torch.cat([torch.arange(T, device=input_ids.device).expand(B, T), br.position_ids], 1)
        mask = attention_form(br.allowed, attn_implementation(self.model), what="lm.distill_branch_tokens")
        out = unwrap(self.model).model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=False)
        hidden = out.last_hidden_state
        branch = distiller.branch_loss(head(hidden[:, T:][br.rows, br.slots]), br)
        return hidden[:, :T], (has, soft, branch)

    def _attention(
        self, attention_mask: torch.Tensor | None, position_ids: torch.Tensor | None, segment_ids: torch.Tensor | None
    ) -> dict:
        """The attention keywords of a padded batch, or of a packed one (its block-diagonal mask and positions)."""
        if segment_ids is None:
            return {"attention_mask": attention_mask}
        return {
            "attention_mask": block_causal_mask(segment_ids, attn_implementation(self.model)),
            "position_ids": position_ids,
        }

    def _code_logits(self, hidden: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Hidden states ``[B, T, H]`` -> ``(logits [N, V], targets [N])`` of the supervised positions."""
        targets = labels[:, 1:]
        keep = targets != IGNORE
        return unwrap(self.model).get_output_embeddings()(hidden[:, :-1][keep]), targets[keep]

    def supervised_logits(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None,
        labels: torch.Tensor,
        position_ids: torch.Tensor | None = None,
        segment_ids: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits that predict the supervised tokens and those tokens.

        Args:
            input_ids: ``[B, T]`` token ids.
            attention_mask: ``[B, T]``, 1 on real tokens (None for a packed batch).
            labels: ``[B, T]``, :data:`IGNORE` where unsupervised.
            position_ids: ``[B, T]`` positions within each segment of a packed batch.
            segment_ids: ``[B, T]`` segment of each token of a packed batch (``attention_mask`` None): each
                token attends only to earlier tokens of its own segment.
        Returns:
            ``(logits [N, V], targets [N])`` in row-major order of the positions, where ``N`` is the
            number of supervised positions (position ``t`` predicts ``labels[:, t + 1]``).
        """
        if self.fast:
            return self._code_logits(self._hidden(input_ids, attention_mask, position_ids, segment_ids), labels)
        kw = self._attention(attention_mask, position_ids, segment_ids)
        logits = self.model(input_ids=input_ids, use_cache=False, **kw).logits
        targets = labels[:, 1:]
        keep = targets != IGNORE
        return logits[:, :-1][keep], targets[keep]

    def next_item_targets(
        self, input_ids: torch.Tensor, labels: torch.Tensor, segment_ids: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``[B, T]``: at each position ``t`` right before a supervised item (tokens ``t+1 .. t+L`` are one item's
        ``L`` codes in level order, all supervised, and in ``t``'s segment of a packed row), that item's index;
        -1 elsewhere. These are the positions and targets of the dense next-item term."""
        indexer = item_indexer(unwrap(self.model))
        if indexer is None:
            raise ValueError("next_item_targets needs a model with an item embedding")
        B, T = input_ids.shape
        L = indexer.n_levels
        out = torch.full((B, T), -1, dtype=torch.long, device=input_ids.device)
        if T <= L:
            return out
        nxt = indexer(input_ids)[:, L:]  # the item whose last code is at t + L
        ok = nxt >= 0
        for k in range(1, L + 1):
            ok = ok & (labels[:, k : T - L + k] != IGNORE)
        if segment_ids is not None:
            ok = ok & (segment_ids[:, : T - L] == segment_ids[:, L:])
        out[:, : T - L] = torch.where(ok, nxt, torch.full_like(nxt, -1))
        return out

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None,
        labels: torch.Tensor,
        position_ids: torch.Tensor | None = None,
        segment_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Summed NLL (a scalar, fp32) of the supervised tokens of the batch (padded or packed); with
        ``label_smoothing`` ε, the summed ``(1 - ε)·NLL + ε·mean over the vocabulary of -log p``; with a
        ``distiller``, each position with a teacher target mixes in the teacher's code distribution
        (:meth:`agrec.lm.distill.CodeDistiller.loss`; padded batches only) and, with its ``branch_tokens``, the
        off-path prefixes' term in the same forward (:meth:`_with_branches`); with ``item_loss`` λ, plus λ times the
        summed cross-entropy of each supervised item over all items (:meth:`next_item_targets`)."""
        if self.distiller is not None and segment_ids is not None:
            raise ValueError("distillation needs one sequence per row (lm.batching pad or bucket), got a packed batch")
        hidden = None
        extra = None
        if self.distiller is not None and self.distiller.branch_tokens:
            hidden, extra = self._with_branches(input_ids, attention_mask, labels)
            logits, targets = self._code_logits(hidden, labels)
        elif self.item_loss:
            hidden = self._hidden(input_ids, attention_mask, position_ids, segment_ids)
            logits, targets = self._code_logits(hidden, labels)
        else:
            logits, targets = self.supervised_logits(input_ids, attention_mask, labels, position_ids, segment_ids)
        if self.distiller is None:
            loss = F.cross_entropy(logits.float(), targets, reduction="sum", label_smoothing=self.label_smoothing)
        else:
            hard = F.cross_entropy(logits.float(), targets, reduction="none", label_smoothing=self.label_smoothing)
            if extra is not None:
                soft = extra[:2]
            else:  # with the mask, as with branches: a cached row is found whatever its batch's padding
                soft = self.distiller.targets(input_ids, attention_mask, labels, int(logits.shape[-1]))[:2]
            loss = self.distiller.loss(logits, input_ids, labels, hard, soft)
            if extra is not None:
                loss = loss + extra[2]
        if not self.item_loss:
            return loss
        assert hidden is not None  # item_loss: one of the two forwards that keep the hidden states
        items = self.next_item_targets(input_ids, labels, segment_ids)
        at = items >= 0
        weight = item_embedding(unwrap(self.model))
        assert weight is not None  # checked in __init__
        item_logits = hidden[at] @ weight.T  # [N_items_supervised, n_items]
        return loss + self.item_loss * F.cross_entropy(item_logits.float(), items[at], reduction="sum")
