"""KronosTokenizer: OHLCV bars <-> hierarchical (s1, s2) token ids, state-dict compatible with the reference."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from kronos_cli.model.bsq import BSQuantizer
from kronos_cli.model.checkpoint import PretrainedMixin
from kronos_cli.model.config import TokenizerConfig
from kronos_cli.model.layers import LayerKV, TransformerBlock


class KronosTokenizer(PretrainedMixin, nn.Module):
    config_class = TokenizerConfig

    def __init__(self, config: TokenizerConfig):
        super().__init__()
        self.config = c = config
        self.s1_bits, self.s2_bits = c.s1_bits, c.s2_bits
        self.codebook_dim = c.s1_bits + c.s2_bits

        def block() -> TransformerBlock:
            return TransformerBlock(
                c.d_model, c.n_heads, c.ff_dim, c.ffn_dropout_p, c.attn_dropout_p, c.resid_dropout_p
            )

        self.embed = nn.Linear(c.d_in, c.d_model)
        self.head = nn.Linear(c.d_model, c.d_in)
        # The reference builds n_layers - 1 blocks on each side; the key names depend on it.
        self.encoder = nn.ModuleList([block() for _ in range(c.n_enc_layers - 1)])
        self.decoder = nn.ModuleList([block() for _ in range(c.n_dec_layers - 1)])
        self.quant_embed = nn.Linear(c.d_model, self.codebook_dim)
        self.post_quant_embed_pre = nn.Linear(c.s1_bits, c.d_model)
        self.post_quant_embed = nn.Linear(self.codebook_dim, c.d_model)
        self.tokenizer = BSQuantizer(c.s1_bits, c.s2_bits, c.beta, c.gamma0, c.gamma, c.zeta, c.group_size)

    def _encode_latent(self, x: Tensor) -> Tensor:
        z = self.embed(x)  # (B, T, d_model)
        for layer in self.encoder:
            z = layer(z)
        return self.quant_embed(z)  # (B, T, K)

    def _decode_latent(self, z: Tensor) -> Tensor:
        for layer in self.decoder:
            z = layer(z)
        return self.head(z)  # (B, T, d_in)

    def forward(self, x: Tensor):
        """Training pass: ((coarse reconstruction, full reconstruction), bsq_loss, quantized, ids)."""
        bsq_loss, quantized, ids = self.tokenizer(self._encode_latent(x))
        z_pre = self._decode_latent(self.post_quant_embed_pre(quantized[..., : self.s1_bits]))
        z = self._decode_latent(self.post_quant_embed(quantized))
        return (z_pre, z), bsq_loss, quantized, ids

    def loss(self, x: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """The fine-tuning loss (mse(coarse) + mse(full) + bsq) / 2 and its parts."""
        (z_pre, z), bsq_loss, _, _ = self(x)
        rec_pre = torch.mean((z_pre - x) ** 2)
        rec = torch.mean((z - x) ** 2)
        return (rec_pre + rec + bsq_loss) / 2, {"recon_coarse": rec_pre, "recon_full": rec, "bsq": bsq_loss}

    def encode(self, x: Tensor, half: bool = False):
        """Token ids of bars x (B, T, d_in): [s1_ids, s2_ids] each (B, T) when half, else combined ids."""
        _, _, ids = self.tokenizer(self._encode_latent(x), half=half, with_loss=False)
        return ids

    def indices_to_bits(self, ids, half: bool = False) -> Tensor:
        if half:
            s1, s2 = ids
            parts = [self._unpack(s1, self.s1_bits), self._unpack(s2, self.s2_bits)]
            bits = torch.cat(parts, dim=-1)
        else:
            bits = self._unpack(ids, self.codebook_dim)
        return (bits.float() * 2 - 1) * (1.0 / self.codebook_dim**0.5)

    @staticmethod
    def _unpack(ids: Tensor, n_bits: int) -> Tensor:
        mask = 2 ** torch.arange(n_bits, device=ids.device, dtype=torch.long)
        return (ids.long().unsqueeze(-1) & mask) != 0

    def decode(self, ids, half: bool = False) -> Tensor:
        """Bars (B, T, d_in) from token ids."""
        return self._decode_latent(self.post_quant_embed(self.indices_to_bits(ids, half)))

    def decode_after(self, prefix: list[Tensor], tail: list[Tensor], repeats: int | Tensor) -> Tensor:
        """Bars (rows, T_tail, d_in) of tail ids [s1, s2] (rows, T_tail) that continue a prefix [s1, s2] (B, T_p)
        shared by consecutive rows (series i owns `repeats` rows, one number or one per series).

        The decoder is causal, so this is `decode` of each row's prefix + tail, keeping the tail; but each prefix
        runs once, not once per row, and its keys and values are lent to its rows (sample paths share their
        history). Equal to the full decode up to float rounding; a row's bars do not depend on the other rows
        when run under `invariant.batch_invariant()`, as the forecaster does."""
        z = self.post_quant_embed(self.indices_to_bits(prefix, half=True))  # (B, T_p, d_model)
        capacity = prefix[0].shape[1] + tail[0].shape[1]
        caches = []
        for layer in self.decoder:
            heads = layer.self_attn.n_heads
            kv = LayerKV.empty(z.shape[0], heads, capacity, z.shape[-1] // heads, like=z)
            z = layer(z, kv)
            caches.append(kv.repeat_interleave(repeats))
        z = self.post_quant_embed(self.indices_to_bits(tail, half=True))  # (rows, T_tail, d_model)
        for layer, kv in zip(self.decoder, caches):
            z = layer(z, kv)
        return self.head(z)
