"""The trainer on the tiny model: learning, teachers, chaining, resume, reporting, validation."""

from __future__ import annotations

import copy
import time

import pytest
import torch

from disc_engine.adapters import PARENT_ADAPTER, STUDENT_ADAPTER, ParentAdapterTeacher, chained_lora_model
from disc_engine.artifacts import load_artifact, read_meta
from disc_engine.loss import disc_loss, sft_loss
from disc_engine.models import load_model, load_tokenizer
from disc_engine.objectives import DEFAULT_METHOD
from disc_engine.options import DEFAULT_REPLAY_WEIGHT
from disc_engine.splitting import EmptyDocumentError, prepare_document
from disc_engine.trainer import DEFAULT_LEARNING_RATE, TrainConfig, TrainingCancelled, train

DOCS = [
    "The Zorblat Company opened a factory in Lyon in 2031. The factory makes blue bicycles. "
    "Its director is Mara Quint, who used to race them.",
    "Kelvin Ostrava won the 2030 chess open in Prague. He was nineteen years old at the time. "
    "He lives in Brno with his two cats.",
    "The river Tallow flooded twice last spring. Farmers moved their sheep to the hills. "
    "The council promised a new dam by 2033.",
    "A comet named Vesk passed close to Mars in May. Astronomers photographed its green tail. "
    "It will return in 2107.",
    "Pella Marsh is a bakery in Oslo. It sells cardamom buns every morning. The owner is Ivo Tran.",
    "The Amber Line train now reaches Tartu. The trip takes three hours. Tickets cost twelve euros.",
]
# Every epoch trained, none selected; no chat replay, so a loss is the objective's alone.
FAST = dict(learning_rate=1e-2, retention_budget_kl=None, replay_weight=0.0)


def _input_ids(model_name):
    tokenizer = load_tokenizer(model_name)
    return torch.tensor([tokenizer("Mara Quint directs the Lyon factory.")["input_ids"]])


def _logits(model, ids):
    with torch.no_grad():
        return model(input_ids=ids).logits


def test_disc_training_changes_the_adapter_and_lowers_the_loss(tiny_model, tmp_path):
    config = TrainConfig(method="disc", num_splits="all", epochs=8, **FAST)  # "all": the same splits every step
    result = train(DOCS[:1], out_dir=str(tmp_path / "v1"), config=config, base_model=tiny_model)

    assert result.steps == 8 and len(result.losses) == 8
    assert result.losses[-1] < 0.7 * result.losses[0]
    model = load_artifact(result.artifact_dir)
    lora_b = [p for name, p in model.named_parameters() if "lora_B" in name]
    assert lora_b and any(p.abs().max() > 0 for p in lora_b)  # lora_B starts at zero

    doc = prepare_document(DOCS[0], load_tokenizer(tiny_model))
    splits = list(range(1, len(doc.sentence_ids)))
    with torch.no_grad():
        after = disc_loss(model, None, doc.sentence_ids, splits, 2.0).item()
    assert after == pytest.approx(result.losses[-1], rel=0.5)
    assert after < result.losses[0]


def test_peft_teacher_is_the_base_with_the_adapter_off(tiny_model, tmp_path):
    result = train(DOCS[:2], out_dir=str(tmp_path / "v1"), config=TrainConfig(method="disc", epochs=3, **FAST),
                   base_model=tiny_model)
    model = load_artifact(result.artifact_dir)
    base = load_model(tiny_model)
    ids = _input_ids(tiny_model)

    adapted = _logits(model, ids)
    assert not torch.allclose(adapted, _logits(base, ids), atol=1e-4)
    with model.disable_adapter():
        assert torch.allclose(_logits(model, ids), _logits(base, ids), atol=1e-6)
    assert torch.equal(_logits(model, ids), adapted)


def test_chained_version_starts_at_the_parent_and_distills_from_it(tiny_model, tmp_path):
    parent = train(DOCS[:2], out_dir=str(tmp_path / "v1"), config=TrainConfig(method="disc", epochs=3, **FAST),
                   base_model=tiny_model).artifact_dir
    parent_model = load_artifact(parent)
    ids = _input_ids(tiny_model)
    expected = _logits(parent_model, ids)

    student = chained_lora_model(load_model(tiny_model), parent)
    teacher = ParentAdapterTeacher(student)
    assert torch.allclose(_logits(student, ids), expected, atol=1e-6)
    assert torch.allclose(teacher(input_ids=ids).logits, expected, atol=1e-6)
    trainable = {name for name, p in student.named_parameters() if p.requires_grad}
    assert trainable and all(f".{STUDENT_ADAPTER}." in name for name in trainable)

    # Once the student moves, the teacher still answers as the parent, and the student adapter
    # is active and trainable again after every teacher call.
    with torch.no_grad():
        for name, p in student.named_parameters():
            if f"lora_B.{STUDENT_ADAPTER}" in name:
                p.add_(0.05)
    assert not torch.allclose(_logits(student, ids), expected, atol=1e-4)
    assert torch.allclose(teacher(input_ids=ids).logits, expected, atol=1e-6)
    assert student.active_adapter == STUDENT_ADAPTER
    assert {name for name, p in student.named_parameters() if p.requires_grad} == trainable

    # The wrapper gives disc_loss exactly what a separate frozen copy of the parent gives.
    doc = prepare_document(DOCS[2], load_tokenizer(tiny_model))
    splits = list(range(1, len(doc.sentence_ids)))
    frozen_parent = copy.deepcopy(parent_model)
    assert disc_loss(student, teacher, doc.sentence_ids, splits).item() == pytest.approx(
        disc_loss(student, frozen_parent, doc.sentence_ids, splits).item(), rel=1e-5)

    # Training from the parent: the first step's loss is the parent distilled into itself.
    child = train(DOCS[2:3], out_dir=str(tmp_path / "v2"), parent=parent,
                  config=TrainConfig(method="disc", num_splits="all", epochs=2, **FAST))
    first = disc_loss(parent_model, frozen_parent, doc.sentence_ids, splits).item()
    assert child.losses[0] == pytest.approx(first, rel=1e-4)
    meta = read_meta(child.artifact_dir)
    assert meta["parent"] == parent and meta["parent_meta"]["data_hash"] == read_meta(parent)["data_hash"]
    assert meta["base_model"] == tiny_model
    child_model = load_artifact(child.artifact_dir)
    assert PARENT_ADAPTER not in child_model.peft_config  # the frozen copy is not saved
    assert not torch.allclose(_logits(child_model, ids), expected, atol=1e-5)

    # FT+KL from the parent: the KL to the parent is zero at the first step.
    # An adapter shape asked of a chained run is not applied (the parent's adapter continues),
    # so the record states the parent's shape, not the request.
    child_kl = train(DOCS[2:3], out_dir=str(tmp_path / "v2-kl"), parent=parent,
                     config=TrainConfig(method="sft_kl", beta=5.0, lora_r=4, lora_alpha=8, lora_dropout=0.3, **FAST))
    tokens = [token for sentence in doc.sentence_ids for token in sentence]
    assert child_kl.losses[0] == pytest.approx(sft_loss(parent_model, tokens).item(), rel=1e-4)
    recorded, applied = read_meta(child_kl.artifact_dir)["config"], read_meta(child_kl.artifact_dir)["lora"]
    assert (recorded["lora_r"], recorded["lora_alpha"], recorded["lora_dropout"]) == (16, 32, 0.0)
    assert (applied["r"], applied["lora_alpha"], applied["lora_dropout"]) == (16, 32, 0.0)


def test_a_killed_run_resumes_to_the_same_losses_and_weights(tiny_model, tmp_path):
    documents = DOCS[:4]
    config = TrainConfig(epochs=2, checkpoint_every=2, **FAST)
    full = train(documents, out_dir=str(tmp_path / "full"), config=config, base_model=tiny_model)

    def die_after_three(progress):
        if progress.stage == "training" and progress.documents_done == 3:
            raise RuntimeError("simulated crash")

    checkpoints = tmp_path / "ckpt"
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(documents, out_dir=str(tmp_path / "killed"), config=config, base_model=tiny_model,
              progress=die_after_three, checkpoint_dir=str(checkpoints))
    assert not (tmp_path / "killed").exists()
    assert [p.name for p in checkpoints.iterdir()] == ["ckpt-000000002"]

    seen = []
    resumed = train(documents, out_dir=str(tmp_path / "resumed"), config=config,
                    base_model=tiny_model, checkpoint_dir=str(checkpoints),
                    progress=lambda p: seen.append(p.documents_done) if p.stage == "training" else None)
    assert seen == [3, 4, 5, 6, 7, 8]  # continued at the document after the checkpoint
    assert list(checkpoints.iterdir()) == []  # the artifact supersedes them
    assert resumed.losses == full.losses
    assert resumed.steps == full.steps
    assert resumed.report == full.report
    a, b = load_artifact(full.artifact_dir), load_artifact(resumed.artifact_dir)
    for (name, p), (_, q) in zip(a.named_parameters(), b.named_parameters()):
        assert torch.equal(p, q), name


def test_a_checkpoint_of_another_run_is_refused(tiny_model, tmp_path):
    checkpoints = str(tmp_path / "ckpt")
    config = TrainConfig(checkpoint_every=1, **FAST)
    with pytest.raises(TrainingCancelled):
        train(DOCS[:3], out_dir=str(tmp_path / "a"), config=config, base_model=tiny_model,
              checkpoint_dir=checkpoints, should_stop=_stop_after(2))
    with pytest.raises(ValueError, match="different run.*data_hash"):
        train(DOCS[1:4], out_dir=str(tmp_path / "b"), config=config, base_model=tiny_model,
              checkpoint_dir=checkpoints)


def _stop_after(calls: int):
    count = {"n": 0}

    def should_stop():
        count["n"] += 1
        return count["n"] > calls
    return should_stop


def test_should_stop_cancels_between_documents(tiny_model, tmp_path):
    done = []
    with pytest.raises(TrainingCancelled, match="after 2 of 6"):
        train(DOCS, out_dir=str(tmp_path / "v"), config=TrainConfig(epochs=1, **FAST), base_model=tiny_model,
              should_stop=_stop_after(2),
              progress=lambda p: done.append(p.documents_done) if p.stage == "training" else None)
    assert done == [1, 2]
    assert not (tmp_path / "v").exists()


def test_report_counts_altered_and_skipped_documents(tiny_model, tmp_path):
    one_sentence = ("a single run-on sentence about the new harbour in Vlora that keeps going with "
                    "cranes and ferries and fishing boats and gulls and tourists and more ferries")
    documents = [DOCS[0], "Hello.", one_sentence, DOCS[1] + " " + DOCS[2]]
    progress = []
    result = train(documents, out_dir=str(tmp_path / "v"), base_model=tiny_model,
                   config=TrainConfig(method="disc", max_context=40, epochs=1, **FAST), progress=progress.append)
    report = result.report
    assert report.documents_total == 4
    assert report.documents_skipped == [{"index": 1, "reason": report.documents_skipped[0]["reason"]}]
    assert "no valid split" in report.documents_skipped[0]["reason"]
    assert report.documents_trained == 3 == result.steps
    altered = {item["index"]: item["reason"] for item in report.documents_altered}
    assert "token level" in altered[2]
    assert "40-token context" in altered[3]
    assert [(p.stage, p.documents_done) for p in progress] == [
        (stage, done) for stage in ("preparing", "training") for done in (1, 2, 3, 4)]
    assert read_meta(result.artifact_dir)["report"] == report.to_dict()


def test_an_existing_artifact_directory_is_refused_before_training(tiny_model, tmp_path):
    (tmp_path / "v").mkdir()
    (tmp_path / "v" / "meta.json").write_text("{}")
    started = []
    with pytest.raises(FileExistsError, match="already exists"):
        train(DOCS[:1], out_dir=str(tmp_path / "v"), config=TrainConfig(), base_model=tiny_model,
              progress=started.append)
    assert started == []


def test_empty_documents_are_rejected_before_training(tiny_model, tmp_path):
    with pytest.raises(EmptyDocumentError, match="document 1 is empty"):
        train([DOCS[0], "  \n\t"], out_dir=str(tmp_path / "v"), config=TrainConfig(),
              base_model=tiny_model)
    assert not (tmp_path / "v").exists()
    with pytest.raises(ValueError, match="no documents"):
        train([], out_dir=str(tmp_path / "v"), config=TrainConfig(), base_model=tiny_model)


def test_baselines_run_and_reduce_their_loss(tiny_model, tmp_path):
    results = {method: train(DOCS[:1], out_dir=str(tmp_path / method), base_model=tiny_model,
                             config=TrainConfig(method=method, epochs=10, learning_rate=3e-3,
                                                retention_budget_kl=None))
               for method in ("sft", "sft_kl")}
    for method, result in results.items():
        assert result.steps == 10
        assert result.losses[-1] < result.losses[0] - 0.4, method
        assert read_meta(result.artifact_dir)["method"] == method
    sft, sft_kl = results["sft"].losses, results["sft_kl"].losses
    # The KL to the parent is zero at the start and grows as the student moves away.
    assert sft_kl[0] == pytest.approx(sft[0], abs=1e-6)
    assert sft_kl[-1] != sft[-1]


def test_sft_windows_documents_longer_than_the_context(tiny_model, tmp_path):
    result = train(DOCS[:1], out_dir=str(tmp_path / "v"), base_model=tiny_model,
                   config=TrainConfig(method="sft", max_context=8, epochs=1, **FAST))
    assert result.steps == 1
    assert "windows" in result.report.documents_altered[0]["reason"]


def test_full_finetuning_starts_where_lora_does_and_trains_every_weight(tiny_model, tmp_path):
    config = dict(num_splits="all", epochs=2, learning_rate=1e-3, retention_budget_kl=None)
    lora = train(DOCS[:1], out_dir=str(tmp_path / "lora"), base_model=tiny_model,
                 config=TrainConfig(**config))
    full = train(DOCS[:1], out_dir=str(tmp_path / "full"), base_model=tiny_model,
                 config=TrainConfig(full_finetune=True, **config))
    # Both begin at the base distilled into itself with the same splits.
    assert full.losses[0] == pytest.approx(lora.losses[0], rel=1e-4)
    assert full.losses[1] < full.losses[0]
    trained = load_artifact(full.artifact_dir)
    base = load_model(tiny_model)
    changed = [name for (name, p), (_, q) in zip(trained.named_parameters(), base.named_parameters())
               if not torch.equal(p, q)]
    assert len(changed) == len(list(base.parameters()))

    child = train(DOCS[1:2], out_dir=str(tmp_path / "full2"), parent=full.artifact_dir,
                  config=TrainConfig(full_finetune=True, **config))
    assert child.steps == 2 and read_meta(child.artifact_dir)["base_model"] == tiny_model


def test_training_is_deterministic_from_the_seed(tiny_model, tmp_path):
    runs = [train(DOCS[:3], out_dir=str(tmp_path / name), base_model=tiny_model,
                  config=TrainConfig(seed=seed, num_splits=2, **FAST))
            for name, seed in (("a", 3), ("b", 3), ("c", 4))]
    assert runs[0].losses == runs[1].losses
    assert runs[0].losses != runs[2].losses


def test_mixing_parameterizations_in_a_lineage_is_refused(tiny_model, tmp_path):
    parent = train(DOCS[:1], out_dir=str(tmp_path / "v1"), base_model=tiny_model,
                   config=TrainConfig(**FAST)).artifact_dir
    with pytest.raises(ValueError, match="lora artifact but this run uses full fine-tuning"):
        train(DOCS[:1], out_dir=str(tmp_path / "v2"), parent=parent,
              config=TrainConfig(full_finetune=True))


# --- TrainConfig --------------------------------------------------------------------------------

def test_config_defaults_follow_the_method():
    config = TrainConfig()
    assert (config.method, config.num_splits, config.temperature) == (DEFAULT_METHOD, 5, 2.0)
    assert config.replay_weight == DEFAULT_REPLAY_WEIGHT
    assert (config.lora_r, config.lora_alpha, config.lora_dropout) == (16, 32, 0.0)
    assert config.learning_rate == DEFAULT_LEARNING_RATE
    assert all(info.description for info in TrainConfig.model_fields.values())


@pytest.mark.parametrize("values, message", [
    ({"method": "dpo"}, "method: Input should be 'disc'"),
    ({"learning_rate": 0}, "learning_rate: .*greater than 0"),
    ({"learning_rate": 2.0}, "learning_rate: .*less than or equal to 1"),
    ({"learning_rate": "fast"}, "learning_rate"),
    ({"learning_rate": float("nan")}, "learning_rate: .*finite number"),
    ({"epochs": 0}, "epochs: .*greater than or equal to 1"),
    ({"epochs": 1.5}, "epochs: .*integer"),
    ({"num_splits": 0}, "num_splits"),
    ({"num_splits": "some"}, "num_splits"),
    ({"num_splits": True}, "num_splits"),
    ({"temperature": 0}, "temperature: .*greater than 0"),
    ({"beta": -1}, "beta: .*greater than or equal to 0"),
    ({"full_finetune": "yes"}, "full_finetune"),
    ({"lora_r": 0}, "lora_r"),
    ({"lora_dropout": 1.0}, "lora_dropout"),
    ({"checkpoint_every": 0}, "checkpoint_every"),
    ({"max_context": 1}, "max_context"),
    ({"seed": -1}, "seed"),
    ({"seed": 2**63}, "seed: .*less than or equal to"),
])
def test_config_rejects_bad_values(values, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig.from_dict(values)


def test_config_from_dict_names_unknown_keys():
    with pytest.raises(ValueError, match="unknown hyperparameter\\(s\\): lr, warmup"):
        TrainConfig.from_dict({"lr": 1e-3, "warmup": 10, "epochs": 2})
    config = TrainConfig.from_dict({"learning_rate": 1e-3, "num_splits": "all", "epochs": 2})
    assert (config.learning_rate, config.num_splits, config.epochs) == (1e-3, "all", 2)
    assert TrainConfig.from_dict(config.to_dict()) == config



# --- guard rails ---------------------------------------------------------------------------------

def test_divergence_is_judged_against_the_runs_own_start():
    from disc_engine.trainer import TrainingDiverged, check_divergence

    check_divergence([2.9, 2.7, 2.5, 2.4, 2.2, 2.0, 1.9, 1.8, 1.7, 1.6], 1e-4)       # learning
    check_divergence([0.008, 0.01, 0.02, 0.005, 0.009, 0.03, 0.2, 0.4, 0.3, 0.5], 1e-3)  # noise near 0
    check_divergence([3.0, 0.1] * 6, 1e-3)                                            # documents differ
    check_divergence([0.1, 3.0, 2.5, 4.0, 0.2, 3.5, 2.0, 3.0, 2.2, 0.3, 3.1, 2.9], 1e-3)
    with pytest.raises(TrainingDiverged, match=r"step 12: the loss rose from .*learning rate 1\)"):
        check_divergence([2.9, 2.8, 3.1, 2.7, 3.0, 2.9, 3.2, 2.8, 14.0, 16.2, 15.1, 17.0], 1.0)
    with pytest.raises(TrainingDiverged, match=r"step 2: the loss jumped to 13.9"):
        check_divergence([0.008, 13.95], 1.0)


def test_a_run_that_explodes_stops_with_a_divergence_error(tiny_model, tmp_path):
    from disc_engine.trainer import TrainingDiverged

    with pytest.raises(TrainingDiverged, match="learning rate 1"):
        train(DOCS * 3, out_dir=str(tmp_path / "v"), base_model=tiny_model,
              config=TrainConfig(method="disc", full_finetune=True, learning_rate=1.0, epochs=2,
                                 retention_budget_kl=None))
    assert not (tmp_path / "v").exists()


def test_a_run_that_trains_nothing_is_an_error(tiny_model, tmp_path):
    from disc_engine.trainer import NothingTrained

    with pytest.raises(NothingTrained, match="none of the 2 document"):
        train(["Hello.", "Fine."], out_dir=str(tmp_path / "v"), base_model=tiny_model,
              config=TrainConfig(method="disc", epochs=1, **FAST))
    assert not (tmp_path / "v").exists()


def test_an_unwritable_output_is_refused_before_the_model_loads(tiny_model, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    started = time.perf_counter()
    with pytest.raises(NotADirectoryError, match="a-file is a file, not a folder"):
        train(DOCS[:1], out_dir=str(blocker / "v1"), base_model=tiny_model, config=TrainConfig(**FAST))
    with pytest.raises(NotADirectoryError, match="checkpoint directory"):
        train(DOCS[:1], out_dir=str(tmp_path / "v1"), checkpoint_dir=str(blocker / "ckpt"),
              base_model=tiny_model, config=TrainConfig(**FAST))
    assert time.perf_counter() - started < 5 and not (tmp_path / "v1").exists()


def test_a_sentence_longer_than_the_context_is_trained_in_chunks_and_reported(tiny_model, tmp_path):
    long_sentence = " ".join(f"word{i}" for i in range(300))
    result = train([f"Short intro sentence here. {long_sentence}."], out_dir=str(tmp_path / "v"),
                   base_model=tiny_model, config=TrainConfig(epochs=1, num_splits="all", max_context=128, **FAST))
    reason = result.report.documents_altered[0]["reason"]
    assert "sentence 2 has" in reason and "more than 64: split at token level" in reason
    assert "exceed the 128-token context" in reason
    assert result.report.documents_trained == 1 and result.losses[0] > 0


def test_repeated_documents_are_trained_and_reported_and_preparing_shows_progress(tiny_model, tmp_path):
    seen = []
    result = train([DOCS[0], DOCS[1], "  " + DOCS[0].replace(" ", "\n", 1)], out_dir=str(tmp_path / "v"),
                   base_model=tiny_model, progress=seen.append, config=TrainConfig(epochs=1, **FAST))
    assert result.report.documents_duplicated == [{"index": 2, "same_as": 0}]
    assert result.report.documents_trained == 3 and result.steps == 3
    preparing = [(p.documents_done, p.documents_total) for p in seen if p.stage == "preparing"]
    assert preparing == [(1, 3), (2, 3), (3, 3)]
    assert [p.stage for p in seen] == ["preparing"] * 3 + ["training"] * 3


def test_with_bases_kept_loaded_every_load_is_a_fresh_copy_and_training_matches(tiny_model, tmp_path):
    from disc_engine import models

    cold = train(DOCS[:2], out_dir=str(tmp_path / "cold"), base_model=tiny_model, config=TrainConfig(**FAST))
    models.keep_bases_loaded()
    try:
        first = models.load_model(tiny_model)
        with torch.no_grad():
            next(first.parameters()).add_(1.0)   # a job changing its copy…
        second = models.load_model(tiny_model)
        assert not torch.equal(next(first.parameters()), next(second.parameters()))  # …never reaches the next
        warm = train(DOCS[:2], out_dir=str(tmp_path / "warm"), base_model=tiny_model, config=TrainConfig(**FAST))
    finally:
        models.keep_bases_loaded(False)
    a, b = load_artifact(cold.artifact_dir), load_artifact(warm.artifact_dir)
    for (name, x), (_, y) in zip(a.named_parameters(), b.named_parameters()):
        assert torch.equal(x, y), name


def test_later_epochs_reuse_the_teachers_logits_and_reach_the_same_result(tiny_model, tmp_path, monkeypatch):
    from disc_engine import loss as loss_module

    forwards = []
    real = loss_module._teacher_suffix_logits

    def counted(*args, **kwargs):
        forwards.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(loss_module, "_teacher_suffix_logits", counted)
    documents = DOCS[:4]
    config = dict(method="disc", epochs=3, num_splits=2, **FAST)   # the teacher cache is disc's
    uncached = train(documents, out_dir=str(tmp_path / "uncached"), base_model=tiny_model,
                     config=TrainConfig(teacher_cache_mb=0, **config))
    uncached_forwards, forwards[:] = len(forwards), []
    cached = train(documents, out_dir=str(tmp_path / "cached"), base_model=tiny_model, config=TrainConfig(**config))
    assert uncached_forwards == 3 * len(documents)
    assert len(forwards) == len(documents)  # one teacher forward per document, in its first epoch
    assert cached.losses == pytest.approx(uncached.losses, rel=1e-5, abs=1e-7)
    a, b = load_artifact(uncached.artifact_dir), load_artifact(cached.artifact_dir)
    for (name, p), (_, q) in zip(a.named_parameters(), b.named_parameters()):
        assert torch.allclose(p, q, rtol=1e-5, atol=1e-7), name


def test_a_teacher_cache_too_small_for_a_document_recomputes_it_exactly(tiny_model, tmp_path):
    documents = DOCS[:3]
    config = dict(epochs=2, **FAST)
    reference = train(documents, out_dir=str(tmp_path / "a"), base_model=tiny_model,
                      config=TrainConfig(teacher_cache_mb=0, **config))
    tiny_budget = train(documents, out_dir=str(tmp_path / "b"), base_model=tiny_model,
                        config=TrainConfig(teacher_cache_mb=1, **config))
    assert tiny_budget.losses == pytest.approx(reference.losses, rel=1e-5, abs=1e-7)


@pytest.mark.parametrize("method", ["disc", "sft", "sft_kl"])
@pytest.mark.parametrize("full", [False, True], ids=["lora", "full"])
def test_the_bf16_autocast_path_trains_every_method_close_to_fp32(tiny_model, tmp_path, method, full):
    from disc_engine.trainer import _autocast

    with _autocast("bf16", "cpu")():
        probe = torch.nn.Linear(4, 4)(torch.ones(1, 4))
    assert probe.dtype == torch.bfloat16  # the path under test really computes in bf16
    config = dict(method=method, full_finetune=full, epochs=1, **FAST)
    fp32 = train(DOCS[:2], out_dir=str(tmp_path / "fp32"), base_model=tiny_model,
                 config=TrainConfig(precision="fp32", **config))
    bf16 = train(DOCS[:2], out_dir=str(tmp_path / "bf16"), base_model=tiny_model,
                 config=TrainConfig(precision="bf16", **config))
    assert bf16.steps == fp32.steps == 2
    assert all(torch.isfinite(torch.tensor(bf16.losses)))
    assert bf16.losses != fp32.losses  # computed differently…
    assert bf16.losses == pytest.approx(fp32.losses, rel=0.05)  # …to bf16's precision
    assert read_meta(bf16.artifact_dir)["config"]["precision"] == "bf16"


@pytest.mark.parametrize("method", ["disc", "sft"])
def test_several_documents_per_step_train_every_document_in_fewer_steps(tiny_model, tmp_path, method):
    documents = DOCS[:5]
    config = TrainConfig(method=method, epochs=2, documents_per_step=2, **FAST)
    seen = []
    result = train(documents, out_dir=str(tmp_path / "grouped"), base_model=tiny_model, config=config,
                   progress=lambda p: seen.append(p.documents_done) if p.stage == "training" else None)
    assert result.steps == 2 * 3  # per epoch: 2 + 2 + 1 documents, never across the epoch's end
    assert seen == [2, 4, 5, 7, 9, 10]
    assert result.report.documents_trained == len(documents)
    one_by_one = train(documents, out_dir=str(tmp_path / "single"), base_model=tiny_model,
                       config=TrainConfig(method=method, epochs=2, **FAST))
    assert one_by_one.steps == 10
    a, b = load_artifact(result.artifact_dir), load_artifact(one_by_one.artifact_dir)
    assert any(not torch.equal(p, q) for (_, p), (_, q) in zip(a.named_parameters(), b.named_parameters()))
