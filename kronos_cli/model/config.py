"""Architecture configs of the tokenizer and the predictor (the `config.json` fields) and their presets."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from kronos_cli.errors import KronosError


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
        _check_heads(self, self.d_model, self.n_heads)
        if (self.s1_bits + self.s2_bits) % self.group_size:
            raise KronosError(
                f"tokenizer config: s1_bits + s2_bits ({self.s1_bits + self.s2_bits}) must be a multiple of "
                f"group_size ({self.group_size})"
            )
        if self.n_enc_layers < 1 or self.n_dec_layers < 1:
            raise KronosError("tokenizer config: n_enc_layers and n_dec_layers must be at least 1")


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
        _check_heads(self, self.d_model, self.n_heads)
        # The dependency-aware layer always uses 4 heads with rotary embeddings.
        if self.d_model % 4 or (self.d_model // 4) % 2:
            raise KronosError(f"predictor config: d_model ({self.d_model}) must be a multiple of 8")


def _check_heads(cfg: object, d_model: int, n_heads: int) -> None:
    name = type(cfg).__name__
    if n_heads < 1 or d_model % n_heads or (d_model // n_heads) % 2:
        raise KronosError(f"{name}: d_model ({d_model}) must split into n_heads ({n_heads}) heads of even size")


def config_from_dict(cls: type, fields: dict, source: str) -> TokenizerConfig | PredictorConfig:
    """Build a config from a `config.json` dict; missing fields are an error, extra ones are ignored."""
    names = {f.name for f in dataclasses.fields(cls)}
    missing = sorted(names - set(fields))
    if missing:
        raise KronosError(
            f"{source}: config.json lacks {', '.join(missing)}; is this a "
            f"{'tokenizer' if cls is TokenizerConfig else 'predictor'} checkpoint?"
        )
    return cls(**{k: fields[k] for k in names})


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
