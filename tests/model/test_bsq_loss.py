"""The tokenizer's quantiser loss is the objective the released tokenizers were trained with: checked against an
independent numpy implementation of the formula (commitment plus the soft entropy terms over per-bit
probabilities)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from kronos_cli.model.bsq import BinarySphericalQuantizer


def reference_formula(z: np.ndarray, beta: float, gamma0: float, gamma: float, zeta: float) -> float:
    """z: (N, K), rows of unit length. Bits are +1 with probability p = sigmoid(-4 z / sqrt(K))."""
    k = z.shape[-1]
    zq = np.where(z > 0, 1.0, -1.0) / np.sqrt(k)
    commit = beta * np.mean(np.sum((zq - z) ** 2, axis=-1))
    p = 1.0 / (1.0 + np.exp(4 * z / np.sqrt(k)))

    def h(q):  # the binary entropy, natural log, with the same 1e-8 guard
        return -(q * np.log(q + 1e-8) + (1 - q) * np.log(1 - q + 1e-8))

    per_sample = np.mean(np.sum(h(p), axis=-1))
    codebook = np.sum(h(p.mean(axis=0)))
    return commit + zeta * (gamma0 * per_sample - gamma * codebook)


def test_loss_matches_the_formula_on_random_codes():
    torch.manual_seed(0)
    for k, group in ((12, 6), (20, 5)):
        q = BinarySphericalQuantizer(k, beta=0.05, gamma0=1.0, gamma=1.1, zeta=0.05, group_size=group)
        z = F.normalize(torch.randn(4, 7, k, dtype=torch.float64), dim=-1)
        got = q.loss(z, q.quantize(z)).item()
        want = reference_formula(z.reshape(-1, k).numpy(), 0.05, 1.0, 1.1, 0.05)
        assert abs(got - want) < 1e-9, (got, want)


def test_a_balanced_code_has_the_highest_codebook_entropy():
    q = BinarySphericalQuantizer(4, beta=0.0, gamma0=0.0, gamma=1.0, zeta=1.0, group_size=2)
    signs = torch.tensor([[1.0, 1, 1, 1], [-1, -1, -1, -1]], dtype=torch.float64) / 2
    same = torch.tensor([[1.0, 1, 1, 1], [1, 1, 1, 1]], dtype=torch.float64) / 2
    # minus the codebook entropy: lower (better) when the batch uses both signs of every bit
    assert q.loss(signs, q.quantize(signs)) < q.loss(same, q.quantize(same))
