"""Thread-count settings: the context restores the old count, the profile's count reaches the session."""
import pytest
import torch

from pathlib import Path

from agrec.config import load_profile
from agrec.errors import ConfigError
from agrec.run.session import open_session
from agrec.threads import set_num_threads, torch_threads

CI = Path(__file__).resolve().parents[1] / "configs" / "ml100k-ci.yaml"


@pytest.fixture
def restore_threads():
    old = torch.get_num_threads()
    yield old
    torch.set_num_threads(old)


def test_torch_threads_sets_and_restores(restore_threads):
    torch.set_num_threads(2)
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2
    with pytest.raises(RuntimeError):
        with torch_threads(1):
            raise RuntimeError("boom")
    assert torch.get_num_threads() == 2
    with torch_threads(None):
        assert torch.get_num_threads() == 2
    set_num_threads(None)
    assert torch.get_num_threads() == 2


def test_open_session_applies_pipeline_num_threads(tmp_path, restore_threads):
    torch.set_num_threads(2)
    ov = {"pipeline.runs_dir": str(tmp_path), "pipeline.reports_dir": str(tmp_path)}
    open_session(CI, overrides={**ov, "pipeline.num_threads": 1})
    assert torch.get_num_threads() == 1
    torch.set_num_threads(2)
    open_session(CI, overrides={**ov, "pipeline.num_threads": None})
    assert torch.get_num_threads() == 2
    assert load_profile(CI).pipeline.num_threads == 1  # the default: independent of the core count
    with pytest.raises(ConfigError, match="pipeline.num_threads"):
        load_profile(CI, {"pipeline.num_threads": 0})
