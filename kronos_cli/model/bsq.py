"""Binary spherical quantisation: the tokenizer's codes, token ids and training loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _entropy(prob: Tensor, dim: int = -1) -> Tensor:
    return -(prob * torch.log(prob + 1e-8)).sum(dim=dim)


class BinarySphericalQuantizer(nn.Module):
    """Quantises an L2-normalised vector to sign(z) / sqrt(K), with the BSQ commitment + entropy loss."""

    def __init__(self, embed_dim: int, beta: float, gamma0: float, gamma: float, zeta: float, group_size: int):
        super().__init__()
        self.embed_dim = embed_dim
        self.beta, self.gamma0, self.gamma, self.zeta = beta, gamma0, gamma, zeta
        self.group_size = group_size
        self.register_buffer("basis", 2 ** torch.arange(embed_dim - 1, -1, -1))
        self.register_buffer("group_basis", 2 ** torch.arange(group_size - 1, -1, -1))  # in released state_dicts

    @property
    def scale(self) -> float:
        return 1.0 / self.embed_dim**0.5

    def quantize(self, z: Tensor) -> Tensor:
        """sign(z) with a straight-through gradient, scaled onto the unit sphere."""
        zhat = torch.where(z > 0, torch.ones_like(z), -torch.ones_like(z))
        return (z + (zhat - z).detach()) * self.scale

    def loss(self, z: Tensor, zq: Tensor) -> Tensor:
        """beta * commitment + zeta * (gamma0 * per-sample entropy - gamma * codebook entropy). Can be negative.

        The released tokenizers' objective (the reference's soft entropy with its default analytical per-sample
        term): each bit is +1 with probability sigmoid(-4 z / sqrt(K)); the per-sample entropy sums the bits'
        entropies and averages over samples, the codebook entropy sums the entropies of the bits' probabilities
        averaged over the batch.
        """
        commit = self.beta * torch.mean(((zq.detach() - z) ** 2).sum(dim=-1))
        p = torch.sigmoid(-4 * z * self.scale)
        bits = torch.stack([p, 1 - p], dim=-1)  # (..., K, 2)
        per_sample = _entropy(bits).sum(dim=-1).mean()
        codebook = _entropy(bits.reshape(-1, *bits.shape[-2:]).mean(dim=0)).sum()
        return commit + self.zeta * (self.gamma0 * per_sample - self.gamma * codebook)


class BSQuantizer(nn.Module):
    """Normalise, quantise and split the code into the coarse (s1) and fine (s2) token ids."""

    def __init__(
        self, s1_bits: int, s2_bits: int, beta: float, gamma0: float, gamma: float, zeta: float, group_size: int
    ):
        super().__init__()
        self.s1_bits, self.s2_bits = s1_bits, s2_bits
        self.codebook_dim = s1_bits + s2_bits
        self.bsq = BinarySphericalQuantizer(self.codebook_dim, beta, gamma0, gamma, zeta, group_size)

    @staticmethod
    def bits_to_indices(bits: Tensor) -> Tensor:
        """Bit j (least significant first) is set where the code is >= 0."""
        weights = 2 ** torch.arange(bits.shape[-1], dtype=torch.long, device=bits.device)
        return ((bits >= 0).long() * weights).sum(-1)

    def forward(self, z: Tensor, half: bool = False, with_loss: bool = True):
        """Returns (bsq_loss, quantized, ids); ids is [s1_ids, s2_ids] when half, else one combined id."""
        z = F.normalize(z, dim=-1)
        zq = self.bsq.quantize(z)
        loss = self.bsq.loss(z, zq) if with_loss else zq.new_zeros(())
        if half:
            ids = [self.bits_to_indices(zq[..., : self.s1_bits]), self.bits_to_indices(zq[..., self.s1_bits :])]
        else:
            ids = self.bits_to_indices(zq)
        return loss, zq, ids
