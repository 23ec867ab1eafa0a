"""Training throughput on the CPU through the real data path, against the same loop on tensors in memory.

For the tiny and the small presets (predictor stage: frozen tokenizer + predictor, AdamW, gradient clipping),
on windows prepared from the synthetic Qlib market (lookback 90, predict 10). The data path is the one
`kronos train-*` uses: WindowDataset + EpochSampler + DataLoader + to_tensors. The in-memory baseline runs
the same steps on batches collected beforehand. Data loading's cost is 1 - real / in-memory.

    python benchmarks/bench_train.py [--steps 8]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from _common import SPLITS  # noqa: E402 (benchmarks run as scripts from their folder)
from torch.utils.data import DataLoader

from kronos_cli import config
from kronos_cli.data.dataset import EpochSampler, WindowDataset, collate, to_tensors
from kronos_cli.data.prep import prepare
from kronos_cli.data.synthetic import write_market
from kronos_cli.train.methods import trainable
from kronos_cli.train.stages import PredictorStage

PRESETS = {"tiny": ("preset:tokenizer-tiny", "preset:tiny", 50), "small": ("preset:tokenizer-base", "preset:small", 16)}


def step_fn(stage: PredictorStage, opt: torch.optim.Optimizer):
    params = [p for p in stage.model.parameters() if p.requires_grad]

    def step(x, stamp):
        loss, _ = stage.train_loss(stage.model, x, stamp)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, stage.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def measure(cfg, preset: str, steps: int, workers: int) -> tuple[float, float]:
    tok, pred, batch = PRESETS[preset]
    cfg = config.load(None, [*cfg, f"model.tokenizer={tok}", f"model.predictor={pred}"])
    torch.manual_seed(0)
    stage = PredictorStage.build(cfg)
    stage.model.train()
    step = step_fn(stage, torch.optim.AdamW(stage.model.parameters(), lr=1e-4))
    ds = WindowDataset(cfg.data.dataset_path, "train")
    sampler = EpochSampler(len(ds), samples=steps * batch, seed=0)
    order = list(sampler)
    cached = [to_tensors(ds.__getitems__(order[i * batch : (i + 1) * batch])) for i in range(steps)]
    for x, stamp in cached[:2]:  # warm-up
        step(x, stamp)

    def real_pass() -> float:
        loader = DataLoader(ds, batch_size=batch, sampler=sampler, num_workers=workers, collate_fn=collate)
        t = time.perf_counter()  # worker start-up included: it is part of every epoch
        for arrays in loader:
            step(*to_tensors(arrays))
        return steps * batch / (time.perf_counter() - t)

    def memory_pass() -> float:
        t = time.perf_counter()
        for x, stamp in cached:
            step(x, stamp)
        return steps * batch / (time.perf_counter() - t)

    real, memory = [], []
    for _ in range(2):  # alternate, so that drift in the machine's speed hits both alike
        real.append(real_pass())
        memory.append(memory_pass())
    return max(real), max(memory)


def optimiser_state_mb(opt: torch.optim.Optimizer) -> float:
    return (
        sum(t.numel() * t.element_size() for s in opt.state.values() for t in s.values() if torch.is_tensor(t)) / 2**20
    )


def methods(base: list[str], steps: int) -> None:
    """Full fine-tuning against LoRA (and head, freeze) on the small preset, the same in-memory batches each."""
    tok, pred, batch = PRESETS["small"]
    print(f"\n{'method':<8} {'trainable':>12} {'share':>7} {'optimiser state MB':>19} {'samples/s':>10}")
    rows = {}
    for method in ("full", "lora", "freeze", "head"):
        cfg = config.load(
            None, [*base, f"model.tokenizer={tok}", f"model.predictor={pred}", f"training.method={method}"]
        )
        torch.manual_seed(0)
        stage = PredictorStage.build(cfg)
        stage.model.train()
        params = [p for p in stage.model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=1e-4)
        step = step_fn(stage, opt)
        ds = WindowDataset(cfg.data.dataset_path, "train")
        order = list(EpochSampler(len(ds), samples=(steps + 1) * batch, seed=0))
        cached = [to_tensors(ds.__getitems__(order[i * batch : (i + 1) * batch])) for i in range(steps + 1)]
        step(*cached[0])  # warm-up, and the optimiser's state exists from here
        t = time.perf_counter()
        for x, stamp in cached[1:]:
            step(x, stamp)
        rate = steps * batch / (time.perf_counter() - t)
        got, total = trainable(stage.model)
        rows[method] = optimiser_state_mb(opt)
        print(f"{method:<8} {got:>12,} {got / total:>6.1%} {rows[method]:>19.1f} {rate:>10.1f}")
    print(f"LoRA's optimiser state is {rows['lora'] / rows['full']:.1%} of full fine-tuning's (target < 25%)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--methods-only", action="store_true", help="Only the full vs LoRA comparison.")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        market = write_market(Path(tmp) / "market")
        base = [f"data.provider_uri={market}", f"data.dataset_path={Path(tmp) / 'ds'}", *SPLITS]
        prepare(config.load(None, base))
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
        if args.methods_only:
            methods(base, args.steps)
            return
        print(f"{'preset':<8} {'workers':>7} {'batch':>5} {'real samples/s':>15} {'in-memory':>10} {'data cost':>10}")
        for preset in ("tiny", "small"):
            for workers in (0, 2):
                real, memory = measure(base, preset, args.steps if preset == "small" else 4 * args.steps, workers)
                cost = max(0.0, 1 - real / memory)
                print(f"{preset:<8} {workers:>7} {PRESETS[preset][2]:>5} {real:>15.1f} {memory:>10.1f} {cost:>9.1%}")
        print("target: data loading costs under 10% of training throughput")
        methods(base, args.steps)


if __name__ == "__main__":
    main()
