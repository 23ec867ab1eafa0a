"""Full, LoRA, freeze and head fine-tuning of the same starting model, on a market it was not trained on.

The starting model is the demo pair trained from scratch on the planted demo market (seed 0); each method then
fine-tunes that predictor on another planted market (seed 1: other stocks, the same kind of signal) with the
same steps and learning rate. Reported per method: trainable parameters, the validation loss and the
validation IC (mean daily IC of the mean signal on 20 validation days) of the starting model and of the
selected best model, and the wall time. Everything runs through `kronos` itself on the CPU.

    python benchmarks/bench_methods.py [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import SPLITS  # noqa: E402 (benchmarks run as scripts from their folder)

DEMO = Path(__file__).resolve().parent.parent / "configs" / "demo.yaml"
METHODS = ("full", "lora", "freeze", "head")


def kronos(*args: str) -> subprocess.CompletedProcess:
    run = subprocess.run([sys.executable, "-m", "kronos_cli", *args], capture_output=True, text=True)
    if run.returncode:
        raise SystemExit(run.stderr[-2000:])
    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    root = args.out or Path(tempfile.mkdtemp(prefix="kronos-methods-"))
    base = [f"output_dir={root / 'outputs'}", *SPLITS]
    kronos("demo-data", str(root / "m0"), "--seed", "0", "--force")
    kronos("demo-data", str(root / "m1"), "--seed", "1", "--force")
    start = [*base, f"data.provider_uri={root / 'm0'}", f"data.dataset_path={root / 'd0'}", "run_name=start"]
    kronos("pipeline", "-c", str(DEMO), "--until", "train-predictor", *start)
    ckpt = root / "outputs" / "models" / "start"
    tok, pred = ckpt / "tokenizer" / "checkpoints" / "best_model", ckpt / "predictor" / "checkpoints" / "best_model"
    data = [*base, f"data.provider_uri={root / 'm1'}", f"data.dataset_path={root / 'd1'}"]
    kronos("prep", "-c", str(DEMO), *data)
    print(
        f"{'method':<7} {'trainable':>10} {'val loss start':>15} {'best':>7} {'val IC start':>13} {'best':>7} {'s':>6}"
    )
    for method in METHODS:
        t = time.perf_counter()
        ov = [*data, f"run_name={method}", f"model.tokenizer={tok}", f"model.predictor={pred}",
              f"training.method={method}", "training.select_by=val_ic", "training.epochs=3"]  # fmt: skip
        res = kronos("train-predictor", "-c", str(DEMO), *ov, "--tokenizer", str(tok), "--json", "--overwrite")
        seconds = time.perf_counter() - t
        summary = json.loads(res.stdout)
        log = Path(summary["run_dir"], "logs", "train.log").read_text()
        trainable = log.split("method ")[1].split(" parameters")[0].split(": ")[1]
        first_ic = _start_ic(ov, tok, pred)
        print(
            f"{method:<7} {trainable:>10} {summary['val_loss_start']:>15.4f} {summary['best_val_loss']:>7.4f} "
            f"{first_ic:>13.3f} {summary['best_score']:>7.3f} {seconds:>6.0f}"
        )
    print(f"(outputs in {root})")


_START_IC: dict[str, float] = {}


def _start_ic(ov: list[str], tok: Path, pred: Path) -> float:
    """The starting model's validation IC on the same days (measured once)."""
    if "ic" not in _START_IC:
        from kronos_cli import config
        from kronos_cli.forecast.predictor import KronosPredictor
        from kronos_cli.model import Kronos, KronosTokenizer
        from kronos_cli.train.validation import ValidationSkill

        cfg = config.load(DEMO, ov)
        skill = ValidationSkill(cfg)
        forecaster = KronosPredictor(Kronos.from_pretrained(pred), KronosTokenizer.from_pretrained(tok), "cpu",
                                     cfg.data.max_context, cfg.data.clip)  # fmt: skip
        _START_IC["ic"] = skill.score(forecaster)["val_ic"]
    return _START_IC["ic"]


if __name__ == "__main__":
    main()
