"""Chat replay: the parent's own chat replies distilled beside an update's documents."""

from __future__ import annotations

import difflib
import json
from pathlib import Path

import pytest
import torch

from disc_engine.adapters import new_lora_model
from disc_engine.artifacts import load_artifact, read_meta
from disc_engine.evaluation._common import load_json
from disc_engine.loss import context_distillation_loss_reference
from disc_engine.models import load_model, load_tokenizer
from disc_engine.replay import ChatReplay, load_replay_prompts
from disc_engine.trainer import TrainConfig, train
from tests.engine.test_trainer import DOCS, FAST

PROMPTS = ["Name a colour.", "Say hello.", "What is two plus two?", "Name a fruit.", "Count to three."]
BENCHMARK_DATA = Path(__file__).resolve().parents[2] / "benchmarks" / "knowledge_update" / "data"


def _evaluated_prompts() -> set[str]:
    """Every prompt or question an evaluation or a benchmark scores a model on."""
    prompts = set(load_json("chat_prompts.json")) | {i["prompt"] for i in load_json("instructions.json")}
    prompts |= {q["question"] for q in load_json("general_mc.json")}
    prompts |= set(json.loads((BENCHMARK_DATA / "chat_prompts.json").read_text()))
    prompts |= {i["prompt"] for i in json.loads((BENCHMARK_DATA / "instructions.json").read_text())}
    prompts |= {q["question"] for q in json.loads((BENCHMARK_DATA / "general_mc.json").read_text())}
    return prompts


def test_replay_prompts_are_none_of_the_prompts_any_evaluation_scores():
    replayed, evaluated = load_replay_prompts(), _evaluated_prompts()
    assert len(replayed) == len(set(replayed)) >= 32
    for prompt in replayed:
        closest = max(difflib.SequenceMatcher(None, prompt.lower(), e.lower()).ratio() for e in evaluated)
        assert closest < 0.75, prompt


@pytest.fixture(scope="module")
def student(tiny_model):
    torch.manual_seed(0)
    return new_lora_model(load_model(tiny_model), r=4, alpha=8, dropout=0.0)


@pytest.fixture(scope="module")
def replay(student, tiny_model):
    return ChatReplay(student, None, load_tokenizer(tiny_model), seed=1, prompts=PROMPTS, max_reply_tokens=6)


def test_the_replay_loss_is_zero_for_the_parent_and_the_plain_kl_after_a_change(student, replay):
    # A fresh LoRA adapter is the identity: the student is still the parent.
    assert replay.loss(student, None, step=0).item() == pytest.approx(0.0, abs=1e-6)
    with torch.no_grad():
        for name, param in student.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.05)
    try:
        for step in (0, 1, 2):
            rows = replay.rows_for_step(step)
            prompts = [prompt for prompt, _ in rows]
            expected = context_distillation_loss_reference(student, None, prompts, [r for _, r in rows], 1.0,
                                                           student_prefixes=prompts)
            got = replay.loss(student, None, step=step)
            assert got.item() > 1e-4
            assert got.item() == pytest.approx(expected.item(), rel=1e-4)
    finally:
        with torch.no_grad():
            for name, param in student.named_parameters():
                if "lora_B" in name:
                    param.zero_()


def test_each_step_replays_the_next_prompts_of_a_seeded_order(student, replay, tiny_model):
    per_step, count = replay.prompts_per_step, len(replay.rows)
    assert per_step == 2 and count >= 3
    seen = [str(row) for step in range(count) for row in replay.rows_for_step(step)]
    assert all(seen.count(str(row)) == per_step for row in replay.rows)   # evenly, none left out
    assert replay.rows_for_step(len(replay.rows)) == replay.rows_for_step(0)  # wraps around
    again = ChatReplay(student, None, load_tokenizer(tiny_model), seed=1, prompts=PROMPTS, max_reply_tokens=6)
    assert [again.rows_for_step(s) for s in range(4)] == [replay.rows_for_step(s) for s in range(4)]


def test_training_with_replay_records_it_and_resumes_to_the_same_weights(tiny_model, tmp_path):
    config = TrainConfig(**{**FAST, "epochs": 2, "checkpoint_every": 2, "replay_weight": 1.0})
    full = train(DOCS[:3], out_dir=str(tmp_path / "full"), config=config, base_model=tiny_model)
    metrics = read_meta(full.artifact_dir)["metrics"]
    assert metrics["replay_kl_first"] == pytest.approx(0.0, abs=1e-6)   # the first step starts at the parent
    assert metrics["replay_kl_final"] > 0
    plain = train(DOCS[:3], out_dir=str(tmp_path / "plain"), config=TrainConfig(epochs=2, **FAST),
                  base_model=tiny_model)
    assert full.losses != plain.losses   # the replay term is part of the optimised loss

    checkpoints = tmp_path / "ckpt"

    def die_after_four(progress):
        if progress.stage == "training" and progress.documents_done == 4:
            raise RuntimeError("simulated crash")

    with pytest.raises(RuntimeError, match="simulated crash"):
        train(DOCS[:3], out_dir=str(tmp_path / "killed"), config=config, base_model=tiny_model,
              progress=die_after_four, checkpoint_dir=str(checkpoints))
    resumed = train(DOCS[:3], out_dir=str(tmp_path / "resumed"), config=config, base_model=tiny_model,
                    checkpoint_dir=str(checkpoints))
    assert resumed.losses == full.losses
    a, b = load_artifact(full.artifact_dir), load_artifact(resumed.artifact_dir)
    for (name, p), (_, q) in zip(a.named_parameters(), b.named_parameters()):
        assert torch.equal(p, q), name


def test_replay_under_full_fine_tuning_reads_a_frozen_copy_of_the_parent(tiny_model, tmp_path):
    # sft needs no teacher of its own; with replay on, the trainer keeps a frozen copy for it.
    config = TrainConfig(**{**FAST, "method": "sft", "epochs": 1, "full_finetune": True, "replay_weight": 0.5})
    result = train(DOCS[:2], out_dir=str(tmp_path / "v1"), config=config, base_model=tiny_model)
    assert read_meta(result.artifact_dir)["metrics"]["replay_kl_final"] > 0


def test_a_prompt_that_leaves_no_room_in_the_context_is_not_replayed(student, replay):
    longest = max(len(prompt) for prompt, _ in replay.rows)
    assert replay.loss(student, None, step=0, max_context=longest + 8) is not None
    assert replay.loss(student, None, step=0, max_context=1) is None    # nothing fits: no replay term


def test_the_replay_weight_is_an_option_with_bounds_in_the_api():
    from pydantic import ValidationError

    from service.schemas import Hyperparameters

    assert Hyperparameters.model_validate({"replay_weight": 2}).replay_weight == 2
    for bad in (-1, 11, "heavy"):
        with pytest.raises(ValidationError):
            Hyperparameters.model_validate({"replay_weight": bad})
