"""benchmarks/distill_cache.py's comparison: a batch counts as identical only when every part of its targets is
equal bit for bit, and the largest difference of values is reported."""

import torch

from agrec.lm.distill import Branches
from benchmarks.distill_cache import same


def targets(soft_value: float = 0.25, allowed_at: int = 0, weight: float = 0.5):
    allowed = torch.zeros(1, 3, 3, dtype=torch.bool)
    allowed[0, allowed_at, 0] = True
    br = Branches(
        input_ids=torch.tensor([[7]]),
        position_ids=torch.tensor([[1]]),
        allowed=allowed,
        rows=torch.tensor([0]),
        slots=torch.tensor([0]),
        targets=torch.tensor([[0.0, 1.0]]),
        weights=torch.tensor([weight]),
    )
    return torch.tensor([True, False]), torch.tensor([[soft_value, 1 - soft_value]]), br


def test_identical_only_when_every_part_is_equal_and_the_largest_difference_is_reported():
    assert same(targets(), targets()) == (True, 0.0)
    assert same(targets(), targets(soft_value=0.25 + 2**-20)) == (False, 2**-20)
    assert same(targets(), targets(weight=0.5 + 2**-10)) == (False, 2**-10)
    assert same(targets(), targets(allowed_at=1)) == (False, 0.0)  # the mask differs, no value does
    has, soft, _ = targets()
    assert same((has, soft, None), targets()) == (False, float("inf"))  # prefixes on one side only
    assert same((has, soft, None), (has, soft, None)) == (True, 0.0)
