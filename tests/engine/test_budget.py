"""Retention-budgeted training on the tiny model: the budget decides which epoch is kept."""

from __future__ import annotations

import pytest
import torch

from disc_engine.artifacts import load_artifact
from disc_engine.budget import EpochSelector, RetentionBudget
from disc_engine.evaluation.epoch_check import EpochCheck
from disc_engine.models import load_model, load_tokenizer
from disc_engine.trainer import TrainConfig, train
from tests.engine.test_trainer import DOCS

PROMPTS = ["Name a colour.", "Say hello.", "What is two plus two?", "Name a fruit."]
# sft moves the tiny random model's closed-book NLL quickly, so knowledge rises epoch by epoch.
CONFIG = dict(method="sft", learning_rate=5e-3, seed=3)


def _selector(tiny_model, max_kl, patience=3, over_patience=2):
    check = EpochCheck(load_tokenizer(tiny_model), DOCS[:3], prompts=PROMPTS, max_new_tokens=8)
    return EpochSelector(RetentionBudget(max_kl_vs_parent=max_kl, min_gain=-1.0, patience=patience,
                                         over_patience=over_patience), check)


def _weights(path):
    model = load_artifact(path)
    return {n: p.detach().clone() for n, p in model.named_parameters() if "lora_" in n}


def _run(tiny_model, out, epochs, selector=None):
    return train(DOCS[:3], out_dir=str(out), config=TrainConfig(epochs=epochs, **CONFIG),
                 base_model=tiny_model, epoch_selector=selector)


@pytest.fixture(scope="module")
def unbounded(tiny_model, tmp_path_factory):
    """Three epochs under a budget nothing exceeds: every epoch's scores."""
    result = _run(tiny_model, tmp_path_factory.mktemp("free") / "v1", 3, _selector(tiny_model, 1e9))
    return result


def test_every_epoch_is_checked_and_the_trajectory_recorded(unbounded):
    selection = unbounded.metrics["epoch_selection"]
    epochs = [entry["epoch"] for entry in selection["trajectory"]]
    assert epochs == [0, 1, 2, 3]
    kls = [entry["retention_kl_vs_parent"] for entry in selection["trajectory"]]
    assert kls[0] == 0.0 and all(kl > 0 for kl in kls[1:])
    assert selection["best_epoch"] == 3 and unbounded.metrics["epochs_trained"] == 3


def test_a_zero_budget_leaves_the_parent_unchanged_and_says_so(tiny_model, tmp_path):
    result = _run(tiny_model, tmp_path / "v1", 3, _selector(tiny_model, 0.0))
    selection = result.metrics["epoch_selection"]
    assert selection["best_epoch"] == 0
    assert "exceeds the budget" in selection["stopped_because"]
    assert result.metrics["epochs_trained"] == 1          # stopped after the first epoch
    model, base = load_artifact(result.artifact_dir), load_model(tiny_model)
    ids = torch.tensor([[1, 2, 3, 4, 5]])
    with torch.no_grad():
        assert torch.equal(model(input_ids=ids).logits, base(input_ids=ids).logits)


def test_an_exceeded_budget_rolls_back_to_the_last_epoch_within_it(tiny_model, tmp_path, unbounded):
    kls = [entry["retention_kl_vs_parent"] for entry in unbounded.metrics["epoch_selection"]["trajectory"]]
    assert kls[1] < kls[2]
    budget = (kls[1] + kls[2]) / 2
    # Stop at the first epoch over the budget (the tolerance of one such epoch is tested below).
    result = _run(tiny_model, tmp_path / "budgeted", 3, _selector(tiny_model, budget, over_patience=1))
    assert result.metrics["epoch_selection"]["best_epoch"] == 1
    assert result.metrics["epochs_trained"] == 2
    one_epoch = _run(tiny_model, tmp_path / "one", 1)
    kept, expected = _weights(result.artifact_dir), _weights(one_epoch.artifact_dir)
    assert kept.keys() == expected.keys()
    for name in expected:
        assert torch.equal(kept[name], expected[name]), name


class _Scripted:
    """The check's scores, epoch by epoch, from a list: the selection rule on its own."""

    def __init__(self, kls, knowledge, formats=None):
        self.scores = [{"retention_kl_vs_parent": kl, "knowledge": k} for kl, k in zip(kls, knowledge)]
        for scores, share in zip(self.scores, formats or []):
            scores["format_compliance"] = share

    def __call__(self, model):
        return self.scores.pop(0)


def _decisions(kls, knowledge, formats=None, **budget):
    selector = EpochSelector(RetentionBudget(max_kl_vs_parent=0.3, **budget), _Scripted(kls, knowledge, formats))
    decisions = []
    for epoch in range(len(kls)):
        decision = selector.observe(epoch, None, [])
        decisions.append((decision.keep, decision.stop))
        if decision.stop:
            break
    return selector, decisions


def test_one_epoch_just_over_the_budget_is_skipped_and_training_goes_on():
    # The shape of a DiSC run's KL: a plateau around the budget while knowledge keeps rising.
    selector, decisions = _decisions([0.0, 0.25, 0.20, 0.31, 0.26, 0.27], [0.0, 0.4, 0.5, 0.6, 0.67, 0.71])
    assert decisions == [(True, False), (True, False), (True, False), (False, False), (True, False), (True, False)]
    assert selector.best_epoch == 5 and selector.stopped_because is None


def test_two_epochs_over_the_budget_or_one_far_over_stop_training():
    selector, decisions = _decisions([0.0, 0.25, 0.31, 0.33, 0.2], [0.0, 0.4, 0.5, 0.6, 0.7])
    assert decisions[-1] == (False, True) and len(decisions) == 4 and selector.best_epoch == 1
    selector, decisions = _decisions([0.0, 0.25, 0.46], [0.0, 0.4, 0.5])     # 0.46 > 1.5 × 0.3
    assert decisions[-1] == (False, True) and selector.best_epoch == 1
    assert "exceeds the budget" in selector.stopped_because


def test_an_epoch_past_the_format_bound_counts_as_over_the_budget():
    kls, knowledge = [0.0, 0.1, 0.1, 0.1, 0.1], [0.0, 0.4, 0.5, 0.6, 0.7]
    # parent 0.75; the bound allows a fall of 0.25 (two of eight prompts): 0.5 is within, 0.375 not
    selector, decisions = _decisions(kls, knowledge, [0.75, 0.5, 0.375, 0.625, 0.25], max_format_drop=0.25)
    assert decisions == [(True, False), (True, False), (False, False), (True, False), (False, False)]
    assert selector.best_epoch == 3
    assert [entry["within_budget"] for entry in selector.trajectory] == [True, True, False, True, False]
    selector, decisions = _decisions(kls[:4], knowledge[:4], [0.75, 0.5, 0.25, 0.25], max_format_drop=0.25)
    assert decisions[-1] == (False, True) and selector.best_epoch == 1
    assert "format compliance 0.250 fell more than 0.25 below the parent's 0.750" in selector.stopped_because
    # Without the bound the same compliance is not looked at.
    selector, decisions = _decisions(kls, knowledge, [0.75, 0.5, 0.25, 0.25, 0.0])
    assert selector.best_epoch == 4
    # A check that did not measure compliance cannot show an epoch within the bound.
    selector, decisions = _decisions(kls[:2], knowledge[:2], [0.75], max_format_drop=0.25)
    assert decisions[1] == (False, False)


def test_the_format_bound_needs_the_kl_budget_and_is_checked_when_training(tiny_model, tmp_path):
    with pytest.raises(ValueError, match="retention_budget_format_drop needs retention_budget_kl"):
        TrainConfig.from_dict({"retention_budget_kl": None, "retention_budget_format_drop": 0.25})
    with pytest.raises(ValueError, match="retention_budget_format_drop"):
        TrainConfig.from_dict({"retention_budget_format_drop": 1.5})
    config = TrainConfig(epochs=2, retention_budget_kl=100.0, retention_budget_format_drop=0.0, **CONFIG)
    result = train(DOCS[:3], out_dir=str(tmp_path / "v1"), config=config, base_model=tiny_model)
    selection = result.metrics["epoch_selection"]
    assert selection["budget"]["max_format_drop"] == 0.0
    shares = [entry["format_compliance"] for entry in selection["trajectory"]]
    assert len(shares) == 3 and all(0.0 <= share <= 1.0 for share in shares)
    # The random tiny model follows no instruction: nothing can fall, so the bound keeps the best epoch.
    assert shares[0] == 0.0 and selection["best_epoch"] == 2


def test_a_budgeted_run_is_reproducible_from_its_seed(tiny_model, tmp_path, unbounded):
    again = _run(tiny_model, tmp_path / "again", 3, _selector(tiny_model, 1e9))
    first, second = unbounded.metrics["epoch_selection"], again.metrics["epoch_selection"]
    assert [e["retention_kl_vs_parent"] for e in first["trajectory"]] == \
           [e["retention_kl_vs_parent"] for e in second["trajectory"]]
    a, b = _weights(unbounded.artifact_dir), _weights(again.artifact_dir)
    assert all(torch.equal(a[n], b[n]) for n in a)


def test_the_budget_is_a_training_option_and_reaches_the_artifact(tiny_model, tmp_path):
    from disc_engine.artifacts import read_meta

    result = train(DOCS[:2], out_dir=str(tmp_path / "v1"), base_model=tiny_model,
                   config=TrainConfig(epochs=2, retention_budget_kl=0.0, **CONFIG))
    selection = read_meta(result.artifact_dir)["metrics"]["epoch_selection"]
    assert selection["best_epoch"] == 0 and selection["budget"]["max_kl_vs_parent"] == 0.0
    assert [e["epoch"] for e in selection["trajectory"]] == [0, 1]


def test_the_api_accepts_the_budget_with_the_engine_bounds():
    from pydantic import ValidationError

    from service.schemas import Hyperparameters

    assert Hyperparameters.model_validate({"retention_budget_kl": 0.05}).retention_budget_kl == 0.05
    with pytest.raises(ValidationError):
        Hyperparameters.model_validate({"retention_budget_kl": -1})
