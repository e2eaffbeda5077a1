import numpy as np
import torch
import pytest

from agrec.lm.backbones import build_tiny_tokenizer
from agrec.lm.prompts import (IGNORE, LCREC_FRAME, LCREC_SEQREC_INSTRUCTIONS, CompactPrompt, build_eval_samples,
                              build_train_samples, eq7_windows, make_prompt_format)
from agrec.lm.vocab import add_code_tokens

from lm_helpers import TOY_CODES, standin_tokenizer

I = IGNORE


def compact(max_history=20):
    tok = build_tiny_tokenizer()
    vocab = add_code_tokens(tok, TOY_CODES)
    return make_prompt_format("compact", vocab, tok, max_history)


def test_compact_prompt_ids_are_bos_then_history_codes():
    fmt = compact()
    assert isinstance(fmt, CompactPrompt)
    # item 0 = [4, 9], item 1 = [5, 10], item 2 = [7, 8]; BOS = 1
    assert fmt.prompt_ids([0, 1]) == [1, 4, 9, 5, 10]
    assert fmt.prompt_ids([]) == [1]
    ids, labels = fmt.sequence([0, 1], 2, supervise_history=False)
    assert ids == [1, 4, 9, 5, 10, 7, 8] and labels == [I, I, I, I, I, 7, 8]
    ids, labels = fmt.sequence([0, 1], 2, supervise_history=True)
    assert labels == [I, 4, 9, 5, 10, 7, 8]


def test_history_is_capped_to_the_most_recent_items():
    fmt = compact(max_history=2)
    assert fmt.prompt_ids([2, 0, 1]) == [1, 4, 9, 5, 10]


@pytest.mark.parametrize("n,window,stride,expected", [
    (10, 4, 4, [(0, 4), (2, 6), (6, 10)]),       # last window ends at the end; first starts at 0
    (10, 4, 2, [(0, 4), (2, 6), (4, 8), (6, 10)]),
    (8, 4, 4, [(0, 4), (4, 8)]),
    (3, 4, 4, [(0, 3)]),
    (0, 4, 4, []),
])
def test_eq7_windows(n, window, stride, expected):
    seq = list(range(100, 100 + n))
    assert eq7_windows(seq, window, stride) == [seq[a:b] for a, b in expected]


def test_eq7_supervises_every_item_and_sliding_only_the_answer():
    fmt = compact(max_history=2)  # windows of 3 items
    train = [np.array([0, 1, 2, 0]), np.array([2, 1])]
    s = build_train_samples(fmt, train, "eq7")
    # user 0: windows [0,1,2] and [1,2,0] (stride 3: ends 4, then the window starting at 0); user 1: [2,1]
    assert [x.tolist() for x in s.input_ids] == [[1, 4, 9, 5, 10, 7, 8], [1, 5, 10, 7, 8, 4, 9], [1, 7, 8, 5, 10]]
    assert [y.tolist() for y in s.labels][0] == [I, 4, 9, 5, 10, 7, 8]
    assert s.users.tolist() == [0, 0, 1]
    assert s.n_supervised.tolist() == [6, 6, 4]
    t = build_train_samples(fmt, train, "sliding")
    # one sample per prefix t >= 1, history capped at 2: user 0 -> 3 samples, user 1 -> 1
    assert len(t) == 4 and t.users.tolist() == [0, 0, 0, 1]
    assert t.input_ids[2].tolist() == [1, 5, 10, 7, 8, 4, 9]      # history [1, 2] -> target 0
    assert t.labels[2].tolist() == [I, I, I, I, I, 4, 9]
    with pytest.raises(ValueError, match="unknown sample construction"):
        build_train_samples(fmt, train, "windows")


def test_eval_samples_supervise_exactly_the_target_codes():
    fmt = compact()
    s = build_eval_samples(fmt, [np.array([0, 1]), np.array([2])], [2, 0])
    assert s.input_ids[0].tolist() == [1, 4, 9, 5, 10, 7, 8]
    assert s.labels[1].tolist() == [I, I, I, 4, 9]
    assert s.n_supervised.tolist() == [2, 2]


def test_lcrec_prompt_is_the_instruction_frame_with_codes_spliced_in():
    tok = standin_tokenizer()
    vocab = add_code_tokens(tok, TOY_CODES)
    fmt = make_prompt_format("lcrec", vocab, tok, max_history=20)
    ids = fmt.prompt_ids([0, 1])
    text = LCREC_FRAME.format(instruction=LCREC_SEQREC_INSTRUCTIONS[0].format(inters="<a_0><b_1>, <a_1><b_2>"))
    assert tok.decode(ids) == text
    assert text.endswith("### Response:")
    # the answer: the codes then EOS, all supervised; the instruction never is
    seq, labels = fmt.sequence([0, 1], 2, supervise_history=False)
    assert seq[:len(ids)] == ids and seq[len(ids):] == vocab.item_token_ids[2].tolist() + [tok.eos_token_id]
    assert labels[:len(ids)] == [I] * len(ids) and labels[len(ids):] == seq[len(ids):]
    # Eq. 7 in the instruction format: the history's code tokens are supervised too, nothing else
    _, labels7 = fmt.sequence([0, 1], 2, supervise_history=True)
    supervised = [t for t in labels7 if t != I]
    it = vocab.item_token_ids.tolist()
    assert supervised == it[0] + it[1] + it[2] + [tok.eos_token_id]


def test_lcrec_variants_are_drawn_per_sample_reproducibly():
    tok = standin_tokenizer()
    vocab = add_code_tokens(tok, TOY_CODES)
    fmt = make_prompt_format("lcrec", vocab, tok, max_history=20, n_variants=3)
    train = [np.array([0, 1, 2, 0, 1, 2, 0])]
    a = build_train_samples(fmt, train, "sliding", seed=1)
    b = build_train_samples(fmt, train, "sliding", seed=1)
    assert all(np.array_equal(x, y) for x, y in zip(a.input_ids, b.input_ids))
    heads = {tok.decode(x[:30]) for x in a.input_ids}
    assert len(heads) > 1  # several instruction variants in use
    # the decoder's prompt is always variant 0
    assert tok.decode(fmt.prompt_ids([0])).startswith(LCREC_FRAME.split("{")[0] + LCREC_SEQREC_INSTRUCTIONS[0][:20])


def test_left_pad_ends_every_prompt_in_the_last_column():
    from agrec.lm.prompts import left_pad

    ids, attn = left_pad([[5, 6, 7], [8], [9, 10]], pad_token_id=0)
    assert ids.tolist() == [[5, 6, 7], [0, 0, 8], [0, 9, 10]] and ids.dtype == torch.int64
    assert attn.tolist() == [[1, 1, 1], [0, 0, 1], [0, 1, 1]]
