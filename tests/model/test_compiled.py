"""The compiled decode step: when a run compiles (`decode_plan`), and that it forecasts what the eager step does."""

from __future__ import annotations

import pytest
import torch

from kronos_cli.core.errors import KronosError
from kronos_cli.model.compiled import PAYBACK, DecodePlan, bucket, decode_plan
from kronos_cli.model.engine import Sampling, generate
from kronos_cli.model.static import StaticKV

MANY = 1_000_000  # decode steps that pay for any compile


@pytest.mark.parametrize(
    "device,dtype_ok,mode,dtype",
    [
        ("cuda", True, "reduce-overhead", "bf16"),  # CUDA graphs, bf16 where the precision check passed
        ("cuda", False, "reduce-overhead", "fp32"),
        ("cpu", True, "default", "fp32"),  # bf16 is a CUDA default only
        ("mps", True, None, "fp32"),  # inductor's MPS backend is experimental: eager
    ],
)
def test_a_long_run_compiles_on_cuda_and_cpu(device, dtype_ok, mode, dtype):
    assert tuple(decode_plan(device, dtype_ok, MANY)) == (mode, dtype)


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_auto_compiles_only_when_the_steps_pay_for_it(device):
    p = PAYBACK[device]
    cold = int(p.cold_s / p.saving_s)  # steps that earn a cold compile back
    warm = int(p.warm_s / p.saving_s)
    assert decode_plan(device, False, cold - 1).compile_mode is None
    assert decode_plan(device, False, cold + 1).compile_mode is not None
    assert decode_plan(device, False, warm + 1, warm=True).compile_mode is not None
    assert decode_plan(device, False, warm - 1, warm=True).compile_mode is None
    assert decode_plan(device, False, 10, setting="on").compile_mode is not None  # on: whatever it costs


def test_auto_keeps_the_eager_step_where_batch_invariance_is_required():
    plan = decode_plan("cpu", False, MANY, invariant=True)
    assert plan.compile_mode is None and "invariance" in plan.reason
    assert decode_plan("cpu", False, MANY, setting="on", invariant=True).compile_mode == "default"


def test_off_never_compiles_and_on_refuses_a_device_without_a_compiled_step():
    assert tuple(decode_plan("cuda", True, MANY, setting="off")) == (None, "bf16")
    # YAML reads `compile: on` and `off` as booleans
    assert decode_plan("cpu", False, 1, setting=True).compile_mode == "default"
    assert decode_plan("cpu", False, MANY, setting=False).compile_mode is None
    with pytest.raises(KronosError) as err:
        decode_plan("mps", False, MANY, setting="on")
    assert err.value.settings == ("forecast.compile",) and "--" not in str(err.value)
    with pytest.raises(KronosError, match="auto, on, off"):
        decode_plan("cpu", False, 1, setting="yes")


@pytest.mark.parametrize("causal", [True, False])
def test_sliced_attention_reads_only_the_seen_slots_and_agrees_with_the_masked_one(causal):
    """The CPU step's attention over the slots its query sees gives the masked attention's output; what lies in the
    slots past them (the padding of the capacity) is never read: NaN there changes nothing."""
    g = torch.Generator().manual_seed(0)
    k, v, q = torch.randn(2, 4, 32, 8, generator=g), torch.randn(2, 4, 32, 8, generator=g), torch.randn(2, 4, 1, 8)
    pos = torch.tensor(19)
    seen = 20 if causal else 19
    k[:, :, seen:], v[:, :, seen:] = 0.0, 0.0  # the masked attention's contract: unwritten slots are zero
    masked = StaticKV(k, v, pos, causal).attention(q)
    k2, v2 = k.clone(), v.clone()
    k2[:, :, seen:], v2[:, :, seen:] = float("nan"), float("nan")
    sliced = StaticKV(k2, v2, pos, causal, sliced=True).attention(q)
    assert torch.isfinite(sliced).all()
    torch.testing.assert_close(sliced, masked, rtol=0, atol=1e-6)


def test_rows_are_padded_to_few_buckets():
    assert [bucket(n) for n in (1, 2, 3, 5, 16, 17, 256, 257, 600)] == [1, 2, 4, 8, 16, 32, 256, 512, 768]


def _history(batch: int, hist: int, pred: int, vocab: int = 16):
    g = torch.Generator().manual_seed(0)
    s1, s2 = (torch.randint(0, vocab, (batch, hist), generator=g) for _ in range(2))
    stamp = torch.stack([torch.randint(0, n, (batch, hist + pred), generator=g) for n in (60, 24, 7, 32, 13)], -1)
    return s1, s2, stamp.float()


@pytest.fixture
def compile_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor"))
    return tmp_path / "inductor"


@pytest.mark.slow  # compiles (about a minute on 2 cores)
@pytest.mark.parametrize("series,paths", [(1, 1), (3, 2)])  # one row (bucket 1); 6 rows padded to 8
def test_the_compiled_step_draws_the_eager_steps_tokens(tiny_pair, compile_cache, series, paths):
    """Greedy and seeded sampled tokens equal the eager step's (their logits agree to 1e-5, see below; a tie
    closer than that could flip a token, which these seeds do not meet), and the code lands in the cache."""
    _, model = tiny_pair
    s1, s2, stamp = _history(series, 30, 10)
    plan = DecodePlan("default", "fp32")
    for sampling in (Sampling(top_k=1), Sampling(temperature=0.6, top_p=0.9)):

        def run(p: DecodePlan | None, how: Sampling):
            g = torch.Generator().manual_seed(7)
            return generate(model, s1, s2, stamp, 10, 64, sample_count=paths, sampling=how, generator=g, plan=p)

        eager, compiled = run(None, sampling), run(plan, sampling)
        assert torch.equal(eager[0], compiled[0]) and torch.equal(eager[1], compiled[1])
    assert any(compile_cache.rglob("*")), "inductor kept nothing in the compile cache"


@pytest.mark.slow
def test_compiled_logits_match_the_eager_step_to_1e5(tiny_pair, compile_cache):
    """The compiled step's s1 and s2 logits agree with the eager step's to 1e-5, and its greedy tokens equal theirs."""
    from kronos_cli.model.compiled import CompiledDecode
    from kronos_cli.model.engine import DecodeWeights, KVCache, RowSampler, decode_one_token, forward_tokens, s2_logits

    _, model = tiny_pair
    s1, s2, stamp = _history(3, 24, 1)
    weights = DecodeWeights(model, 32)
    step = CompiledDecode("default", forward_tokens, s2_logits)
    greedy = RowSampler.uniform(3, Sampling(top_k=1), None)
    with torch.no_grad():
        eager, static = KVCache.allocate(model, 3, 24), KVCache.allocate(model, 3, 24)
        forward_tokens(model, eager, s1[:, :20], s2[:, :20], stamp[:, :20])
        forward_tokens(model, static, s1[:, :20], s2[:, :20], stamp[:, :20])
        static = step.wrap(static)
        for t in range(20, 24):
            got_s1, got_s2, got_logits, got_logits_s2 = step.advance(
                model, static, s1[:, t], s2[:, t], stamp[:, t], weights, greedy
            )
            want = decode_one_token(model, eager, s1[:, t], s2[:, t], stamp[:, t], weights)
            torch.testing.assert_close(got_logits, want, rtol=1e-5, atol=1e-5)
            assert torch.equal(got_s1, want.argmax(-1))
            want_s2 = s2_logits(model, eager, got_s1, weights)
            torch.testing.assert_close(got_logits_s2, want_s2, rtol=1e-5, atol=1e-5)
            assert torch.equal(got_s2, want_s2.argmax(-1))


@pytest.mark.slow
def test_a_second_forecast_of_the_same_shape_runs_the_graph_without_dynamo(tiny_pair, compile_cache):
    """Each shape goes through torch.compile once; later steps and forecasts call its graph directly and draw the
    same tokens for the same seed."""
    from kronos_cli.model.compiled import compiled_for
    from kronos_cli.model.engine import forward_tokens, s2_logits

    _, model = tiny_pair
    s1, s2, stamp = _history(2, 30, 10)
    plan, sampling = DecodePlan("default", "fp32"), Sampling(temperature=0.6, top_p=0.9)

    def run():
        g = torch.Generator().manual_seed(3)
        return generate(model, s1, s2, stamp, 10, 64, sample_count=3, sampling=sampling, generator=g, plan=plan)

    first = run()
    step = compiled_for(model, "default", forward_tokens, s2_logits)
    through_dynamo, compiled = [], step._advance
    step._advance = lambda *args: through_dynamo.append(1) or compiled(*args)
    second = run()
    assert not through_dynamo
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])


@pytest.mark.slow
def test_per_series_samplers_draw_the_eager_steps_tokens(tiny_pair, compile_cache):
    """Series with their own settings and generators (one greedy): the compiled step takes the per-row rule as
    inputs and draws each series' noise from its own generator, as the eager step does."""
    from kronos_cli.model.engine import RowSampler

    _, model = tiny_pair
    s1, s2, stamp = _history(3, 30, 10)
    params = [Sampling(top_k=1), Sampling(temperature=0.6, top_p=0.9), Sampling(temperature=1.3, top_k=5)]

    def run(plan: DecodePlan | None):
        sampler = RowSampler([2, 2, 2], params, [torch.Generator().manual_seed(s) for s in (1, 2, 3)])
        return generate(model, s1, s2, stamp, 10, 64, sample_count=2, sampler=sampler, plan=plan)

    eager, compiled = run(None), run(DecodePlan("default", "fp32"))
    assert torch.equal(eager[0], compiled[0]) and torch.equal(eager[1], compiled[1])
