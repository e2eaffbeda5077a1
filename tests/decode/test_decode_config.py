import pytest

from agrec.decode import DecodeConfig
from agrec.errors import ConfigError


def test_paper_defaults():
    c = DecodeConfig()
    assert (c.top_n, c.floor, c.beam_size, c.mix, c.state, c.agg, c.renormalize) == \
        (10, 1e-5, 20, "prob", "prefix", "sum", False)


def test_per_level_alpha():
    c = DecodeConfig(alpha=[0.0, 0.5])
    assert [c.alpha_at(lvl) for lvl in range(4)] == [0.0, 0.5, 0.5, 0.5] and c.uses_graph
    assert not DecodeConfig(alpha=0.0).uses_graph


@pytest.mark.parametrize("kw,msg", [(dict(alpha=1.5), "alpha must be in"), (dict(alpha=[]), "empty"),
                                    (dict(tau=0.0), "tau"), (dict(agg="mean"), "decode.agg"),
                                    (dict(mix="logits"), "decode.mix"), (dict(state="full"), "decode.state"),
                                    (dict(beam_size=0), "beam_size"), (dict(floor=0.0), "floor"),
                                    (dict(kv="copy"), "decode.kv"), (dict(top_n=0), "top_n"),
                                    (dict(device="gpu"), "decode.device must be"),
                                    (dict(device="cuda:x"), "decode.device must be")])
def test_bad_values(kw, msg):
    with pytest.raises(ConfigError, match=msg):
        DecodeConfig(**kw)


def test_nccl_only_when_every_local_process_has_its_own_gpu(monkeypatch):
    import torch

    from agrec.lm.distributed import backend_for

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    # two shards on one GPU go through gloo
    assert backend_for(torch.device("cuda", 0), 2) == "nccl"
    assert backend_for(torch.device("cuda", 0), 3) == "gloo"
    assert backend_for(torch.device("cpu"), 1) == "gloo"
