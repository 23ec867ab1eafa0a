"""Kronos: the decoder-only transformer over (s1, s2) tokens, state-dict compatible with the reference."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kronos_cli.model.checkpoint import PretrainedMixin
from kronos_cli.model.config import PredictorConfig
from kronos_cli.model.layers import (
    DependencyAwareLayer,
    DualHead,
    HierarchicalEmbedding,
    KVSlot,
    RMSNorm,
    TemporalEmbedding,
    TransformerBlock,
    dropped,
)


class Kronos(PretrainedMixin, nn.Module):
    config_class = PredictorConfig

    def __init__(self, config: PredictorConfig):
        super().__init__()
        self.config = c = config
        self.s1_bits, self.s2_bits, self.d_model = c.s1_bits, c.s2_bits, c.d_model
        self.embedding = HierarchicalEmbedding(c.s1_bits, c.s2_bits, c.d_model)
        self.time_emb = TemporalEmbedding(c.d_model, c.learn_te)
        self.token_drop = nn.Dropout(c.token_dropout_p)
        self.transformer = nn.ModuleList(
            [
                TransformerBlock(c.d_model, c.n_heads, c.ff_dim, c.ffn_dropout_p, c.attn_dropout_p, c.resid_dropout_p)
                for _ in range(c.n_layers)
            ]
        )
        self.norm = RMSNorm(c.d_model)
        self.dep_layer = DependencyAwareLayer(c.d_model)
        self.head = DualHead(c.s1_bits, c.s2_bits, c.d_model)
        self.apply(self._init_weights)

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.xavier_normal_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding) and module.weight.requires_grad:
            # Frozen sinusoidal time tables keep their values.
            nn.init.normal_(module.weight, mean=0, std=self.d_model**-0.5)

    def hidden(
        self,
        s1_ids: Tensor,
        s2_ids: Tensor,
        stamp: Tensor | None = None,
        kv: Sequence[KVSlot] | None = None,
        fused=None,
        time: Tensor | None = None,
    ) -> Tensor:
        """Normalised hidden states (B, T, d_model) of tokens (B, T) and their stamps (B, T, 5); with `kv`, the
        tokens continue the cached ones. `fused` (`decode.DecodeWeights`): the decode step's layout of these
        weights, the same linear maps. `time`: the stamps' time embedding (B, T, d_model) computed beforehand, in
        place of `stamp` (the decode step computes every step's at once)."""
        x = self.embedding(s1_ids, s2_ids, None if fused is None else fused.fusion)  # (B, T, d_model)
        if time is None and stamp is not None:
            time = self.time_emb(stamp)
        if time is not None:
            x = x + time
        x = dropped(self.token_drop, x)
        for i, layer in enumerate(self.transformer):
            x = layer(x, None if kv is None else kv[i], None if fused is None else fused.blocks[i])
        return self.norm(x)

    def forward(
        self,
        s1_ids: Tensor,
        s2_ids: Tensor,
        stamp: Tensor | None = None,
        padding_mask: Tensor | None = None,
        use_teacher_forcing: bool = False,
        s1_targets: Tensor | None = None,
        causal_dep: bool | None = None,
    ) -> tuple[Tensor, Tensor]:
        """s1 and s2 logits (B, T, vocab).

        s2 is conditioned on `s1_targets` with teacher forcing, else on s1 ids sampled from the s1 logits.
        `causal_dep` sets whether the dependency layer's attention is causal; the reference (None) makes it
        causal in training mode only, so an eval-mode loss there lets each position see later ones.
        """
        if padding_mask is not None:
            raise NotImplementedError("padding masks are not supported; windows never contain padding")
        x = self.hidden(s1_ids, s2_ids, stamp)
        s1_logits = self.head(x)
        if use_teacher_forcing:
            cond = s1_targets
        else:
            probs = F.softmax(s1_logits.detach().float(), dim=-1)
            cond = torch.multinomial(probs.view(-1, probs.shape[-1]), 1).view(s1_ids.shape)
        causal = self.training if causal_dep is None else causal_dep
        x2 = self.dep_layer(x, self.embedding.emb_s1(cond), causal=causal)
        return s1_logits, self.head.cond_forward(x2)

    def decode_s1(self, s1_ids: Tensor, s2_ids: Tensor, stamp: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Full-window pass as in the reference: (s1 logits at every position, context)."""
        context = self.hidden(s1_ids, s2_ids, stamp)
        return self.head(context), context

    def decode_s2(self, context: Tensor, s1_ids: Tensor) -> Tensor:
        """s2 logits conditioned on s1 ids (B, T) or a single next s1 id (B, 1), as in the reference."""
        causal = self.training and s1_ids.shape[1] > 1
        x2 = self.dep_layer(context, self.embedding.emb_s1(s1_ids), causal=causal)
        return self.head.cond_forward(x2)
