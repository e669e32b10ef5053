"""What one method's run produces and what it changes: :class:`MethodResult` and :class:`LoopState`
(the loop's whole state, which its checkpoint holds)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import torch
from torch import nn

from infaug import distributed
from infaug.train.checkpoint import rng_states, set_rng_states
from infaug.train.classifier import Augment, ClassifierTrainer
from infaug.train.semi import Unlabelled

__all__ = ["LoopState", "MethodResult"]


@dataclass
class MethodResult:
    method: str
    seed: int
    test_loss: Optional[float]  # None when the task has no test split (learn_augmenter without one)
    test_accuracy: Optional[float]
    val_loss: float
    val_accuracy: float
    seconds: float
    model: nn.Module
    augment: Optional[Augment]
    encoder: Optional[nn.Module] = None
    generator: Optional[nn.Module] = None
    rounds: list = field(default_factory=list)  # per round: val loss, I_aug on the held-out samples
    encoder_history: list = field(default_factory=list)  # per round: mean I_aug per E step
    holdout_i_aug: dict = field(default_factory=dict)  # proposed: I_aug (per sample) at the last round's F
    last_layer_check: dict = field(default_factory=dict)  # proposed: predicted and actual, see infaug.diagnose
    summary: dict = field(default_factory=dict)  # per-seed figures for metrics.json (toy2d's proposed: E's mean translation)


@dataclass
class LoopState:
    """What a method's run changes, all of it: what its checkpoint holds. ``batches`` draws F's
    batch order (the same for every method of a seed); ``rng`` E's batches and, in one process, the
    augmentations and E's noise; ``local`` this rank's augmentations and E's noise (``rng`` itself
    in one process); ``measure`` what is only measured, apart, so that it changes no training."""

    trainer: ClassifierTrainer
    encoder: Optional[nn.Module]
    batches: torch.Generator
    rng: torch.Generator
    local: torch.Generator
    measure: torch.Generator
    rounds: list = field(default_factory=list)
    encoder_history: list = field(default_factory=list)
    holdout: dict = field(default_factory=dict)
    check: dict = field(default_factory=dict)
    check_seconds: float = 0.0  # the diagnostic's time, not part of the method's
    result: Optional[dict] = None
    unlabelled: Optional[Unlabelled] = None  # F's semi-supervised part (semi.ratio > 0), with its generator

    @property
    def generators(self) -> dict:
        """Every generator F's round draws from (the round judge restores them between candidates)."""
        return {"batches": self.batches, "rng": self.rng, "local": self.local, **self._unlabelled_generator}

    @property
    def _unlabelled_generator(self) -> dict:
        return {} if self.unlabelled is None else {"unlabelled": self.unlabelled.generator}

    def state_dict(self) -> dict:
        return {"trainer": self.trainer.state_dict(), "encoder": None if self.encoder is None else self.encoder.state_dict(),
                "encoder_training": self.encoder is not None and self.encoder.training, "rounds": self.rounds,
                "encoder_history": self.encoder_history, "holdout": self.holdout, "check": self.check,
                "check_seconds": self.check_seconds, "rng": rng_states(batches=self.batches, rng=self.rng, measure=self.measure, **self._unlabelled_generator),
                "rank_rng": distributed.rank_states(self.local), **({} if self.result is None else {"result": self.result})}

    def load_state_dict(self, saved: dict, *, seed: int, method: str) -> None:
        self.trainer.load_state_dict(saved["trainer"])
        if self.encoder is not None:
            self.encoder.load_state_dict(saved["encoder"])
            self.encoder.train(saved["encoder_training"])
        self.rounds, self.encoder_history, self.holdout, self.check = (saved[k] for k in ("rounds", "encoder_history", "holdout", "check"))
        self.check_seconds, self.result = saved["check_seconds"], saved.get("result")
        set_rng_states(saved["rng"], batches=self.batches, rng=self.rng, measure=self.measure, **self._unlabelled_generator)
        distributed.restore_rank_rng(saved.get("rank_rng"), self.local, seed, f"{method} augmentations",
                                     f"F epoch {self.trainer.epochs_done}, {len(self.rounds)} rounds")
