import pytest
import torch

from agrec.baselines.config import SASRecConfig
from agrec.decode import DecodeConfig
from agrec.devices import resolve_device
from agrec.errors import AgrecError, ConfigError
from agrec.gnn.config import GNNTrainConfig
from agrec.semantic_ids.config import SemanticIdConfig

# every profile key that names a device, with the config that holds it
KEYS = [("semantic_ids.device", SemanticIdConfig), ("gnn.train.device", GNNTrainConfig),
        ("baselines.sasrec.device", SASRecConfig), ("decode.device", DecodeConfig)]


@pytest.mark.parametrize("key,cls", KEYS)
@pytest.mark.parametrize("bad", ["gpu", "cuda:x", "cuda:", "cuda:-1", "CPU", " cpu", "cuda:0 ", 0, None])
def test_every_device_key_rejects_the_same_bad_values_and_names_itself(key, cls, bad):
    with pytest.raises(ConfigError, match=f"^{key} must be 'cpu', 'cuda', 'cuda:N' or 'auto', got "):
        cls(device=bad)


@pytest.mark.parametrize("key,cls", KEYS)
@pytest.mark.parametrize("good", ["cpu", "cuda", "cuda:0", "cuda:12", "auto"])
def test_every_device_key_accepts_the_four_forms(key, cls, good):
    assert cls(device=good).device == good


def test_without_cuda_only_cpu_and_auto_resolve(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("cpu", "k") == torch.device("cpu")
    assert resolve_device("auto", "k") == torch.device("cpu")
    for name in ("cuda", "cuda:1"):
        with pytest.raises(AgrecError, match=f"^gnn.train.device is '{name}' but torch sees no CUDA device"):
            resolve_device(name, "gnn.train.device")
    with pytest.raises(ConfigError, match="^decode.device must be"):
        resolve_device("gpu", "decode.device")


def test_with_gpus_a_torchrun_process_takes_its_own_and_cuda_n_must_exist(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    own = torch.device("cuda", 1)
    assert resolve_device("auto", "k", own) == own and resolve_device("cuda", "k", own) == own
    # outside torchrun (or a CPU process device): the current GPU
    assert resolve_device("cuda", "k") == torch.device("cuda", 0)
    assert resolve_device("auto", "k", torch.device("cpu")) == torch.device("cuda", 0)
    # an explicit index wins over the process's device; "cpu" stays the CPU
    assert resolve_device("cuda:0", "k", own) == torch.device("cuda", 0)
    assert resolve_device("cpu", "k", own) == torch.device("cpu")
    with pytest.raises(AgrecError, match="^decode.device is 'cuda:2' but only 2 CUDA device"):
        resolve_device("cuda:2", "decode.device")

