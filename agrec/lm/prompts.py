"""Prompts and training samples for next-item generation.

Two prompt formats, both built from token-id pieces (never by tokenizing a whole string), so that
training sequences and the decoder's prompts are the same ids and the prompt ends exactly where the
first code token of the answer is generated:

- ``compact`` (for ``tiny``, whose vocabulary has no words): ``<s>`` then the history's code tokens,
  e.g. ``<s> <a_3><b_7><c_1> <a_9><b_2><c_4>`` -> ``<a_..>…`` of the next item.
- ``lcrec`` (for pretrained backbones): LC-Rec's sequential-recommendation instruction inside the
  Alpaca-style frame LC-Rec fine-tunes with (``### Instruction:`` … ``### Response:``), the history's
  codes joined by ", ", the answer's codes, then EOS.

Two sample constructions (``lm.samples``), from the training split only:

- ``eq7`` (paper Eq. 7-8): the user's training sequence is cut into windows of
  ``max_history + 1`` items; one sequence per window in which the codes of *every* item are
  supervised (each history item is the target of the items before it).
- ``sliding`` (LC-Rec): one sample per prefix: history = up to ``max_history`` items before position
  ``t`` (``t >= 1``), target = item ``t``; only the answer (codes + EOS) is supervised.

Validation samples are the training prefix's last ``max_history`` items followed by the validation
item; only its codes are scored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from agrec.lm.vocab import CodeVocab

IGNORE = -100  # label of a position that is not supervised (PyTorch's cross-entropy ignore_index)

# The frame LC-Rec (and AGRec's released code) fine-tunes with: Alpaca's instruction template, with
# the response appended directly after "### Response:".
LCREC_FRAME = (
    "Below is an instruction that describes a task. Write a response that appropriately "
    "completes the request.\n\n### Instruction:\n{instruction}\n\n### Response:"
)

# Sequential-recommendation instructions in the style of LC-Rec's seqrec prompt set; {inters} is the
# history. Variant 0 is used for validation and by the decoder.
LCREC_SEQREC_INSTRUCTIONS = (
    "Here are the user's historical interactions: {inters}, try to recommend another item to the user. "
    "Note that the historical interactions are arranged in chronological order.",
    "The user has interacted with items {inters} in chronological order. Can you predict the next "
    "possible item that the user may expect?",
    "Based on the items that the user has interacted with: {inters}, can you determine what item would "
    "be recommended to them next?",
    "Given the user's interaction history in chronological order: {inters}, which item will the user "
    "interact with next?",
)
LCREC_HISTORY_SEP = ", "


class PromptFormat:
    """Builds token ids of prompts and supervised sequences for item histories.

    Subclasses provide the pieces: :meth:`_head` (ids before the first history item),
    :meth:`_sep` (ids between two history items), :meth:`_tail` (ids after the last history item,
    up to the answer) and :attr:`answer_suffix` (ids after the answer's codes, e.g. EOS).
    """

    name = "base"

    def __init__(self, vocab: CodeVocab, max_history: int, n_variants: int = 1):
        self.vocab = vocab
        self.max_history = max_history
        self.n_variants = n_variants
        self._items = vocab.item_token_ids.tolist()  # list access is far faster than tensor indexing
        self.answer_suffix: list[int] = []

    @property
    def n_levels(self) -> int:
        return self.vocab.n_levels

    def _head(self, variant: int) -> list[int]:
        raise NotImplementedError

    def _sep(self, variant: int) -> list[int]:
        raise NotImplementedError

    def _tail(self, variant: int) -> list[int]:
        raise NotImplementedError

    def prompt_ids(self, history: Sequence[int], variant: int = 0) -> list[int]:
        """Token ids asking for the item after ``history`` (item indices, oldest first; only the last
        ``max_history`` are used). The next token to generate is the answer's first code."""
        ids, _ = self.sequence(history, None, supervise_history=False, variant=variant)
        return ids

    def sequence(
        self,
        history: Sequence[int],
        target: int | None,
        supervise_history: bool,
        variant: int = 0,
        with_suffix: bool = True,
    ) -> tuple[list[int], list[int]]:
        """``(input_ids, labels)`` of a prompt for ``history`` followed by ``target``'s codes.

        ``labels[t]`` is ``input_ids[t]`` where that token is supervised and :data:`IGNORE`
        elsewhere (the causal shift happens in the loss). The target's codes (and the answer
        suffix, if ``with_suffix``) are supervised; the history's codes too if ``supervise_history``
        (Eq. 7). ``target=None`` gives the bare prompt.
        """
        history = list(history)[-self.max_history :]
        ids = list(self._head(variant))
        labels = [IGNORE] * len(ids)
        sep = self._sep(variant)
        for k, item in enumerate(history):
            if k:
                ids += sep
                labels += [IGNORE] * len(sep)
            codes = self._items[item]
            ids += codes
            labels += codes if supervise_history else [IGNORE] * len(codes)
        tail = self._tail(variant)
        ids += tail
        labels += [IGNORE] * len(tail)
        if target is not None:
            codes = self._items[target] + (self.answer_suffix if with_suffix else [])
            ids += codes
            labels += codes
        return ids, labels


class CompactPrompt(PromptFormat):
    """``<s>`` + the history's code tokens; no words, no separators (for ``tiny``)."""

    name = "compact"

    def __init__(self, vocab: CodeVocab, max_history: int, bos_token_id: int):
        super().__init__(vocab, max_history, n_variants=1)
        self.bos_token_id = int(bos_token_id)

    def _head(self, variant: int) -> list[int]:
        return [self.bos_token_id]

    def _sep(self, variant: int) -> list[int]:
        return []

    def _tail(self, variant: int) -> list[int]:
        return []


class LCRecPrompt(PromptFormat):
    """LC-Rec's seqrec instruction in the Alpaca frame; the answer is the codes followed by EOS.

    The text pieces around the history are tokenized once per variant (with the tokenizer's own
    BOS handling for the first piece) and the code ids are spliced in between.
    """

    name = "lcrec"

    def __init__(
        self,
        vocab: CodeVocab,
        max_history: int,
        tokenizer,
        n_variants: int = 1,
        instructions: Sequence[str] = LCREC_SEQREC_INSTRUCTIONS,
        frame: str = LCREC_FRAME,
        sep: str = LCREC_HISTORY_SEP,
    ):
        if not 1 <= n_variants <= len(instructions):
            raise ValueError(f"n_variants must be in 1..{len(instructions)}, got {n_variants}")
        super().__init__(vocab, max_history, n_variants=n_variants)
        if tokenizer.eos_token_id is None:
            raise ValueError("the tokenizer has no EOS token to end the answer with")
        self.answer_suffix = [int(tokenizer.eos_token_id)]
        self._pieces: list[tuple[list[int], list[int], list[int]]] = []
        sep_ids = tokenizer(sep, add_special_tokens=False)["input_ids"]
        for instruction in instructions[:n_variants]:
            before, after = frame.format(instruction=instruction).split("{inters}")
            head = tokenizer(before, add_special_tokens=True)["input_ids"]
            # a tokenizer that appends EOS to every text (add_eos_token) must not end the head with it
            if head and tokenizer.eos_token_id is not None and head[-1] == tokenizer.eos_token_id:
                head = head[:-1]
            tail = tokenizer(after, add_special_tokens=False)["input_ids"]
            self._pieces.append((list(head), list(sep_ids), list(tail)))

    def _head(self, variant: int) -> list[int]:
        return self._pieces[variant][0]

    def _sep(self, variant: int) -> list[int]:
        return self._pieces[variant][1]

    def _tail(self, variant: int) -> list[int]:
        return self._pieces[variant][2]


def make_prompt_format(kind: str, vocab: CodeVocab, tokenizer, max_history: int, n_variants: int = 1) -> PromptFormat:
    """``compact`` or ``lcrec`` (see the module docstring)."""
    if kind == "compact":
        if tokenizer.bos_token_id is None:
            raise ValueError("the compact prompt needs a tokenizer with a BOS token")
        return CompactPrompt(vocab, max_history, tokenizer.bos_token_id)
    if kind == "lcrec":
        return LCRecPrompt(vocab, max_history, tokenizer, n_variants=n_variants)
    raise ValueError(f"unknown prompt format {kind!r}")


# -- samples ---------------------------------------------------------------------------------------
@dataclass
class Samples:
    """Tokenized sequences with their labels.

    Attributes:
        input_ids: per sample, ``int64[len]``.
        labels: per sample, ``int64[len]`` (:data:`IGNORE` where not supervised).
        users: ``int64[n]``: the user each sample comes from.
    """

    input_ids: list[np.ndarray]
    labels: list[np.ndarray]
    users: np.ndarray

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def lengths(self) -> np.ndarray:
        return np.fromiter((len(x) for x in self.input_ids), dtype=np.int64, count=len(self))

    @property
    def n_supervised(self) -> np.ndarray:
        """Supervised positions per sample (the label of position 0 is never used: causal shift)."""
        return np.fromiter((int((y[1:] != IGNORE).sum()) for y in self.labels), dtype=np.int64, count=len(self))

    def n_tokens(self) -> int:
        return int(self.lengths.sum())


def left_pad(prompts: Sequence[Sequence[int]], pad_token_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(input_ids, attention_mask)``, each ``LongTensor[U, P]`` on the CPU (``P`` the longest prompt), every
    prompt left-padded so that it ends in the last column, where the next token is predicted."""
    P = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), P), pad_token_id, dtype=torch.int64)
    attn = torch.zeros((len(prompts), P), dtype=torch.int64)
    for u, p in enumerate(prompts):
        ids[u, P - len(p) :] = torch.as_tensor(p, dtype=torch.int64)
        attn[u, P - len(p) :] = 1
    return ids, attn


def eq7_windows(seq: Sequence[int], window: int, stride: int) -> list[list[int]]:
    """Windows of ``window`` consecutive items covering ``seq``, the last one ending at its end.

    Window ends step back by ``stride`` from the end of the sequence; a last window starting at the
    first item is added if the steps did not reach it, so every item is in at least one window.
    A sequence no longer than ``window`` is one window.
    """
    seq = list(seq)
    n = len(seq)
    if n <= window:
        return [seq] if n else []
    ends = list(range(n, window - 1, -stride))
    if ends[-1] != window:
        ends.append(window)
    return [seq[e - window : e] for e in reversed(ends)]


def build_train_samples(
    fmt: PromptFormat, train: Sequence[np.ndarray], samples: str, window_stride: int | None = None, seed: int = 0
) -> Samples:
    """Training sequences from each user's training prefix (see the module docstring).

    ``train``: per user, the chronological training items. With several prompt variants, each
    sample's variant is drawn once with ``seed``.
    """
    rng = np.random.default_rng(seed)
    ids_out: list[np.ndarray] = []
    lab_out: list[np.ndarray] = []
    users: list[int] = []

    def add(user: int, history: list[int], target: int, supervise_history: bool) -> None:
        variant = int(rng.integers(fmt.n_variants)) if fmt.n_variants > 1 else 0
        ids, labels = fmt.sequence(history, target, supervise_history=supervise_history, variant=variant)
        ids_out.append(np.asarray(ids, dtype=np.int64))
        lab_out.append(np.asarray(labels, dtype=np.int64))
        users.append(user)

    if samples == "eq7":
        window = fmt.max_history + 1
        stride = window_stride or window
        for u, seq in enumerate(train):
            for w in eq7_windows([int(i) for i in seq], window, stride):
                add(u, w[:-1], w[-1], True)
    elif samples == "sliding":
        for u, raw in enumerate(train):
            ids = [int(i) for i in raw]
            for t in range(1, len(ids)):
                add(u, ids[max(0, t - fmt.max_history) : t], ids[t], False)
    else:
        raise ValueError(f"unknown sample construction {samples!r} (eq7 or sliding)")
    return Samples(ids_out, lab_out, np.asarray(users, dtype=np.int64))


def build_eval_samples(
    fmt: PromptFormat, histories: Sequence[np.ndarray], targets: Sequence[int] | np.ndarray
) -> Samples:
    """One sample per user: the prompt for its history followed by the target's codes (no suffix);
    exactly the last ``n_levels`` positions are supervised, so level ``l`` sits at ``l - n_levels``."""
    ids_out, lab_out = [], []
    for h, t in zip(histories, targets, strict=True):
        ids, labels = fmt.sequence([int(i) for i in h], int(t), supervise_history=False, with_suffix=False)
        ids_out.append(np.asarray(ids, dtype=np.int64))
        lab_out.append(np.asarray(labels, dtype=np.int64))
    return Samples(ids_out, lab_out, np.arange(len(ids_out), dtype=np.int64))
