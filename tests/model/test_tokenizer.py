"""Tokenizer: token id semantics and the training loss."""

from __future__ import annotations

import torch

from kronos_cli.model import KronosTokenizer
from kronos_cli.model.bsq import BSQuantizer


def test_bits_are_least_significant_first():
    bits = torch.tensor([[1.0, -1.0, 1.0, 1.0]])  # bits 0, 2, 3 set
    assert BSQuantizer.bits_to_indices(bits).item() == 1 + 4 + 8


def test_encode_decode_round_trip_of_codes(tiny_pair):
    tok, _ = tiny_pair
    x = torch.randn(2, 10, 6)
    s1, s2 = tok.encode(x, half=True)
    combined = tok.encode(x)
    assert torch.equal(combined, s1 + (s2 << 4))
    bits = tok.indices_to_bits([s1, s2], half=True)
    assert torch.equal(tok.tokenizer.bits_to_indices(bits[..., :4]), s1)
    assert tok.decode([s1, s2], half=True).shape == (2, 10, 6)


def test_training_loss_parts_and_gradients():
    torch.manual_seed(0)
    tok = KronosTokenizer.from_preset("tokenizer-tiny").train()
    x = torch.randn(4, 16, 6)
    loss, parts = tok.loss(x)
    assert torch.isfinite(loss)
    assert torch.allclose(loss, (parts["recon_coarse"] + parts["recon_full"] + parts["bsq"]) / 2)
    loss.backward()
    assert tok.embed.weight.grad is not None and tok.embed.weight.grad.abs().sum() > 0


def test_tokenizer_is_causal(tiny_pair):
    tok, _ = tiny_pair
    x = torch.randn(1, 12, 6)
    y = x.clone()
    y[0, -1] += 3.0
    assert torch.equal(tok.encode(x)[:, :-1], tok.encode(y)[:, :-1])
