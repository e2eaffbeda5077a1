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


def test_decode_device_resolution_without_cuda(monkeypatch):
    import torch

    from agrec.decode.stage import decode_device
    from agrec.errors import AgrecError
    from agrec.lm.distributed import DistEnv, backend_for

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert decode_device("cpu") == torch.device("cpu") and decode_device("auto") == torch.device("cpu")
    for name in ("cuda", "cuda:1"):
        with pytest.raises(AgrecError, match=f"decode.device is '{name}' but torch sees no CUDA device"):
            decode_device(name)
    # with GPUs: a torchrun process takes its own, "cuda:N" must exist
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert decode_device("auto", DistEnv(rank=1, world=2, local_rank=1, device=torch.device("cuda", 1))) == \
        torch.device("cuda", 1)
    assert decode_device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(AgrecError, match="only 2 CUDA device"):
        decode_device("cuda:2")
    # NCCL only when every local process has its own GPU; two shards on one GPU go through gloo
    assert backend_for(torch.device("cuda", 0), 2) == "nccl"
    assert backend_for(torch.device("cuda", 0), 3) == "gloo"
    assert backend_for(torch.device("cpu"), 1) == "gloo"
