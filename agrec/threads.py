"""Intra-op thread counts: fixed per profile, so that results do not depend on the machine's core count.

PyTorch's default is one intra-op thread per core. Some CPU kernels split their reductions by thread
(the order of floating-point sums then changes with the count), so a run on a 2-core and an 8-core
machine can differ in the last bits, and training amplifies such differences. The profile's
``pipeline.num_threads`` is set by :func:`agrec.run.session.open_session` for every stage; a stage's own
setting (``semantic_ids.cpu_threads``, ``lm.num_threads``) overrides it inside that stage.
"""

from __future__ import annotations

import contextlib
from typing import Iterator


def set_num_threads(n: int | None) -> None:
    """Set torch's intra-op threads to ``n`` (None: leave torch's default, one per core)."""
    if n is None:
        return
    import torch

    if torch.get_num_threads() != n:
        torch.set_num_threads(n)


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run a block with ``n`` torch intra-op threads (None: leave as is); restores the old value."""
    import torch

    old = torch.get_num_threads()
    set_num_threads(n)
    try:
        yield
    finally:
        if torch.get_num_threads() != old:
            torch.set_num_threads(old)
