"""The two stages' step functions: what a batch costs, in training and in (causal) validation.

The training loop knows nothing else about the models: a stage builds its model and turns a batch into a
loss and the metrics to log.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kronos_cli.config import Config
from kronos_cli.model.config import check_pair
from kronos_cli.model.predictor import Kronos
from kronos_cli.model.tokenizer import KronosTokenizer
from kronos_cli.train.methods import apply_method

log = logging.getLogger(__name__)


def load_model(cls, spec: str):
    """A model from `preset:NAME` (random weights, scratch training) or a Hub id / checkpoint directory."""
    if spec.startswith("preset:"):
        return cls.from_preset(spec.split(":", 1)[1])
    return cls.from_pretrained(spec)


@dataclass
class TokenizerStage:
    """Reconstruction + BSQ loss: (mse(coarse) + mse(full) + bsq) / 2; validation reports the full MSE."""

    name = "tokenizer"
    train_loss_name = "(MSE coarse + MSE full + BSQ) / 2"
    val_loss_name = "reconstruction MSE (full code)"
    model: KronosTokenizer
    grad_clip: float
    lr: float

    @classmethod
    def build(cls, cfg: Config, init: str | None = None) -> TokenizerStage:
        model = apply_method(load_model(KronosTokenizer, init or cfg.model.tokenizer), cfg.training)
        return cls(model, cfg.training.tokenizer_grad_clip, cfg.training.tokenizer_learning_rate)

    def modules(self) -> list[nn.Module]:
        return [self.model]

    def train_loss(self, net: nn.Module, x: Tensor, stamp: Tensor) -> tuple[Tensor, dict[str, float]]:
        (z_pre, z), bsq_loss, _, _ = net(x)
        rec_pre, rec = F.mse_loss(z_pre, x), F.mse_loss(z, x)
        loss = (rec_pre + rec + bsq_loss) / 2
        return loss, {"recon_coarse": rec_pre.item(), "recon_full": rec.item(), "bsq": bsq_loss.item()}

    @torch.no_grad()
    def val_loss(self, net: nn.Module, x: Tensor, stamp: Tensor) -> Tensor:
        (_, z), _, _, _ = net(x)
        return F.mse_loss(z, x)


@dataclass
class PredictorStage:
    """Mean of the s1 and s2 cross-entropies on next-step targets, over a frozen tokenizer's tokens.

    s2 is conditioned on the true s1 (teacher forcing, the default) or on s1 sampled from the model (the
    reference's behaviour). Validation is causal throughout: no position sees a later one.
    """

    name = "predictor"
    train_loss_name = val_loss_name = "cross-entropy (s1 + s2) / 2"
    model: Kronos
    tokenizer: KronosTokenizer
    teacher_forcing: bool
    grad_clip: float
    lr: float

    @classmethod
    def build(cls, cfg: Config, init: str | None = None, tokenizer: str | None = None) -> PredictorStage:
        tok_spec = tokenizer or cfg.model.tokenizer
        tok = load_model(KronosTokenizer, tok_spec).eval()
        for p in tok.parameters():
            p.requires_grad_(False)
        model = load_model(Kronos, init or cfg.model.predictor)
        check_pair(tok.config, model.config)
        apply_method(model, cfg.training)
        return cls(
            model,
            tok,
            cfg.training.teacher_forcing,
            cfg.training.predictor_grad_clip,
            cfg.training.predictor_learning_rate,
        )

    def modules(self) -> list[nn.Module]:
        return [self.model, self.tokenizer]

    def _tokens(self, x: Tensor) -> tuple[Tensor, Tensor]:
        with torch.no_grad():
            s1, s2 = self.tokenizer.encode(x, half=True)
        return s1, s2

    def _loss(
        self, net: nn.Module, x: Tensor, stamp: Tensor, teacher_forcing: bool, causal: bool
    ) -> tuple[Tensor, Tensor, Tensor]:
        s1, s2 = self._tokens(x)
        s1_in, s2_in, s1_tgt, s2_tgt = s1[:, :-1], s2[:, :-1], s1[:, 1:], s2[:, 1:]
        s1_logits, s2_logits = net(
            s1_in, s2_in, stamp[:, :-1], use_teacher_forcing=teacher_forcing, s1_targets=s1_tgt, causal_dep=causal
        )
        ce1 = F.cross_entropy(s1_logits.reshape(-1, s1_logits.shape[-1]).float(), s1_tgt.reshape(-1))
        ce2 = F.cross_entropy(s2_logits.reshape(-1, s2_logits.shape[-1]).float(), s2_tgt.reshape(-1))
        return (ce1 + ce2) / 2, ce1, ce2

    def train_loss(self, net: nn.Module, x: Tensor, stamp: Tensor) -> tuple[Tensor, dict[str, float]]:
        loss, ce1, ce2 = self._loss(net, x, stamp, self.teacher_forcing, causal=True)
        return loss, {"ce_s1": ce1.item(), "ce_s2": ce2.item()}

    @torch.no_grad()
    def val_loss(self, net: nn.Module, x: Tensor, stamp: Tensor) -> Tensor:
        return self._loss(net, x, stamp, teacher_forcing=True, causal=True)[0]

    def per_position_val_loss(self, x: Tensor, stamp: Tensor) -> Tensor:
        """Validation cross-entropy at each position (B, T-1), for causality checks."""
        s1, s2 = self._tokens(x)
        s1_logits, s2_logits = self.model(
            s1[:, :-1], s2[:, :-1], stamp[:, :-1], use_teacher_forcing=True, s1_targets=s1[:, 1:], causal_dep=True
        )
        ce1 = F.cross_entropy(s1_logits.transpose(1, 2), s1[:, 1:], reduction="none")
        ce2 = F.cross_entropy(s2_logits.transpose(1, 2), s2[:, 1:], reduction="none")
        return (ce1 + ce2) / 2
