"""The semantic_ids section of a profile: strict loading, the shipped profiles, stage registration."""
import pytest

from agrec.config import STAGES, load_profile
from agrec.errors import ConfigError

from conftest import CI_PROFILE, ROOT


def test_profiles_carry_the_small_catalogue_shape():
    for name in ("ml100k-ci.yaml", "ml100k-quick.yaml"):
        p = load_profile(ROOT / "configs" / name)
        r = p.semantic_ids.rqvae
        assert (r.n_levels, r.codebook_size, r.code_dim) == (3, 32, 32)
        assert p.semantic_ids.method == "rqvae" and p.semantic_ids.encoder == "minilm"
        assert "semantic_ids" in p.pipeline.stages
    assert STAGES.index("semantic_ids") == STAGES.index("data") + 1


@pytest.mark.parametrize("override, msg", [
    ({"semantic_ids.rqvae.n_level": 3}, r"unknown key\(s\) semantic_ids.rqvae.n_level"),
    ({"semantic_ids.dedup": "drop"}, r"key 'semantic_ids.dedup' expects"),
    ({"semantic_ids.rqvae.codebook_size": 1}, r"semantic_ids.rqvae.codebook_size: out of range"),
    ({"semantic_ids.cpu_threads": 0}, r"semantic_ids.cpu_threads must be >= 1"),
    ({"semantic_ids.encoder": "svd"}, r"key 'semantic_ids.encoder' expects"),
    ({"semantic_ids.encoder": "collaborative", "semantic_ids.collaborative_dim": 0},
     r"semantic_ids.collaborative_dim must be >= 1"),
])
def test_bad_semantic_ids_config_names_the_key(override, msg):
    with pytest.raises(ConfigError, match=msg):
        load_profile(CI_PROFILE, override)
