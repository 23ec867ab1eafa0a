"""torchrun's launcher flags, read in its terms: --nproc-per-node and --standalone."""

from __future__ import annotations

import pytest
import torch

from kronos_cli.cli.options import build_launch
from kronos_cli.core.errors import KronosError


def test_nproc_per_node_is_cpu_workers_without_cuda_and_gpus_with_it():
    launch = build_launch(nproc_per_node=2, standalone=True, nnodes=1)
    field = "gpus" if torch.cuda.is_available() else "nproc"
    assert getattr(launch, field) == 2 and launch.workers_per_node == 2


def test_conflicting_launcher_flags_are_one_line_errors():
    with pytest.raises(KronosError, match="not both"):
        build_launch(nproc_per_node=2, nproc=2)
    with pytest.raises(KronosError, match="--standalone is one node"):
        build_launch(standalone=True, nnodes=2, rdzv_endpoint="h:1")
