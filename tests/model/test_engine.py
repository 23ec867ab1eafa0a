"""The KV-cached engine gives the reference's full-recompute results; sampling follows the reference."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from kronos_cli.model.engine import Sampling, generate
from kronos_cli.model.sampling import filter_logits, sample

GREEDY = Sampling(temperature=1.0, top_k=1)


def _history(batch: int, hist: int, pred: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    s1 = torch.randint(0, 16, (batch, hist), generator=g)
    s2 = torch.randint(0, 16, (batch, hist), generator=g)
    stamp = torch.stack([torch.randint(0, n, (batch, hist + pred), generator=g) for n in (60, 24, 7, 32, 13)], -1)
    return s1, s2, stamp.float()


@pytest.mark.parametrize("hist,pred,max_context", [(20, 15, 64), (30, 12, 36), (50, 8, 40)])
def test_cached_equals_full_recompute_greedy(tiny_pair, hist, pred, max_context):
    """Inside max_context (20+15 <= 64), crossing it mid-forecast, and a history already beyond it."""
    _, model = tiny_pair
    s1, s2, stamp = _history(3, hist, pred)
    cached = generate(model, s1, s2, stamp, pred, max_context, sample_count=2, sampling=GREEDY, use_cache=True)
    full = generate(model, s1, s2, stamp, pred, max_context, sample_count=2, sampling=GREEDY, use_cache=False)
    assert torch.equal(cached[0], full[0]) and torch.equal(cached[1], full[1])


@pytest.mark.parametrize("fused", [False, True])
def test_cached_logits_match_full_window_to_1e5(tiny_pair, fused):
    """Not just the argmax: the next-token logits of the cache equal a fresh pass over the window, whether the
    decode step runs its own tiled products or the modules'."""
    from kronos_cli.model.engine import DecodeWeights, KVCache, decode_one_token, forward_tokens

    _, model = tiny_pair
    s1, s2, stamp = _history(2, 24, 1)
    cache = KVCache.allocate(model, 2, 24)
    weights = DecodeWeights(model, 24) if fused else None
    with torch.no_grad():
        forward_tokens(model, cache, s1[:, :20], s2[:, :20], stamp[:, :20])
        for t in range(20, 24):
            logits = decode_one_token(model, cache, s1[:, t], s2[:, t], stamp[:, t], weights)
        full = model.decode_s1(s1, s2, stamp[:, :24])[0][:, -1]
    torch.testing.assert_close(logits, full, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("hist,pred,max_context", [(20, 15, 64), (30, 12, 36)])
def test_paths_sharing_one_history_equal_paths_with_copies(tiny_pair, hist, pred, max_context, monkeypatch):
    """Sample paths that attend to one copy of their series' history (one path count for all series) draw the
    same tokens as paths with their own copies (per-series counts), inside the context and once it slides."""
    from kronos_cli.model.engine import KVCache

    shares = []
    real_share = KVCache.share
    monkeypatch.setattr(KVCache, "share", lambda self, paths: shares.append(paths) or real_share(self, paths))
    _, model = tiny_pair
    s1, s2, stamp = _history(2, hist, pred)
    sampling = Sampling(temperature=1.0, top_p=0.9)

    def run(count):
        g = torch.Generator().manual_seed(3)
        return generate(model, s1, s2, stamp, pred, max_context, sample_count=count, sampling=sampling, generator=g)

    shared, copies = run(3), run([3, 3])
    assert torch.equal(shared[0], copies[0]) and torch.equal(shared[1], copies[1])
    assert shares == [3]  # only the one path count shared its history
    assert len(set(map(tuple, shared[0][:3, hist:].tolist()))) > 1  # the paths differ


def test_decode_layout_is_reused_until_the_weights_change(tiny_pair):
    """A server's batches reuse the step's weight layout; an optimiser step or a loaded state dict (both change
    the parameters in place) gets a fresh one, so a forecast never runs on stale copies of the weights."""
    import copy

    from kronos_cli.model.decode import DecodeWeights

    _, model = tiny_pair
    model = copy.deepcopy(model)
    first = DecodeWeights.of(model, 32)
    assert DecodeWeights.of(model, 16) is first  # a shorter window is served by the longer tables
    assert DecodeWeights.of(model, 64) is not first
    s1, s2, stamp = _history(2, 20, 6)
    before = generate(model, s1, s2, stamp, 6, 64, sampling=GREEDY)
    q = model.transformer[0].self_attn.q_proj.weight
    with torch.no_grad():  # what an optimiser step does: the same storage, changed in place
        model.head.proj_s1.weight.mul_(-1.0)
        q.mul_(2.0)
    changed = DecodeWeights.of(model, 64)
    assert torch.equal(changed.blocks[0].qkv_w.weight[: q.shape[0]], q)  # the concatenated copy is fresh
    cached = generate(model, s1, s2, stamp, 6, 64, sampling=GREEDY)
    full = generate(model, s1, s2, stamp, 6, 64, sampling=GREEDY, use_cache=False)
    assert torch.equal(cached[0], full[0]) and not torch.equal(cached[0], before[0])
    model.load_state_dict(copy.deepcopy(tiny_pair[1].state_dict()))
    assert DecodeWeights.of(model, 64) is not changed


def test_rms_norm_without_gradients_is_the_formula_bit_for_bit():
    """Inference takes `F.rms_norm` (one op), training the formula autograd differentiates: the same bits."""
    from kronos_cli.model.layers import RMSNorm

    norm = RMSNorm(64)
    torch.nn.init.normal_(norm.weight)
    x = torch.randn(7, 3, 64) * 3
    with torch.no_grad():
        fast = norm(x)
    assert torch.equal(fast, norm(x))  # grad enabled: the formula


def test_one_block_pass_serves_windows_and_fused_steps(tiny_pair):
    """The decode step is the block's own forward with its linear maps fused: the hidden state of a token
    appended one at a time equals the window's to float rounding, the rotation included."""
    from kronos_cli.model.engine import DecodeWeights, KVCache, forward_tokens

    _, model = tiny_pair
    s1, s2, stamp = _history(3, 12, 1)
    with torch.no_grad():
        window = model.hidden(s1, s2, stamp[:, :12])
        cache = KVCache.allocate(model, 3, 12)
        forward_tokens(model, cache, s1[:, :8], s2[:, :8], stamp[:, :8])
        weights = DecodeWeights(model, 12)
        for t in range(8, 12):
            forward_tokens(model, cache, s1[:, t : t + 1], s2[:, t : t + 1], stamp[:, t : t + 1], weights)
            torch.testing.assert_close(cache.h_last[:, 0], window[:, t], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("parts", [2, 3, 4])
def test_row_block_linear_equals_linear(parts):
    """The tiled product gives F.linear's numbers (to float rounding) for any row count, with or without bias,
    also where the blocks do not divide the output (the weight is padded)."""
    from kronos_cli.model.invariant import RowBlockLinear, block_count

    g = torch.Generator().manual_seed(parts)
    weight, bias = torch.randn(48, 20, generator=g), torch.randn(48, generator=g)
    for rows in (1, 2, 5, 16, 17, 40):
        x = torch.randn(rows, 20, generator=g)
        for b in (None, bias):
            for out in (48, 47):
                lin = RowBlockLinear(weight[:out], None if b is None else b[:out], parts)
                torch.testing.assert_close(lin(x), F.linear(x, weight[:out], None if b is None else b[:out]))
    assert block_count(4, [512, 1024]) == 4 and block_count(3, [512, 832]) == 2 and block_count(1, [512]) == 2
    assert block_count(2, [5]) == 2  # none divides: two blocks of a padded weight


def test_sampling_is_seedable_and_paths_differ(tiny_pair):
    _, model = tiny_pair
    s1, s2, stamp = _history(2, 16, 10)
    sampling = Sampling(temperature=1.0, top_p=0.95)

    def run(seed):
        g = torch.Generator().manual_seed(seed)
        return generate(model, s1, s2, stamp, 10, 64, sample_count=4, sampling=sampling, generator=g)[0]

    a, b, c = run(7), run(7), run(8)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    paths = a[:4, 16:]
    assert len({tuple(p.tolist()) for p in paths}) > 1  # the paths of one series are distinct draws


def test_top_k_keeps_k_tokens_and_ignores_top_p():
    logits = torch.tensor([[1.0, 5.0, 3.0, 2.0, 4.0]])
    out = filter_logits(logits.clone(), top_k=2, top_p=0.1)
    assert torch.isfinite(out).nonzero()[:, 1].tolist() == [1, 4]


def test_top_p_keeps_token_crossing_threshold():
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
    out = filter_logits(probs.log(), top_k=0, top_p=0.6)
    assert torch.isfinite(out).nonzero()[:, 1].tolist() == [0, 1]
    # the most likely token always survives, however small top_p is
    out = filter_logits(probs.log(), top_k=0, top_p=0.01)
    assert torch.isfinite(out).nonzero()[:, 1].tolist() == [0]


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**31 - 1), st.floats(0.05, 0.99), st.floats(0.3, 3.0), st.integers(2, 300))
def test_the_nucleus_by_threshold_is_the_nucleus_by_scatter(seed, top_p, scale, vocab):
    """The compiled step's nucleus (the logits below its last token's) masks what the eager scatter masks, for
    untied logits of any spread, vocabulary and top_p."""
    from kronos_cli.model.sampling import _filter_uniform

    logits = torch.randn(4, vocab, generator=torch.Generator().manual_seed(seed)) * scale
    assume(all(len(set(row.tolist())) == vocab for row in logits))
    scattered = _filter_uniform(logits, 0, top_p)
    assert torch.equal(_filter_uniform(logits, 0, top_p, threshold=True), scattered)


def test_greedy_sample_is_argmax():
    logits = torch.randn(5, 11)
    assert torch.equal(sample(logits, 0.7, top_k=1), logits.argmax(-1))


def test_bad_sampling_parameters():
    from kronos_cli.core.errors import KronosError

    for kwargs in ({"temperature": 0}, {"top_p": 0}, {"top_k": -1}, {"paths": 0}):
        with pytest.raises(KronosError):
            Sampling(**kwargs)


def test_eval_mode_dep_layer_is_not_causal_unless_asked(tiny_pair):
    """Reference semantics: s2 logits in eval mode see later positions; causal_dep=True stops that."""
    _, model = tiny_pair
    s1, s2, stamp = _history(1, 12, 0)
    changed = s1.clone()
    changed[0, -1] = (changed[0, -1] + 1) % 16
    kw = {"use_teacher_forcing": True, "s1_targets": torch.randint(0, 16, (1, 12))}
    a = model(s1, s2, stamp, causal_dep=True, **kw)[1]
    b = model(changed, s2, stamp, causal_dep=True, **kw)[1]
    assert torch.equal(a[:, :-1], b[:, :-1])
    c = model(s1, s2, stamp, **kw)[1]
    d = model(changed, s2, stamp, **kw)[1]
    assert not torch.allclose(c[:, :-1], d[:, :-1])


def test_row_sampler_draws_each_series_as_if_it_were_alone():
    """Mixed temperature / top-k / top-p / greedy series in one batch: each gets the tokens it gets alone."""
    import torch

    from kronos_cli.model.sampling import RowSampler

    torch.manual_seed(0)
    groups = [
        (3, Sampling(1.0, 0, 0.9), 1),
        (2, Sampling(0.5, 7, 0.9), 2),
        (1, Sampling(1.0, 1, 0.9), 3),
        (4, Sampling(1.7, 0, 1.0), 4),
        (2, Sampling(1.0, 0, 0.3), 5),
    ]
    logits = torch.randn(sum(n for n, _, _ in groups), 64)

    def gens():
        return [torch.Generator().manual_seed(seed) for _, _, seed in groups]

    together = RowSampler([n for n, _, _ in groups], [p for _, p, _ in groups], gens())
    got = torch.cat([together(logits), together(logits)])  # two steps: the generators advance
    start, want_1, want_2 = 0, [], []
    for (n, p, _), g in zip(groups, gens()):
        rows = logits[start : start + n]
        want_1.append(sample(rows, p.temperature, p.top_k, p.top_p, g))
        want_2.append(sample(rows, p.temperature, p.top_k, p.top_p, g))
        start += n
    assert torch.equal(got, torch.cat(want_1 + want_2))


def test_per_row_filter_equals_per_value_filter():
    import torch

    torch.manual_seed(1)
    logits = torch.randn(6, 50)
    top_k = torch.tensor([0, 3, 0, 1, 0, 10])
    top_p = torch.tensor([0.9, 0.9, 1.0, 0.5, 0.2, 0.1])
    rows = filter_logits(logits, top_k, top_p)
    for i in range(6):
        assert torch.equal(rows[i : i + 1], filter_logits(logits[i : i + 1], int(top_k[i]), float(top_p[i])))
