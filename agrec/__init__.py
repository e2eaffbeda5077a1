"""AGRec workbench: generative sequential recommendation with GNN-steered, trie-constrained decoding."""

import os as _os

# OpenMP threads that spin while waiting collapse when the cores are shared (another process, CI
# next to a notebook kernel): on this 2-core machine a LightGCN batch went from 30 ms to 350 ms.
# Sleeping waits cost little when the machine is idle. Must be set before torch loads libgomp;
# an explicit OMP_WAIT_POLICY in the environment wins.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
