"""Architecture configs of the tokenizer and the predictor (the `config.json` fields) and their presets."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from dataclasses import dataclass

from kronos_cli.core.errors import KronosError, excerpt

MAX_BITS = 20  # each of s1 and s2 sizes four tables of 2**bits rows; the released models use 10
MAX_CONTEXT = 1 << 20  # bars; the released predictors use 512 and 2048


@dataclass(frozen=True)
class Bound:
    """What a number a model file claims may be: its type and an inclusive range (`above`: exclusive lower end).

    Checked before anything is built, so that a file never decides how much memory is allocated."""

    kind: type  # int, float or bool
    lo: float = -math.inf
    hi: float = math.inf
    above: bool = False

    def describe(self) -> str:
        if self.kind is bool:
            return "true or false"
        if self.kind is int:
            return f"an integer from {self.lo} to {self.hi}"
        if self.hi < math.inf:
            return f"a number from {self.lo} to {self.hi}"
        return f"a finite number {'>' if self.above else '>='} {self.lo}"

    def admits(self, value: object) -> bool:
        if self.kind is bool or isinstance(value, bool):  # a bool is an int to Python, never a size here
            return self.kind is bool and isinstance(value, bool)
        if not isinstance(value, (int,) if self.kind is int else (int, float)):
            return False
        low_ok = value > self.lo if self.above else value >= self.lo
        return math.isfinite(value) and low_ok and value <= self.hi


_LAYERS, _PROBABILITY, _WEIGHT = Bound(int, 1, 256), Bound(float, 0, 1), Bound(float, 0)
BOUNDS: dict[str, Bound] = {
    "d_in": Bound(int, 1, 1024),
    "d_model": Bound(int, 1, 16384),
    "n_heads": Bound(int, 1, 1024),
    "ff_dim": Bound(int, 1, 65536),
    "n_enc_layers": _LAYERS,
    "n_dec_layers": _LAYERS,
    "n_layers": _LAYERS,
    "s1_bits": Bound(int, 1, MAX_BITS),
    "s2_bits": Bound(int, 1, MAX_BITS),
    "group_size": Bound(int, 1, 2 * MAX_BITS),
    **dict.fromkeys(("ffn_dropout_p", "attn_dropout_p", "resid_dropout_p", "token_dropout_p"), _PROBABILITY),
    **dict.fromkeys(("beta", "gamma0", "gamma", "zeta"), _WEIGHT),
    "learn_te": Bound(bool),
    # The data conventions a checkpoint or bundle records beside its weights (`CONVENTIONS`).
    "max_context": Bound(int, 1, MAX_CONTEXT),
    "lookback_window": Bound(int, 1, MAX_CONTEXT),
    "predict_window": Bound(int, 1, MAX_CONTEXT),
    "clip": Bound(float, 0, above=True),
}


CONVENTIONS = ("max_context", "lookback_window", "predict_window", "clip")


def bounds_problem(fields: dict, names: Iterable[str]) -> str | None:
    """What is wrong with the first of `names` in `fields` that lies outside its `BOUNDS`, or None."""
    for name in names:
        if name in fields and not BOUNDS[name].admits(fields[name]):
            return f"{name} must be {BOUNDS[name].describe()}, got {excerpt(fields[name])}"
    return None


def _check_bounds(config: object) -> None:
    problem = bounds_problem(dataclasses.asdict(config), BOUNDS)
    if problem:
        raise KronosError(problem)


@dataclass(frozen=True)
class TokenizerConfig:
    """Fields of a Kronos tokenizer's `config.json`, in the reference's names."""

    d_in: int = 6
    d_model: int = 256
    n_heads: int = 4
    ff_dim: int = 512
    n_enc_layers: int = 4
    n_dec_layers: int = 4
    ffn_dropout_p: float = 0.0
    attn_dropout_p: float = 0.0
    resid_dropout_p: float = 0.0
    s1_bits: int = 10
    s2_bits: int = 10
    beta: float = 0.05
    gamma0: float = 1.0
    gamma: float = 1.1
    zeta: float = 0.05
    group_size: int = 4

    def __post_init__(self) -> None:
        _check_bounds(self)
        _check_heads(self, self.d_model, self.n_heads)
        if (self.s1_bits + self.s2_bits) % self.group_size:
            raise KronosError(
                f"tokenizer config: s1_bits + s2_bits ({self.s1_bits + self.s2_bits}) must be a multiple of "
                f"group_size ({self.group_size})"
            )


@dataclass(frozen=True)
class PredictorConfig:
    """Fields of a Kronos predictor's `config.json`, in the reference's names."""

    s1_bits: int = 10
    s2_bits: int = 10
    n_layers: int = 8
    d_model: int = 512
    n_heads: int = 8
    ff_dim: int = 1024
    ffn_dropout_p: float = 0.25
    attn_dropout_p: float = 0.1
    resid_dropout_p: float = 0.25
    token_dropout_p: float = 0.1
    learn_te: bool = True

    def __post_init__(self) -> None:
        _check_bounds(self)
        _check_heads(self, self.d_model, self.n_heads)
        # The dependency-aware layer always uses 4 heads with rotary embeddings.
        if self.d_model % 4 or (self.d_model // 4) % 2:
            raise KronosError(f"predictor config: d_model ({self.d_model}) must be a multiple of 8")


def _check_heads(cfg: object, d_model: int, n_heads: int) -> None:
    name = type(cfg).__name__
    if n_heads < 1 or d_model % n_heads or (d_model // n_heads) % 2:
        raise KronosError(f"{name}: d_model ({d_model}) must split into n_heads ({n_heads}) heads of even size")


def config_from_dict(cls: type, fields: object, source: str) -> TokenizerConfig | PredictorConfig:
    """Build a config from a `config.json` dict, each field within its bounds; missing fields are an error, extra
    ones are ignored. Every problem is a KronosError naming `source` and saying what to do."""
    what = "tokenizer" if cls is TokenizerConfig else "predictor"
    if not isinstance(fields, dict):
        raise KronosError(
            f"{source}: the {what} config must be a mapping of fields, got {excerpt(fields, 40)}; the file is damaged "
            f"or was edited: fetch or export the checkpoint again"
        )
    names = [f.name for f in dataclasses.fields(cls)]
    missing = [n for n in names if n not in fields]
    if missing:
        raise KronosError(f"{source} lacks the field(s) {', '.join(missing)}; is this a {what} checkpoint?")
    try:
        return cls(**{k: fields[k] for k in names})
    except KronosError as exc:
        raise KronosError(
            f"{source}: {exc}; the file is damaged or was edited: fetch or export the checkpoint again"
        ) from None


@dataclass(frozen=True)
class Conventions:
    """What a checkpoint or bundle records about the data its predictor was trained on: the context length, the
    lookback and horizon of its windows, the clip of its normalised bars and the market calendar its bars
    followed (when its config named one). None where the file does not record it (a released checkpoint
    records none; `load_pair` fills in a released model's published context)."""

    max_context: int | None = None
    lookback_window: int | None = None
    predict_window: int | None = None
    clip: float | None = None
    calendar: str | None = None

    def to_dict(self) -> dict:
        """The recorded fields only, as checkpoints and bundles keep them."""
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


def conventions_from_dict(fields: object, source: str, required: tuple[str, ...] = ()) -> Conventions:
    """The data conventions a checkpoint or bundle records (max_context, lookback_window, predict_window, clip,
    calendar), each within its bounds, or a KronosError naming `source`."""
    if not isinstance(fields, dict):
        raise KronosError(
            f"{source}: the data conventions must be a mapping, got {excerpt(fields, 40)}; the file is damaged or "
            f"was edited: export or train the model again"
        )
    missing = [k for k in required if k not in fields]
    problem = f"{', '.join(missing)} missing" if missing else bounds_problem(fields, CONVENTIONS)
    if problem:
        raise KronosError(f"{source}: {problem}; the file is damaged or was edited: export or train the model again")
    known = {f.name for f in dataclasses.fields(Conventions)}
    values = {k: v for k, v in fields.items() if k in known}
    if values.get("clip") is not None:
        values["clip"] = float(values["clip"])
    if values.get("calendar") is not None:
        values["calendar"] = str(values["calendar"])
    return Conventions(**values)


DEFAULT_CONTEXT = 512  # the reference predictor's max_context, and Kronos-small's and -base's


@dataclass(frozen=True)
class Preset:
    """A named architecture: its config, its usual context length and the released Hub id, if any."""

    config: TokenizerConfig | PredictorConfig
    max_context: int
    hub_id: str | None = None


_TINY_TOKENIZER = TokenizerConfig(
    d_model=32, n_heads=2, ff_dim=64, n_enc_layers=2, n_dec_layers=2, s1_bits=4, s2_bits=4, group_size=4
)
_BASE_TOKENIZER = TokenizerConfig()

TOKENIZER_PRESETS: dict[str, Preset] = {
    "tokenizer-tiny": Preset(_TINY_TOKENIZER, DEFAULT_CONTEXT),
    "tokenizer-base": Preset(_BASE_TOKENIZER, DEFAULT_CONTEXT, "NeoQuasar/Kronos-Tokenizer-base"),
    "tokenizer-2k": Preset(_BASE_TOKENIZER, 2048, "NeoQuasar/Kronos-Tokenizer-2k"),
}

PREDICTOR_PRESETS: dict[str, Preset] = {
    "tiny": Preset(
        PredictorConfig(
            s1_bits=4,
            s2_bits=4,
            n_layers=2,
            d_model=32,
            n_heads=2,
            ff_dim=64,
            ffn_dropout_p=0.0,
            attn_dropout_p=0.0,
            resid_dropout_p=0.0,
            token_dropout_p=0.0,
        ),
        DEFAULT_CONTEXT,
    ),
    "mini": Preset(PredictorConfig(n_layers=4, d_model=256, n_heads=4, ff_dim=512), 2048, "NeoQuasar/Kronos-mini"),
    "small": Preset(PredictorConfig(), DEFAULT_CONTEXT, "NeoQuasar/Kronos-small"),
    "base": Preset(
        PredictorConfig(n_layers=12, d_model=832, n_heads=16, ff_dim=2048), DEFAULT_CONTEXT, "NeoQuasar/Kronos-base"
    ),
}

# Which tokenizer each predictor preset was released with.
PAIRED_TOKENIZER = {
    "tiny": "tokenizer-tiny",
    "mini": "tokenizer-2k",
    "small": "tokenizer-base",
    "base": "tokenizer-base",
}


def preset(name: str) -> Preset:
    """Look up a tokenizer or predictor preset by name."""
    table = {**TOKENIZER_PRESETS, **PREDICTOR_PRESETS}
    if name not in table:
        raise KronosError(f"unknown preset {name!r}; choose one of {', '.join(table)}")
    return table[name]


def released_context(source: str | None = None, config: PredictorConfig | None = None) -> int | None:
    """The context length of a released predictor, known by its Hub id or by its architecture, else None."""
    for p in PREDICTOR_PRESETS.values():
        if p.hub_id is not None and (source == p.hub_id or (config is not None and config == p.config)):
            return p.max_context
    return None


def check_pair(tokenizer: TokenizerConfig, predictor: PredictorConfig) -> None:
    """A tokenizer and a predictor fit when their bit widths agree."""
    t, m = tokenizer, predictor
    if (t.s1_bits, t.s2_bits) != (m.s1_bits, m.s2_bits):
        raise KronosError(
            f"tokenizer (s1_bits={t.s1_bits}, s2_bits={t.s2_bits}) and predictor (s1_bits={m.s1_bits}, "
            f"s2_bits={m.s2_bits}) do not fit; use the tokenizer the predictor was trained with"
        )
