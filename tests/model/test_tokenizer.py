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


def test_decode_after_a_shared_history_equals_the_full_decode_and_ignores_the_batch(tiny_pair):
    """Paths that continue one history decode as the full window would (to float rounding), and a lone short
    forecast decodes to the same bits as it does among many others under `batch_invariant()` (what the server's
    batching relies on)."""
    from kronos_cli.model.invariant import batch_invariant

    tok, _ = tiny_pair
    g = torch.Generator().manual_seed(0)
    ids = lambda *shape: torch.randint(0, 16, shape, generator=g)  # noqa: E731
    series, paths, hist, pred = 6, 3, 40, 2
    prefix, tail = [ids(series, hist), ids(series, hist)], [ids(series * paths, pred), ids(series * paths, pred)]
    with torch.no_grad(), batch_invariant():
        together = tok.decode_after(prefix, tail, paths)
        full = tok.decode([torch.cat([p.repeat_interleave(paths, 0), t], 1) for p, t in zip(prefix, tail)], half=True)
        torch.testing.assert_close(together, full[:, -pred:], rtol=1e-5, atol=1e-6)
        for s in range(series):
            rows = slice(s * paths, s * paths + paths)
            alone = tok.decode_after([p[s : s + 1] for p in prefix], [t[rows] for t in tail], paths)
            assert torch.equal(alone, together[rows])
            one = tok.decode_after([p[s : s + 1] for p in prefix], [t[rows][:1] for t in tail], 1)
            assert torch.equal(one, together[rows][:1])
        per_series = tok.decode_after(prefix, tail, torch.full((series,), paths))
        assert torch.equal(per_series, together)
