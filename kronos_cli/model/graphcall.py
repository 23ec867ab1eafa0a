"""A graph compiled by torch.compile, called again on the same tensors without dynamo's per-call work.

Every call through torch.compile reads each of the graph's tensors out of its Python arguments (for the decode
step of Kronos-small about 120: weights, caches, tokens) and checks dynamo's guards before the compiled code runs;
on the CPU that costs 0.2-0.3 ms a step, a tenth of the step. Where every call passes the same tensors (buffers
written in place, the same weights), that work can be done once: `GraphCapture` is a torch.compile backend that
compiles with inductor, as `backend="inductor"` does, and keeps each graph with the tensors it was compiled for;
`GraphCapture.call_again` returns a call of the one graph compiled during a call, on those same tensors. What
dynamo's guards would check later (the same shapes, Python constants, weights) is then the caller's to keep: its
key for the bound call (`model/compiled.py`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor


def reachable(*objs: Any) -> set[int]:
    """The ids of every tensor in objs: tensors, a module's parameters and buffers, the items of lists, tuples and
    dicts, and the attributes of other objects."""
    found: set[int] = set()
    seen: set[int] = set()
    stack = list(objs)
    while stack:
        obj = stack.pop()
        if id(obj) in seen or obj is None or isinstance(obj, (str, int, float, bool, torch.dtype, torch.device)):
            continue
        seen.add(id(obj))
        if isinstance(obj, Tensor):
            found.add(id(obj))
        elif isinstance(obj, torch.nn.Module):
            found.update(id(t) for t in (*obj.parameters(), *obj.buffers()))
        elif isinstance(obj, (list, tuple)):
            stack.extend(obj)
        elif isinstance(obj, dict):
            stack.extend(obj.values())
        elif hasattr(obj, "__dict__"):
            stack.extend(vars(obj).values())
    return found


class GraphCapture:
    """A torch.compile backend that compiles with inductor (`options`: inductor's settings, as torch.compile's
    `mode` sets them) and keeps the graphs it compiles with their inputs, to be called without dynamo."""

    def __init__(self, options: dict[str, Any] | None = None):
        self.options = options or {}
        self.graphs: list[tuple[Callable[..., Any], list, int]] = []  # (compiled, inputs, outputs)

    def __call__(self, gm: torch.fx.GraphModule, example_inputs: list) -> Callable[..., Any]:
        import torch._inductor  # lazy: inductor is heavy and only compiling needs it

        fn = torch._inductor.compile(gm, example_inputs, self.options)
        outputs = next(n for n in gm.graph.nodes if n.op == "output").args[0]
        self.graphs.append((fn, list(example_inputs), len(outputs) if isinstance(outputs, (tuple, list)) else -1))
        return fn

    def call_again(self, args: tuple, results: int) -> Callable[[], tuple] | None:
        """The graph compiled since the last `call_again`, called on the tensors it was compiled with; None unless
        exactly one graph was compiled (none: dynamo ran one compiled for other tensors; several: the function
        broke into graphs), its inputs are all tensors found in `args` (so the caller's arguments are what the graph
        reads) and it returns `results` tensors and nothing else (no side effect to replay). Forgets the graphs."""
        graphs, self.graphs = self.graphs, []
        if len(graphs) != 1:
            return None
        fn, inputs, outputs = graphs[0]
        known = reachable(*args)
        if outputs != results or not all(isinstance(t, Tensor) and id(t) in known for t in inputs):
            return None
        return lambda: fn(*inputs)
