"""Retention-budgeted training: train epoch by epoch, keep the best epoch whose drift fits a budget.

The paper chooses the learning rate by hand so that no capability drops by more than a few
points; an update here carries the bound instead. After every epoch (and once before the first,
for the parent itself) ``EpochSelector.observe`` is given the scores of a cheap check
(``disc_engine.evaluation.epoch_check``): the retention KL to the parent on the parent's own
replies and a knowledge score (higher is better). It answers whether to keep this epoch's
weights as the best so far and whether to stop:

* an epoch whose KL exceeds the budget is never kept. Training stops when the KL is far over
  (more than ``stop_factor`` × the budget) or over for ``over_patience`` epochs in a row: at a
  constant learning rate the KL of a DiSC update rises in the first epoch and then wanders
  around a plateau (0.25 / 0.20 / 0.30 / 0.26 / 0.27 / 0.24 over six epochs of the tuning run in
  docs/results/knowledge_update.md) while knowledge keeps rising, so one epoch just over the
  budget is noise, not the start of a slide;
* an epoch within budget is kept when its knowledge beats the best kept one by more than
  ``min_gain``; after ``patience`` epochs without such a gain, training stops;
* with ``max_format_drop`` (an update's ``retention_budget_format_drop``) the check also
  measures format compliance, and an epoch whose compliance fell further than that below the
  parent's counts as over the budget, as one over the KL bound does;
* the parent (epoch 0) is kept first, so a budget no epoch fits leaves the parent unchanged.

The selector's state (trajectory, best epoch, best weights) travels in training checkpoints,
so a resumed run makes the same choices.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class RetentionBudget:
    max_kl_vs_parent: float
    min_gain: float = 0.005     # knowledge must rise by more than this to count as a gain
    patience: int = 1           # epochs without a gain before stopping
    over_patience: int = 2      # epochs in a row over the budget before stopping
    stop_factor: float = 1.5    # a KL over this multiple of the budget stops at once
    # Optional: how far format compliance (``format_compliance`` in the check's scores) may fall
    # below the parent's (epoch 0) before an epoch counts as over the budget.
    max_format_drop: float | None = None

    def __post_init__(self) -> None:
        if not self.max_kl_vs_parent >= 0:
            raise ValueError(f"max_kl_vs_parent must be >= 0; got {self.max_kl_vs_parent}")
        if self.patience < 1 or self.over_patience < 1:
            raise ValueError(f"patience and over_patience must be >= 1; got {self.patience}, {self.over_patience}")
        if not self.stop_factor >= 1:
            raise ValueError(f"stop_factor must be >= 1; got {self.stop_factor}")
        if self.max_format_drop is not None and not 0 <= self.max_format_drop <= 1:
            raise ValueError(f"max_format_drop must be in [0, 1]; got {self.max_format_drop}")


@dataclass
class EpochDecision:
    keep: bool
    stop: bool
    reason: str


@dataclass
class EpochSelector:
    """Applies a ``RetentionBudget`` to the scores ``measure(model)`` returns after each epoch.

    ``measure`` returns a dict with at least ``retention_kl_vs_parent`` and ``knowledge``.
    """

    budget: RetentionBudget
    measure: Callable[[Any], dict]
    trajectory: list[dict] = field(default_factory=list)
    best_epoch: int | None = None
    best_weights: dict | None = None
    stopped_because: str | None = None
    _best_knowledge: float | None = None
    _since_gain: int = 0
    _over_in_a_row: int = 0

    def observe(self, epoch: int, model, trainable) -> EpochDecision:
        started = time.perf_counter()
        scores = dict(self.measure(model))
        check_seconds = round(time.perf_counter() - started, 3)
        kl, knowledge = scores["retention_kl_vs_parent"], scores["knowledge"]
        format_miss = self._format_miss(epoch, scores)
        kl_within = kl <= self.budget.max_kl_vs_parent
        within = (kl_within and format_miss is None) or epoch == 0
        gained = (self._best_knowledge is None
                  or knowledge > self._best_knowledge + self.budget.min_gain)
        keep = within and gained
        self._over_in_a_row = 0 if within else self._over_in_a_row + 1
        if not within:
            far = kl > self.budget.stop_factor * self.budget.max_kl_vs_parent
            stop = far or self._over_in_a_row >= self.budget.over_patience
            misses = ([] if kl_within else [f"retention KL {kl:.4f} exceeds the budget "
                                             f"{self.budget.max_kl_vs_parent:.4f}"]) + \
                ([format_miss] if format_miss else [])
            decision = EpochDecision(False, stop, f"epoch {epoch}: " + "; ".join(misses)
                                     + ("" if stop else " (not kept; training goes on)"))
        elif keep:
            self._since_gain = 0
            decision = EpochDecision(True, False, f"epoch {epoch}: best so far")
        else:
            self._since_gain += 1
            decision = EpochDecision(False, self._since_gain >= self.budget.patience,
                                     f"epoch {epoch}: knowledge did not improve on epoch {self.best_epoch}")
        if keep:
            self.best_epoch, self._best_knowledge = epoch, knowledge
            self.best_weights = {name: p.detach().to("cpu", copy=True) for name, p in trainable}
        self.trajectory.append({"epoch": epoch, **scores, "within_budget": within, "kept": keep,
                                "check_seconds": check_seconds})
        if decision.stop:
            self.stopped_because = decision.reason
        return decision

    def _format_miss(self, epoch: int, scores: dict) -> str | None:
        """Why this epoch's format compliance breaks the budget, or None."""
        bound = self.budget.max_format_drop
        if bound is None or epoch == 0 or not self.trajectory:
            return None
        parent, now = self.trajectory[0].get("format_compliance"), scores.get("format_compliance")
        if parent is None or now is None:
            return "format compliance was not measured"
        if now < parent - bound - 1e-9:
            return f"format compliance {now:.3f} fell more than {bound:g} below the parent's {parent:.3f}"
        return None

    def restore_best(self, trainable) -> None:
        import torch

        with torch.no_grad():
            for name, param in trainable:
                param.copy_(self.best_weights[name].to(param.device))

    def summary(self) -> dict:
        return {"budget": {"max_kl_vs_parent": self.budget.max_kl_vs_parent, "min_gain": self.budget.min_gain,
                           "patience": self.budget.patience, "over_patience": self.budget.over_patience,
                           "stop_factor": self.budget.stop_factor,
                           "max_format_drop": self.budget.max_format_drop},
                "best_epoch": self.best_epoch, "stopped_because": self.stopped_because,
                "trajectory": list(self.trajectory)}

    def state_dict(self) -> dict:
        return {"trajectory": self.trajectory, "best_epoch": self.best_epoch, "best_weights": self.best_weights,
                "stopped_because": self.stopped_because, "best_knowledge": self._best_knowledge,
                "since_gain": self._since_gain, "over_in_a_row": self._over_in_a_row}

    def load_state_dict(self, state: dict) -> None:
        self.trajectory = list(state["trajectory"])
        self.best_epoch, self.best_weights = state["best_epoch"], state["best_weights"]
        self.stopped_because = state["stopped_because"]
        self._best_knowledge, self._since_gain = state["best_knowledge"], state["since_gain"]
        self._over_in_a_row = state.get("over_in_a_row", 0)   # absent in checkpoints from before the rule
