"""How many windows to forecast at once: as many as a share of the free memory holds (`batch_size: auto`).

A batch of B windows with S sample paths holds, per window, a key/value cache for every layer and for the
dependency layer: the lookback once and the horizon once per path (the paths share their history, see
`model.decode.PathsKV`), or the whole context once per path after the window slid; the tokenizer decoder's
cache of the window per path; and, per window during the prefill, the attention scores and the feed-forward
activations of the lookback. The batch takes a quarter of the free memory (CUDA: free device memory; CPU: the
memory available to new processes, through psutil on Linux, macOS and Windows), between 16 and 1,024 windows.
Forecasts do not depend on the batch size (each window has its own seed), so this only changes speed.
"""

from __future__ import annotations

import logging

import psutil
import torch

log = logging.getLogger(__name__)
SHARE, SMALLEST, LARGEST = 0.25, 16, 1024


def free_bytes(device: torch.device) -> int:
    """Free memory where the forecast runs."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    return int(psutil.virtual_memory().available)  # Linux's MemAvailable, and its like on macOS and Windows


def window_bytes(model_config, tokenizer_config, lookback: int, predict: int, samples: int, max_context: int) -> int:
    """Estimated peak bytes one window (with its sample paths) needs while it is forecast in fp32."""
    c = model_config
    hist = min(lookback, max_context)
    positions = hist + min(predict, max_context - hist) * samples  # the history once, each path's own tokens
    if lookback + predict > max_context:  # once the window slides, every path has its own
        positions = max(positions, samples * max_context)
    kv = (c.n_layers + 1) * 2 * c.d_model * positions * 4
    prefill = (c.n_heads * lookback * lookback + 4 * lookback * max(c.ff_dim, c.d_model)) * 4
    logits = samples * 2 * (2**c.s1_bits) * 4
    t = tokenizer_config
    decoder = samples * (t.n_dec_layers - 1) * 2 * t.d_model * min(lookback + predict, max_context) * 4
    return kv + prefill + logits + decoder


def auto_batch_size(forecaster, lookback: int, predict: int, samples: int) -> int:
    configs = forecaster.model.config, forecaster.tokenizer.config
    per = window_bytes(*configs, lookback, predict, samples, forecaster.max_context)
    free = free_bytes(forecaster.device)
    size = int(min(LARGEST, max(SMALLEST, SHARE * free // max(per, 1))))
    log.info(
        "batch_size auto: %d windows (%.1f MB each, %.1f GB free on %s)",
        size,
        per / 2**20,
        free / 2**30,
        forecaster.device,
    )
    return size
