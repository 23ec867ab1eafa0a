"""Released checkpoints through huggingface_hub's cache (shared with `hf` and every other tool): which models are
released (from the presets' table), fetching them with their paired tokenizer, and what is cached.

huggingface_hub itself reads `HF_TOKEN` (or the token `hf auth login` stored), `HF_ENDPOINT`, `HF_HUB_CACHE` and
`HF_HUB_OFFLINE`; nothing here reads, logs or passes a token.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from huggingface_hub import constants, snapshot_download, try_to_load_from_cache
from huggingface_hub.errors import GatedRepoError, OfflineModeIsEnabled, RepositoryNotFoundError

from kronos_cli.core.errors import KronosError
from kronos_cli.model.checkpoint import CONFIG_NAME, HUB_FILES, WEIGHTS_NAME, read_config
from kronos_cli.model.config import (
    PAIRED_TOKENIZER,
    PREDICTOR_PRESETS,
    TOKENIZER_PRESETS,
    PredictorConfig,
    TokenizerConfig,
    check_pair,
)
from kronos_cli.model.predictor import Kronos
from kronos_cli.model.tokenizer import KronosTokenizer

log = logging.getLogger(__name__)


class DownloadError(RuntimeError):
    """The Hub could not be reached (offline, no network, a server error): not the user's mistake, exit code 1."""


@dataclass(frozen=True)
class Released:
    """A released checkpoint: its Hub id, preset, kind, context length and the tokenizer it was released with."""

    hub_id: str
    preset: str
    kind: str  # "predictor" or "tokenizer"
    max_context: int
    tokenizer: str | None = None  # a predictor's paired tokenizer (Hub id)


def released() -> list[Released]:
    """Every released model, predictors first, from the presets' table."""
    out = []
    for name, p in PREDICTOR_PRESETS.items():
        if p.hub_id:
            out.append(
                Released(p.hub_id, name, "predictor", p.max_context, TOKENIZER_PRESETS[PAIRED_TOKENIZER[name]].hub_id)
            )
    out += [Released(p.hub_id, n, "tokenizer", p.max_context) for n, p in TOKENIZER_PRESETS.items() if p.hub_id]
    return out


def find_released(name: str) -> Released | None:
    """A released model by Hub id (any case) or preset name (small, mini, tokenizer-base)."""
    for r in released():
        if name.lower() in (r.hub_id.lower(), r.preset, r.hub_id.split("/")[1].lower()):
            return r
    return None


def parameters(r: Released) -> int:
    """The number of parameters of a released model's architecture (built on the meta device: no memory)."""
    table = PREDICTOR_PRESETS if r.kind == "predictor" else TOKENIZER_PRESETS
    model_class = Kronos if r.kind == "predictor" else KronosTokenizer
    with torch.device("meta"):
        return sum(p.numel() for p in model_class(table[r.preset].config).parameters())


def cached(hub_id: str, cache_dir: str | None = None) -> Path | None:
    """The cached snapshot of `hub_id` holding its weights, or None."""
    hit = try_to_load_from_cache(hub_id, WEIGHTS_NAME, cache_dir=cache_dir)
    return Path(hit).parent if isinstance(hit, str) else None


@dataclass
class Downloaded:
    """A checkpoint in the Hub cache after `download`: where, what it is, and a note (a pair that differs from the
    released one)."""

    hub_id: str
    path: str
    kind: str = "unknown"
    max_context: int | None = None
    note: str = ""

    def to_json(self) -> dict:
        return asdict(self)


def _wanted(names: list[str], pair: bool) -> list[str]:
    """Hub ids for the names given (released presets by name), each predictor's released tokenizer added."""
    ids = []
    for name in names:
        r = find_released(name)
        if r is None and "/" not in name:
            known = ", ".join(x.preset for x in released())
            raise KronosError(f"{name!r} is not a released model; name a Hub id (owner/name) or one of {known}")
        ids.append(r.hub_id if r else name)
        if pair and r is not None and r.tokenizer:
            ids.append(r.tokenizer)
    return list(dict.fromkeys(ids))


def fetch_checkpoint(hub_id: str, cache_dir: str | None = None) -> Path:
    """The snapshot of `hub_id` in the Hub cache (config and weights), downloaded when missing."""
    try:
        return Path(snapshot_download(hub_id, cache_dir=cache_dir, allow_patterns=HUB_FILES))
    except (RepositoryNotFoundError, GatedRepoError) as exc:
        raise KronosError(
            f"the Hub has no model {hub_id} you may read ({type(exc).__name__}): check the id; for a private or "
            f"gated model set HF_TOKEN or run `hf auth login`"
        ) from None
    except OfflineModeIsEnabled:
        raise DownloadError(f"{hub_id} is not in the Hub cache and HF_HUB_OFFLINE is set; unset it once") from None
    except Exception as exc:  # no network, a proxy, a server error: huggingface_hub's own types vary by version
        offline = "HF_HUB_OFFLINE is set and it is not cached" if _offline() else "the Hub could not be reached"
        raise DownloadError(f"{hub_id}: {offline} ({type(exc).__name__}); check the network or HF_ENDPOINT") from None


def _offline() -> bool:
    return bool(constants.HF_HUB_OFFLINE)  # as huggingface_hub read it at import


def _check_pairs(got: list[Downloaded]) -> None:
    """Each predictor fits the tokenizers fetched with it; a pair other than the released one gets a note."""
    tokenizers = [d for d in got if d.kind == "tokenizer"]
    for d in got:
        r = find_released(d.hub_id)
        if d.kind != "predictor" or not tokenizers:
            continue
        cfg = read_config(Path(d.path), PredictorConfig)
        for t in tokenizers:
            check_pair(read_config(Path(t.path), TokenizerConfig), cfg)
        if r is not None and r.tokenizer not in {t.hub_id for t in tokenizers}:
            d.note = f"released with {r.tokenizer}"


def download(names: list[str], cache_dir: str | None = None, pair: bool = True) -> list[Downloaded]:
    """Fetch released (or any Hub) checkpoints into the Hub cache, each predictor with its released tokenizer
    unless `pair` is off, and check that the predictors and tokenizers fetched fit each other."""
    got = []
    for hub_id in _wanted(names, pair):
        path = fetch_checkpoint(hub_id, cache_dir)
        if not (path / CONFIG_NAME).is_file():
            raise KronosError(f"{hub_id} has no {CONFIG_NAME}; is it a Kronos checkpoint?")
        r = find_released(hub_id)
        kind = r.kind if r else _kind(path)
        got.append(Downloaded(hub_id, str(path), kind, r.max_context if r else None))
        log.info("%s is in the Hub cache at %s", hub_id, path)
    _check_pairs(got)
    return got


def _kind(path: Path) -> str:
    """A checkpoint's kind from its config's fields (a tokenizer has encoder layers)."""
    fields = (path / CONFIG_NAME).read_text()
    return "tokenizer" if '"n_enc_layers"' in fields else "predictor" if '"n_layers"' in fields else "unknown"
