"""A compiled graph is called again on the same tensors without dynamo, and only where that is what dynamo would
run: one graph, every input among the caller's tensors, no side effect to replay."""

from __future__ import annotations

import pytest
import torch

from kronos_cli.model.graphcall import GraphCapture, reachable

pytestmark = pytest.mark.slow  # each test compiles (seconds on 2 cores)


class _State:
    def __init__(self):
        self.total = torch.zeros(4)
        self.weight = torch.arange(4.0)
        self.last = None


def _step(state: _State, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    state.total.add_(x * state.weight)  # a buffer written in place, as the decode step's caches are
    return state.total.sum(), (x + 1).sum()


@pytest.fixture
def compile_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor"))


def test_a_bound_call_runs_what_dynamo_runs_on_the_same_tensors(compile_cache):
    capture = GraphCapture({"cpp_wrapper": True})
    fn = torch.compile(_step, backend=capture, dynamic=False)
    eager, compiled, x = _State(), _State(), torch.ones(4)
    want = [_step(eager, x) for _ in range(3)]
    first = fn(compiled, x)
    call = capture.call_again((compiled, x), 2)
    assert call is not None
    got = [first, call(), call()]
    for w, g in zip(want, got):
        assert torch.equal(w[0], g[0]) and torch.equal(w[1], g[1])
    assert torch.equal(compiled.total, eager.total)  # the in-place writes happened, once a call


def test_no_bound_call_for_a_tensor_outside_the_arguments(compile_cache):
    hidden = torch.full((4,), 2.0)
    capture = GraphCapture()
    fn = torch.compile(lambda s, x: _step(s, x * hidden), backend=capture, dynamic=False)
    state, x = _State(), torch.ones(4)
    fn(state, x)
    assert capture.call_again((state, x), 2) is None  # `hidden` is read, but the caller does not pass it


def test_no_bound_call_for_a_side_effect_or_a_graph_break_or_a_graph_not_compiled_now(compile_cache):
    def remembers(s, x):
        s.last = x * 2  # an attribute set on an argument: dynamo replays it after the graph, a bound call would not
        return _step(s, x)

    def breaks(s, x):
        y = _step(s, x)
        torch._dynamo.graph_break()
        return y[0] + 1, y[1]

    for f in (remembers, breaks):
        capture = GraphCapture()
        state, x = _State(), torch.ones(4)
        torch.compile(f, backend=capture, dynamic=False)(state, x)
        assert capture.call_again((state, x), 2) is None, f.__name__
    capture = GraphCapture()
    fn = torch.compile(_step, backend=capture, dynamic=False)
    fn(_State(), torch.ones(4))
    capture.call_again((), 2)
    other = _State()
    fn(other, torch.ones(4))  # dynamo runs the graph compiled for the first state's tensors
    assert capture.call_again((other, torch.ones(4)), 2) is None


def test_reachable_finds_tensors_in_modules_containers_and_attributes():
    module = torch.nn.Linear(2, 2)
    state = _State()
    found = reachable(module, [state, {"k": torch.zeros(1)}], (None, 3, "x"))
    assert {id(module.weight), id(module.bias), id(state.total), id(state.weight)} <= found
    assert len(found) == 5
