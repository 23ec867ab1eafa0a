"""Batch-invariant products: a row's bits do not depend on the rows it is multiplied with."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from kronos_cli.model.invariant import TILE, RowBlockLinear, batch_invariant, block_count, linear

# Kronos-small's products (q|k|v, w2) and the tiny preset's. MKL's plain product gives a row other bits at other
# row counts for all of them on some code path (AVX-512: below 16 rows, and wide ones on two threads; AVX2: row
# counts such as 19-21 and 25-27 as well).
SHAPES = [(832, 2496, True), (2048, 832, False), (32, 96, True)]


@pytest.mark.parametrize("d_in,d_out,with_bias", SHAPES)
def test_a_row_gets_the_same_bits_whatever_shares_its_batch(d_in, d_out, with_bias):
    g = torch.Generator().manual_seed(d_in)
    weight = torch.randn(d_out, d_in, generator=g) / d_in**0.5
    bias = torch.randn(d_out, generator=g) if with_bias else None
    x = torch.randn(400, d_in, generator=g)
    step = RowBlockLinear(weight, bias, block_count(torch.get_num_threads(), [d_out]))  # the decode step's copy
    for product in (lambda rows: linear(rows, weight, bias), step):
        whole = product(x)
        torch.testing.assert_close(whole, F.linear(x, weight, bias))
        for rows in (1, 2, 3, 5, 8, 9, 11, TILE - 1, TILE, 17, 19, 20, 21, 25, 40, 90, 333):
            for start in (0, 7, 400 - rows):
                assert torch.equal(product(x[start : start + rows]), whole[start : start + rows]), rows


@pytest.mark.parametrize("d_in,d_out,with_bias", SHAPES)
def test_a_window_gets_the_same_bits_alone_and_among_others(d_in, d_out, with_bias):
    g = torch.Generator().manual_seed(d_out)
    weight = torch.randn(d_out, d_in, generator=g) / d_in**0.5
    bias = torch.randn(d_out, generator=g) if with_bias else None
    windows = torch.randn(12, 40, d_in, generator=g)  # (series, T, in)
    together = linear(windows, weight, bias)
    torch.testing.assert_close(together, F.linear(windows, weight, bias))
    for start, count in ((0, 1), (5, 1), (3, 2), (0, 7), (11, 1)):
        alone = linear(windows[start : start + count], weight, bias)
        assert torch.equal(alone, together[start : start + count])


AVX2_CHECK = """
import torch
from kronos_cli.model.invariant import RowBlockLinear, linear
torch.manual_seed(0)
for d_in, d_out in ((832, 2496), (64, 192), (32, 96)):
    w, b, x = torch.randn(d_out, d_in), torch.randn(d_out), torch.randn(200, d_in)
    rows, windows, step = linear(x, w, b), linear(x.view(10, 20, d_in), w, b), RowBlockLinear(w, b, 2)
    steps = step(x)
    for n in range(1, 60):
        assert torch.equal(linear(x[:n], w, b), rows[:n]), (d_in, n)
        assert torch.equal(linear(x[n : n + 40], w, b), rows[n : n + 40]), (d_in, n)
        assert torch.equal(step(x[n : n + 40]), steps[n : n + 40]) and torch.equal(step(x[:n]), steps[:n]), n
    for k in range(1, 10):
        assert torch.equal(linear(x[: 20 * k].view(k, 20, d_in), w, b), windows[:k]), (d_in, k)
print("invariant")
"""


@pytest.mark.parametrize("isa", ["AVX2", "SSE4_2"])
def test_rows_are_batch_invariant_on_other_cpus_code_paths(isa):
    """MKL_ENABLE_INSTRUCTIONS makes MKL take the code path of an older CPU (an AVX2 server's, say): the products
    stay batch-invariant there too, with one and two threads. (Ignored by BLAS libraries other than MKL.)"""
    import os
    import subprocess
    import sys

    for threads in ("1", "2"):
        env = {**os.environ, "MKL_ENABLE_INSTRUCTIONS": isa, "OMP_NUM_THREADS": threads}
        res = subprocess.run([sys.executable, "-c", AVX2_CHECK], env=env, capture_output=True, text=True, timeout=300)
        assert res.returncode == 0 and "invariant" in res.stdout, res.stderr[-2000:]


def test_the_mode_routes_linear_layers_and_nothing_else():
    layer = nn.Linear(64, 48)
    x = torch.randn(5, 3, 64)
    with torch.no_grad():
        plain = layer(x)
        with batch_invariant():
            routed = layer(x)
            assert torch.equal(torch.relu(x), torch.relu(x).clone())  # other ops run unchanged
        assert torch.equal(routed, linear(x, layer.weight, layer.bias))
        torch.testing.assert_close(routed, plain)
        assert torch.equal(layer(x), plain)  # outside the mode: the plain kernel again


def test_autocast_and_other_dtypes_keep_the_plain_kernel():
    layer = nn.Linear(32, 16).double()
    x = torch.randn(4, 32, dtype=torch.float64)
    with torch.no_grad(), batch_invariant():
        assert torch.equal(layer(x), F.linear(x, layer.weight, layer.bias))
    layer = nn.Linear(32, 16)
    x = torch.randn(4, 32)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16), batch_invariant():
        out = layer(x)
        assert out.dtype == torch.bfloat16 and torch.equal(out, F.linear(x, layer.weight, layer.bias))
