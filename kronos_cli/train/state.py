"""What a training run carries between steps and epochs, what it reports, and who listens.

`TrainState` is saved in `checkpoints/last` and restored on resume; `TrainSummary` is the result of a run (also
`summary.json`); an `Observer` receives progress events (the CLI renders them, tests record them).
"""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass, field
from typing import Any


@dataclass
class TrainOptions:
    """What a `kronos train-*` invocation asks for beyond the config."""

    stage: str  # "tokenizer" or "predictor"
    max_steps: int | None = None
    resume: str | None = None  # None, "auto" or a checkpoints/last directory
    init: str | None = None  # start from this checkpoint instead of the config's model
    tokenizer: str | None = None  # the predictor stage's tokenizer
    checkpoint_every: int = 0  # also write checkpoints/last every N optimiser steps (0: at epoch ends)
    overwrite: bool = False  # start afresh in a run directory that holds another run's checkpoints
    # This invocation's id, the same in every worker and across elastic restarts (the options travel in the
    # launch payload): a restart resumes checkpoints/last only when they are this run's.
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])


@dataclass
class TrainState:
    """Position and bookkeeping of a run; everything here is restored on resume."""

    epoch: int = 0  # epochs completed
    step: int = 0  # optimiser steps taken
    batches_done: int = 0  # batches of the current epoch already trained
    best_val_loss: float = float("inf")  # the validation loss of best_model
    best_score: float = float("nan")  # best_model's training.select_by value (its validation loss by default)
    best_epoch: int = -1
    bad_epochs: int = 0  # epochs since the last improvement
    history: list[dict[str, float]] = field(default_factory=list)
    train_seconds: float = 0.0
    rank_weight_spread: float = 0.0
    run_id: str = ""  # the run that wrote these checkpoints (TrainOptions.run_id)
    val_loss_start: float = float("nan")  # the starting model's validation loss, before the first step

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_saved(cls, saved: dict[str, Any]) -> TrainState:
        return cls(**{f.name: saved[f.name] for f in dataclasses.fields(cls) if f.name in saved})


@dataclass
class TrainSummary:
    """The result of one stage's run, as written to `summary.json`."""

    stage: str
    run_dir: str
    best_model: str
    best_val_loss: float
    best_epoch: int
    epochs_completed: int
    steps: int
    stopped_early: bool
    wall_time_s: float
    world_size: int
    rank_weight_spread: float
    samples_per_s: float | None
    device: str
    kronos_cli: str
    val_loss_start: float | None = None  # the unchanged starting model's validation loss
    improvement: float | None = None  # (start - best) / start: positive when fine-tuning beat its start
    selected_by: str = "val_loss"  # what picked best_model
    best_score: float | None = None  # best_model's value of it
    method: str = "full"  # training.method: full, freeze, head or lora
    trainable_params: int | None = None  # parameters the optimiser updated
    total_params: int | None = None  # all of the model's (with LoRA: the frozen base weights and the adapters)
    trainable_share: float | None = None  # trainable_params / total_params

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class StepEvent:
    epoch: int
    epochs: int
    step: int  # optimiser steps so far
    total_steps: int
    loss: float
    lr: float
    samples_per_s: float


@dataclass
class EpochEvent:
    epoch: int
    train_loss: float
    val_loss: float
    best_val_loss: float
    improved: bool
    lr: float
    seconds: float


class Observer:
    """Receives a run's progress. Every rank has one; the launcher gives rank 0 the one that renders."""

    def on_start(self, info: dict[str, Any]) -> None: ...
    def on_step(self, event: StepEvent) -> None: ...
    def on_epoch(self, event: EpochEvent) -> None: ...
    def on_end(self, summary: TrainSummary) -> None: ...
