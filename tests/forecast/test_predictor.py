"""KronosPredictor: the reference's input rules, sample paths, seeds, and the cached/full equivalence."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch

from kronos_cli.core.errors import KronosError
from kronos_cli.forecast import KronosPredictor
from kronos_cli.market.sessions import future_timestamps
from kronos_cli.model import Kronos, KronosTokenizer
from kronos_cli.model.config import PredictorConfig, TokenizerConfig
from kronos_cli.model.sampling import Sampling
from tests.conftest import make_bars


@pytest.fixture
def predictor(tiny_pair):
    tok, model = tiny_pair
    return KronosPredictor(model, tok, device="cpu", max_context=64)


def _split(bars: pd.DataFrame, pred_len: int):
    return bars.drop(columns="timestamps"), bars["timestamps"], future_timestamps(bars["timestamps"], pred_len)


def test_predict_returns_frame_indexed_by_future(predictor, bars):
    df, xt, yt = _split(bars.iloc[:50], 7)
    out = predictor.predict(df, xt, yt, pred_len=7, T=0.6, sample_count=3, seed=1)
    assert list(out.columns) == ["open", "high", "low", "close", "volume", "amount"]
    assert out.index.equals(yt) and np.isfinite(out.to_numpy()).all()
    again = predictor.predict(df, xt, yt, pred_len=7, T=0.6, sample_count=3, seed=1)
    pd.testing.assert_frame_equal(out, again)


def test_return_samples_gives_paths_whose_mean_is_the_forecast(predictor, bars):
    df, xt, yt = _split(bars.iloc[:40], 5)
    mean, paths = predictor.predict(df, xt, yt, 5, sample_count=6, seed=3, return_samples=True)
    assert paths.shape == (6, 5, 6)
    np.testing.assert_allclose(paths.mean(axis=0), mean.to_numpy(), rtol=1e-6)


@pytest.mark.parametrize("max_context", [64, 45])
def test_greedy_cached_equals_full_recompute_in_prices(predictor, bars, max_context):
    predictor = KronosPredictor(predictor.model, predictor.tokenizer, "cpu", max_context)
    x = bars[["open", "high", "low", "close", "volume", "amount"]].to_numpy()[None, :40].repeat(2, 0)
    x[1] *= 1.5
    from kronos_cli.market.stamps import calendar_features

    xs = calendar_features(bars["timestamps"][:40])[None].repeat(2, 0)
    ys = calendar_features(future_timestamps(bars["timestamps"][:40], 12))[None].repeat(2, 0)
    greedy = Sampling(top_k=1, paths=2)
    a = predictor.forecast(x, xs, ys, 12, greedy)
    b = predictor.forecast(x, xs, ys, 12, greedy, use_cache=False)
    np.testing.assert_allclose(a.samples, b.samples, rtol=1e-5)


def test_a_horizon_longer_than_the_context_is_decoded_window_by_window(predictor, bars):
    """Forecasting past max_context (64) returns every bar; the tokens' first window decodes as a shorter
    forecast with the same seed does (the reference returns only max_context bars here)."""
    df, xt, _ = _split(bars.iloc[:40], 100)
    long = predictor.predict(df, xt, future_timestamps(xt, 100), pred_len=100, sample_count=2, seed=4)
    short = predictor.predict(df, xt, future_timestamps(xt, 36), pred_len=36, sample_count=2, seed=4)
    assert long.shape == (100, 6) and np.isfinite(long.to_numpy()).all()
    pd.testing.assert_frame_equal(long.iloc[:36], short)


def test_predict_batch_matches_individual_greedy(predictor):
    frames = [make_bars(30, seed=s) for s in range(3)]
    args = [_split(f, 4) for f in frames]
    batch = predictor.predict_batch([a[0] for a in args], [a[1] for a in args], [a[2] for a in args], 4, top_k=1)
    for (df, xt, yt), got in zip(args, batch):
        single = predictor.predict(df, xt, yt, 4, top_k=1)
        np.testing.assert_allclose(got.to_numpy(), single.to_numpy(), rtol=1e-5, atol=1e-4)


def test_missing_volume_and_amount_follow_reference(predictor, bars):
    df, xt, yt = _split(bars.iloc[:30], 3)
    assert np.isfinite(predictor.predict(df[["open", "high", "low", "close"]], xt, yt, 3).to_numpy()).all()
    assert np.isfinite(predictor.predict(df.drop(columns="amount"), xt, yt, 3).to_numpy()).all()


def test_a_predictor_is_fixed_at_construction(predictor):
    """Another context, clip or precision is another predictor: nothing changes one from outside."""
    for name in ("max_context", "clip", "dtype", "device"):
        with pytest.raises(AttributeError):
            setattr(predictor, name, getattr(predictor, name))
    low = predictor.with_dtype("bf16")
    assert (low.dtype, predictor.dtype) == ("bf16", "fp32") and low.model is predictor.model
    with pytest.raises(KronosError, match="dtype must be one of"):
        predictor.with_dtype("fp8")


@pytest.mark.parametrize(
    "mutate,message",
    [
        (lambda d: d.drop(columns="close"), "lacks the price column"),
        (lambda d: d.assign(open=np.where(np.arange(len(d)) == 3, np.nan, d["open"])), "NaN"),
        (lambda d: d.assign(high=np.where(np.arange(len(d)) == 5, np.inf, d["high"])), "infinite"),
    ],
)
def test_bad_frames(predictor, bars, mutate, message):
    df, xt, yt = _split(bars.iloc[:30], 3)
    with pytest.raises(KronosError, match=message):
        predictor.predict(mutate(df), xt, yt, 3)


def test_batch_rules(predictor):
    a, b = make_bars(30), make_bars(31)
    (da, xa, ya), (db, xb, yb) = _split(a, 3), _split(b, 3)
    with pytest.raises(KronosError, match="one history length"):
        predictor.predict_batch([da, db], [xa, xb], [ya, yb], 3)
    with pytest.raises(KronosError, match="pred_len=4"):
        predictor.predict_batch([da], [xa], [ya], 4)
    with pytest.raises(KronosError, match="same length"):
        predictor.predict_batch([da, da], [xa], [ya], 3)


def test_reference_code_catching_value_error_still_works(predictor, bars):
    df, xt, yt = _split(bars.iloc[:30], 3)
    with pytest.raises(ValueError):
        predictor.predict(df.drop(columns="open"), xt, yt, 3)


def test_mismatched_bit_widths_are_refused():
    tok = KronosTokenizer(
        TokenizerConfig(d_model=16, n_heads=2, ff_dim=16, n_enc_layers=1, n_dec_layers=1, s1_bits=4, s2_bits=4)
    )
    model = Kronos(PredictorConfig(s1_bits=6, s2_bits=6, n_layers=1, d_model=16, n_heads=2, ff_dim=16))
    with pytest.raises(KronosError, match="do not fit"):
        KronosPredictor(model, tok, device="cpu")


def test_unavailable_cuda_is_a_user_error(tiny_pair):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    tok, model = tiny_pair
    with pytest.raises(KronosError, match="CUDA is not available"):
        KronosPredictor(model, tok, device="cuda:0")


def _job(bars: pd.DataFrame, pred_len: int, samples: int, params, seed):
    from kronos_cli.forecast.predictor import SeriesJob
    from kronos_cli.market.bars import prepare_frame
    from kronos_cli.market.stamps import calendar_features

    future = future_timestamps(bars["timestamps"], pred_len)
    sampling = dataclasses.replace(params, paths=samples, seed=seed)
    return SeriesJob(prepare_frame(bars), calendar_features(bars["timestamps"]), calendar_features(future), sampling)


def test_mixed_jobs_equal_each_series_forecast_alone(predictor):
    """Different lengths, horizons, path counts, sampling and seeds in one call: each as if it ran alone."""

    specs = [
        (40, 5, 1, Sampling(1.0, 0, 0.9), 1),
        (40, 5, 3, Sampling(0.7, 5, 1.0), 2),
        (30, 5, 2, Sampling(1.3, 0, 0.8), 3),
        (40, 5, 1, Sampling(1.0, 1, 0.9), 4),
        (40, 8, 1, Sampling(1.0, 0, 0.9), 5),
        (80, 6, 2, Sampling(1.0, 0, 0.95), 6),
    ]  # 80 > ctx 64
    jobs = [_job(make_bars(n, seed=i)[-n:], p, s, prm, seed) for i, (n, p, s, prm, seed) in enumerate(specs)]
    together = predictor.forecast_jobs(jobs)
    for job, got in zip(jobs, together):
        alone = predictor.forecast(
            job.x[None], job.x_stamp[None], job.y_stamp[None], len(job.y_stamp), job.sampling
        ).samples[0]
        assert got.shape == alone.shape
        np.testing.assert_array_equal(got, alone)  # bit for bit on the CPU
    # The seeds matter: a different seed gives a different path.
    other = predictor.forecast_jobs([_job(make_bars(40, seed=0), 5, 1, specs[0][3], 99)])[0]
    assert not np.allclose(other, together[0])


def test_reference_predict_and_csv_forecast_agree_bit_for_bit(tiny_pair):
    """`predict` (the reference's API) and `kronos predict`'s path normalise a series in the same order."""
    from kronos_cli.forecast.series import forecast_series
    from kronos_cli.forecast.spec import ForecastSpec

    predictor = KronosPredictor(tiny_pair[1], tiny_pair[0], device="cpu", max_context=256)
    bars = make_bars(120, seed=0).drop(columns="amount")  # amount from volume x mean price: large sums
    df, xt, yt = _split(bars, 5)
    ref = predictor.predict(df, xt, yt, 5, sample_count=3, seed=2)
    csv = forecast_series(
        predictor, bars, ForecastSpec(5, 256, sampling=Sampling(paths=3, seed=2)), raw=True
    )  # the model's bars, as `predict`
    np.testing.assert_array_equal(ref.to_numpy(), csv.table[ref.columns].to_numpy())


@pytest.fixture(scope="module")
def wide_predictor():
    """Kronos-small's width (one block): wide enough that MKL's plain products round a row differently at
    different row counts on two threads."""
    torch.manual_seed(0)
    tok = KronosTokenizer(
        TokenizerConfig(d_model=256, n_heads=4, ff_dim=512, n_enc_layers=2, n_dec_layers=2, s1_bits=8, s2_bits=8)
    )
    model = Kronos(PredictorConfig(s1_bits=8, s2_bits=8, n_layers=1, d_model=832, n_heads=8, ff_dim=2048))
    return KronosPredictor(model.eval(), tok.eval(), device="cpu", max_context=64)


def test_a_seeded_series_gets_the_same_bits_in_any_batch(wide_predictor):
    """The server batches requests as they arrive: a request's answer must not depend on its neighbours (any
    number of them, other path counts, sampling settings and shapes, before or after it)."""

    plain, other = Sampling(1.0, 0, 0.9), Sampling(0.7, 5, 1.0)
    target = _job(make_bars(40, seed=7), 3, 2, plain, 7)
    alone = wide_predictor.forecast_jobs([target])[0]
    batches = [
        [_job(make_bars(40, seed=i), 3, 1, plain, i) for i in range(3)],
        [_job(make_bars(40, seed=i), 3, 2, plain, i) for i in range(9)],
        [_job(make_bars(40, seed=i), 3, s, other, i) for i, s in enumerate([1, 2, 5, 1, 3, 2, 4])],
        [_job(make_bars(n, seed=i), p, 2, plain, i) for i, (n, p) in enumerate([(40, 3), (30, 3), (40, 5), (64, 3)])],
    ]
    for others in batches:
        half = len(others) // 2
        got = wide_predictor.forecast_jobs([*others[:half], target, *others[half:]])[half]
        np.testing.assert_array_equal(got, alone)
