"""Token sampling with the reference's semantics: temperature, then top-k or (else) nucleus filtering."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from kronos_cli.core.errors import KronosError


@dataclass(frozen=True)
class Sampling:
    """How sample paths are drawn: the one sampling type, from the command line and configs to the engine.

    `temperature`, `top_k` (0 = off, 1 = greedy) and `top_p` (nucleus) filter each step's logits as the reference
    does; `paths` is how many paths a series gets (their mean is the forecast, their spread its quantiles); `seed`
    fixes the draws (None: fresh randomness). The reference's API calls the temperature `T` and the path count
    `sample_count`; `KronosPredictor.predict` keeps those names and builds one of these.
    """

    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 0.9
    paths: int = 1
    seed: int | None = None

    def __post_init__(self) -> None:
        if not self.temperature > 0:
            raise KronosError(f"temperature must be > 0, got {self.temperature}", setting="temperature")
        if self.top_k < 0:
            raise KronosError(f"top_k must be >= 0, got {self.top_k}", setting="top_k")
        if not 0 < self.top_p <= 1:
            raise KronosError(f"top_p must be in (0, 1], got {self.top_p}", setting="top_p")
        if self.paths < 1:
            raise KronosError(f"paths must be >= 1, got {self.paths}", setting="paths")


GREEDY = Sampling(top_k=1)  # the most likely token at every step: deterministic, one path


def filter_logits(logits: Tensor, top_k: int | Tensor = 0, top_p: float | Tensor = 1.0) -> Tensor:
    """Mask logits (B, V) outside the top k (when top_k > 0) or outside the nucleus (when top_p < 1) with -inf.

    top_k and top_p are numbers, or tensors (B,) with one value per row. top_k takes precedence, as in the
    reference; the nucleus always keeps the most likely token and the token that carries the cumulative
    probability over top_p. Every row is filtered on its own, so a row's result does not depend on the others.
    """
    if isinstance(top_k, int) and isinstance(top_p, (int, float)):
        return _filter_uniform(logits, top_k, float(top_p))
    rows, vocab = logits.shape
    top_k = torch.as_tensor(top_k, device=logits.device).expand(rows)
    top_p = torch.as_tensor(top_p, device=logits.device, dtype=logits.dtype).expand(rows)
    by_k = top_k > 0
    by_p = ~by_k & (top_p < 1.0)
    if not bool((by_k | by_p).any()):
        return logits
    sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
    kth = sorted_logits.gather(-1, (top_k.clamp(1, vocab) - 1)[:, None])  # (B, 1)
    outside_k = logits < kth
    cumulative = torch.cumsum(torch.softmax(sorted_logits, dim=-1), dim=-1)
    remove = cumulative > top_p[:, None]
    remove[..., 1:] = remove[..., :-1].clone()  # keep the token that crosses the threshold
    remove[..., 0] = False
    outside_p = remove.scatter(-1, order, remove)
    mask = torch.where(by_k[:, None], outside_k, outside_p & by_p[:, None])
    return logits.masked_fill(mask, float("-inf"))


def _filter_uniform(logits: Tensor, top_k: int, top_p: float, threshold: bool = False) -> Tensor:
    """`filter_logits` with one top_k and top_p for every row: the same masks, a quarter of the ops (it runs
    twice per decoding step). `threshold`: the nucleus as the logits below its last token's (`_nucleus_floor`)
    rather than scattered back from the sorted order: the same mask unless that logit is tied with another (which
    both keep, where the scatter keeps the one its unstable sort put first); half the time in a compiled graph."""
    if top_k > 0:
        kth = torch.topk(logits, min(top_k, logits.shape[-1]), dim=-1).values[:, -1:]
        return logits.masked_fill(logits < kth, float("-inf"))
    if top_p >= 1.0:
        return logits
    if threshold:
        return logits.masked_fill(logits < _nucleus_floor(logits, top_p), float("-inf"))
    sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
    remove = torch.cumsum(torch.softmax(sorted_logits, dim=-1), dim=-1) > top_p
    remove[..., 1:] = remove[..., :-1].clone()  # keep the token that crosses the threshold
    remove[..., 0] = False
    return logits.masked_fill(remove.scatter(-1, order, remove), float("-inf"))


def _nucleus_floor(logits: Tensor, top_p: float) -> Tensor:
    """The logit (B, 1) of the nucleus's last token: the sorted tokens are kept up to the first whose cumulative
    probability passes top_p (the cumulative sums never decrease, so the m sums <= top_p come first)."""
    sorted_logits = torch.sort(logits, descending=True, dim=-1).values
    cumulative = torch.cumsum(torch.softmax(sorted_logits, dim=-1), dim=-1)
    last = (cumulative <= top_p).sum(-1, keepdim=True).clamp(max=logits.shape[-1] - 1)
    return sorted_logits.gather(-1, last)


def exponential(shape: tuple[int, ...], device: torch.device, generator: torch.Generator | None) -> Tensor:
    """Exp(1) noise (float32) of `shape` from `generator`: the q of a draw, the argmax of p / q, which is how
    torch.multinomial draws a single sample, written out so that the noise of a batch can be drawn series by series
    from their own generators (see `RowSampler`)."""
    return torch.empty(shape, device=device).exponential_(1, generator=generator)


def sample(
    logits: Tensor,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Draw one token id per row of logits (B, V) -> (B,). top_k == 1 is greedy and deterministic."""
    noise = None if top_k == 1 else exponential(tuple(logits.shape), logits.device, generator)
    return choose(logits, noise, Sampling(temperature, top_k, top_p))


Rule = Sampling | tuple[Tensor, Tensor, Tensor, Tensor]  # one for every row, or per row (`RowSampler.rule`)


def choose(logits: Tensor, noise: Tensor | None, rule: Rule, threshold: bool = False) -> Tensor:
    """The tokens (B,) that logits (B, V) and the draw's noise (`RowSampler.noise`) give under `rule`: what a
    `RowSampler` call returns, as a function of its random numbers (the compiled decode step draws in its graph,
    its nucleus by `threshold`, see `_filter_uniform`)."""
    if isinstance(rule, Sampling):
        if rule.top_k == 1:
            return logits.argmax(dim=-1)
        filtered = _filter_uniform(logits.float() / rule.temperature, rule.top_k, float(rule.top_p), threshold)
        return (torch.softmax(filtered, dim=-1) / noise).argmax(dim=-1)
    temperature, top_k, top_p, greedy = rule
    probs = torch.softmax(filter_logits(logits.float() / temperature, top_k, top_p), dim=-1)
    return torch.where(greedy, logits.argmax(dim=-1), (probs / noise).argmax(dim=-1))


class RowSampler:
    """Draws the next token of every row; consecutive rows belong to one series with its own params and generator.

    Filtering runs once for the whole batch with per-row parameters; the random numbers of each series come
    from its own generator, drawn for its rows alone. So a seeded series gets the same tokens whether it is
    forecast alone or batched with others (the server's dynamic batching relies on it). With one series
    spanning all rows this is exactly `sample`. A call is `choose(logits, noise, rule)`: the noise drawn first.
    """

    def __init__(self, counts: Sequence[int], params: Sequence[Sampling], generators: Sequence[torch.Generator | None]):
        if not len(counts) == len(params) == len(generators):
            raise ValueError("counts, params and generators need one entry per series")
        self.groups, start = [], 0
        for n, p, g in zip(counts, params, generators):
            self.groups.append((start, n, p, g))
            start += n
        self.rows = start
        self._per_row: tuple[Tensor, Tensor, Tensor, Tensor] | None = None

    @classmethod
    def uniform(cls, rows: int, params: Sampling, generator: torch.Generator | None) -> RowSampler:
        return cls([rows], [params], [generator])

    def rule(self, device: torch.device, rows: int | None = None) -> Rule:
        """The one `Sampling` of every row, or per-row temperature (R, 1), top_k (R,), top_p (R,) and the greedy
        mask (R,); `rows` pads the per-row tensors (with greedy rows) to that many."""
        if len(self.groups) == 1:
            return self.groups[0][2]
        rows = rows or self.rows
        if self._per_row is None or self._per_row[0].device != device or self._per_row[0].shape[0] != rows:
            pad = rows - self.rows

            def per_row(value, padding) -> list:
                return [value(p) for _, n, p, _ in self.groups for _ in range(n)] + [padding] * pad

            temperature = torch.tensor(per_row(lambda p: p.temperature, 1.0), dtype=torch.float32, device=device)
            top_k = torch.tensor(per_row(lambda p: p.top_k, 1), dtype=torch.long, device=device)
            top_p = torch.tensor(per_row(lambda p: p.top_p, 1.0), dtype=torch.float32, device=device)
            self._per_row = (temperature[:, None], top_k, top_p, top_k == 1)
        return self._per_row

    @property
    def random(self) -> bool:
        """Whether a draw uses random numbers (`noise` is not None)."""
        return len(self.groups) > 1 or self.groups[0][2].top_k != 1

    def noise(self, vocab: int, device: torch.device, out: Tensor | None = None) -> Tensor | None:
        """The Exp(1) noise (R, vocab) of one draw, from each series' generator for its own rows in row order (what
        the draw consumes, so a draw from it equals `sample`'s); ones for greedy series. None when every row is
        greedy under one rule. `out`: a buffer of ones (at least R rows) to draw into instead (its greedy rows and
        rows past R are left as they are)."""
        if not self.random:
            return None
        noise = torch.ones(self.rows, vocab, device=device) if out is None else out
        for start, n, p, g in self.groups:
            if p.top_k != 1:  # greedy series draw nothing, as in `sample`
                noise[start : start + n].exponential_(1, generator=g)
        return noise

    def __call__(self, logits: Tensor) -> Tensor:
        """(rows, V) logits -> (rows,) token ids."""
        return choose(logits, self.noise(logits.shape[-1], logits.device), self.rule(logits.device))
