"""The objective registry, the public per-position KL, and the DiSC variants' exactness."""

from __future__ import annotations

import math
import random
import subprocess
import sys

import pytest
import torch

from disc_engine.loss import (
    context_distillation_loss,
    context_distillation_loss_reference,
    disc_loss,
    disc_loss_reference,
    per_position_kl,
)
from disc_engine.objectives import OBJECTIVES, RunContext, anyorder_splits, get_objective
from disc_engine.options import TrainConfig
from disc_engine.splitting import prepare_document
from tests.engine.conftest import TEXT
from tests.engine.test_loss import _assert_close_rel, _lora, _value_and_grads

# --- per_position_kl on hand-made logits -------------------------------------------------------

def test_kl_of_identical_distributions_is_zero():
    logits = torch.randn(5, 11)
    assert torch.allclose(per_position_kl(logits, logits.clone()), torch.zeros(5), atol=1e-6)


def test_kl_matches_the_formula_on_a_two_token_vocabulary():
    teacher = torch.log(torch.tensor([[0.9, 0.1], [0.5, 0.5]]))
    student = torch.log(torch.tensor([[0.5, 0.5], [0.9, 0.1]]))
    expected = torch.tensor([0.9 * math.log(0.9 / 0.5) + 0.1 * math.log(0.1 / 0.5),
                             0.5 * math.log(0.5 / 0.9) + 0.5 * math.log(0.5 / 0.1)])
    assert torch.allclose(per_position_kl(teacher, student), expected, atol=1e-6)


def test_kl_is_forward_kl_not_symmetric():
    teacher, student = torch.randn(3, 7), torch.randn(3, 7)
    assert not torch.allclose(per_position_kl(teacher, student), per_position_kl(student, teacher))


def test_kl_is_invariant_to_shifting_logits_and_chunking_changes_nothing():
    teacher, student = torch.randn(10, 13), torch.randn(10, 13)
    plain = per_position_kl(teacher, student, 2.0)
    assert torch.allclose(per_position_kl(teacher + 3.0, student - 1.0, 2.0), plain, atol=1e-5)
    assert torch.allclose(per_position_kl(teacher, student, 2.0, chunk_size=3), plain, atol=1e-6)
    assert (plain >= 0).all()


def test_kl_upcasts_and_sends_gradients_to_the_student_only():
    teacher = torch.randn(4, 9).to(torch.bfloat16)
    student = torch.randn(4, 9, requires_grad=True)
    kl = per_position_kl(teacher, student.to(torch.bfloat16))
    assert kl.dtype == torch.float32
    kl.sum().backward()
    assert student.grad is not None and student.grad.abs().sum() > 0


def test_kl_refuses_mismatched_shapes():
    with pytest.raises(ValueError, match="one shape"):
        per_position_kl(torch.randn(3, 5), torch.randn(3, 6))


# --- the registry -------------------------------------------------------------------------------

def test_every_registered_objective_is_a_method_everywhere():
    from disc_cli.main import build_parser
    from service.schemas import UpdateCreate

    for name in OBJECTIVES:
        assert TrainConfig(method=name).objective is OBJECTIVES[name]
        UpdateCreate.model_validate({"documents": [{"text": "A. B."}], "method": name})
    train_parser = build_parser()._subparsers._group_actions[0].choices["train"]
    method_flag = next(a for a in train_parser._actions if "--method" in a.option_strings)
    assert tuple(method_flag.choices) == tuple(OBJECTIVES)
    with pytest.raises(ValueError, match="unknown method 'dpo'"):
        get_objective("dpo")


def test_importing_options_and_objectives_loads_no_torch():
    code = ("import sys, disc_engine.options, disc_engine.objectives; "
            "assert 'torch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


# --- the DiSC variants are exact ---------------------------------------------------------------

def test_context_distillation_equals_its_per_split_loop(base, sentences):
    student = _lora(base)
    contexts = [[t for j, s in enumerate(sentences) if j != i for t in s] for i in (0, 2, 5)]
    suffixes = [sentences[i] for i in (0, 2, 5)]
    for max_context in (None, 40):
        fast, fast_grads = _value_and_grads(lambda m=max_context: context_distillation_loss(
            student, None, contexts, suffixes, 2.0, max_context=m), student)
        ref, ref_grads = _value_and_grads(lambda m=max_context: context_distillation_loss_reference(
            student, None, contexts, suffixes, 2.0, max_context=m), student)
        assert fast > 0
        _assert_close_rel(fast, ref)
        for name in ref_grads:
            _assert_close_rel(fast_grads[name], ref_grads[name])


def test_context_distillation_with_prefix_contexts_is_disc(base, sentences):
    student = _lora(base)
    splits = [2, 4, len(sentences) - 1]
    document = [t for s in sentences for t in s]
    offsets = [sum(len(s) for s in sentences[:i]) for i in splits]
    general = context_distillation_loss(student, None, [document[:o] for o in offsets],
                                        [sentences[i] for i in splits])
    _assert_close_rel(general.detach(), disc_loss(student, None, sentences, splits).detach())


def _run(student, method, seed=0, num_splits=5):
    return RunContext(config=TrainConfig(method=method, num_splits=num_splits), model=student, teacher=None,
                      split_rng=random.Random(seed), max_context=None)


def test_shuffled_disc_is_disc_on_the_reordered_document(base, tokenizer):
    doc = prepare_document(TEXT, tokenizer)
    student = _lora(base)
    loss, reason = get_objective("disc_shuffled").document_loss(_run(student, "disc_shuffled", seed=3), doc)
    assert reason is None and loss > 0
    # Replay the same draws: the order, then the split points, then the paper's loop on that order.
    rng = random.Random(3)
    order = list(range(len(doc.sentence_ids)))
    rng.shuffle(order)
    assert order != sorted(order)
    movable = [doc.first_sentence_spaced] + doc.sentence_ids[1:]
    reordered = [doc.sentence_ids[0] if (i == 0 and p == 0) else movable[i] for p, i in enumerate(order)]
    from disc_engine.splitting import choose_split_indices
    splits = choose_split_indices(reordered, 5, rng)
    _assert_close_rel(loss.detach(), disc_loss_reference(student, None, reordered, splits).detach())


def test_anyorder_can_distil_the_first_sentence_and_matches_its_loop(base, tokenizer):
    doc = prepare_document(TEXT, tokenizer)
    student = _lora(base)
    run = _run(student, "disc_anyorder", num_splits="all")
    loss, reason = get_objective("disc_anyorder").document_loss(run, doc)
    movable = [doc.first_sentence_spaced] + doc.sentence_ids[1:]
    chosen = anyorder_splits(movable, "all", random.Random(0))
    assert reason is None and 0 in chosen
    contexts = [[t for j, s in enumerate(movable) if j != i for t in s] for i in chosen]
    reference = context_distillation_loss_reference(student, None, contexts, [movable[i] for i in chosen])
    _assert_close_rel(loss.detach(), reference.detach())


def test_variants_fall_back_to_disc_for_token_chunked_documents(base, tokenizer):
    doc = prepare_document("word " * 120, tokenizer)   # one sentence: cut at token level
    assert doc.first_sentence_spaced is None and len(doc.sentence_ids) > 1
    student = _lora(base)
    expected, _ = get_objective("disc").document_loss(_run(student, "disc"), doc)
    for name in ("disc_shuffled", "disc_anyorder"):
        loss, _ = get_objective(name).document_loss(_run(student, name), doc)
        _assert_close_rel(loss.detach(), expected.detach())


def test_prompted_context_distillation_distils_every_reply_token_and_matches_its_loop(base, sentences):
    student = _lora(base)
    chosen = (0, 3, 5)
    document = [t for s in sentences for t in s]
    contexts = [document + sentences[1] for _ in chosen]        # the document, then a "question"
    prompts = [sentences[1] for _ in chosen]                       # the question alone
    replies = [sentences[i] for i in chosen]
    for max_context in (None, 60):
        fast, fast_grads = _value_and_grads(lambda m=max_context: context_distillation_loss(
            student, None, contexts, replies, 2.0, max_context=m, student_prefixes=prompts), student)
        ref, ref_grads = _value_and_grads(lambda m=max_context: context_distillation_loss_reference(
            student, None, contexts, replies, 2.0, max_context=m, student_prefixes=prompts), student)
        assert fast > 0
        # The loss is ~1e-3 here (a near-teacher student), so fp32 summation noise is relatively larger.
        _assert_close_rel(fast, ref, rtol=1e-3)
        for name in ref_grads:
            _assert_close_rel(fast_grads[name], ref_grads[name], rtol=1e-3)
    # The first reply token counts: with prompts, the loss differs from the unprompted one.
    unprompted = context_distillation_loss(student, None, contexts, replies, 2.0)
    prompted = context_distillation_loss(student, None, contexts, replies, 2.0, student_prefixes=prompts)
    assert not torch.isclose(unprompted.detach(), prompted.detach())
    with pytest.raises(ValueError, match="student prefix"):
        context_distillation_loss(student, None, contexts, replies, student_prefixes=prompts[:1])


def _chat_run(student, tokenizer, method, seed=0, num_splits=5):
    run = _run(student, method, seed, num_splits)
    run.tokenizer = tokenizer
    return run


def test_recall_views_are_chat_turns_about_a_named_thing(base, tokenizer):
    from disc_engine.evaluation._common import chat_prompt_ids
    from disc_engine.objectives import recall_views

    doc = prepare_document(TEXT, tokenizer)
    contexts, prompts, replies = recall_views(_chat_run(_lora(base), tokenizer, "disc_recall", num_splits="all"), doc)
    # Every sentence, the first included, gives a reply: the sentence from a name on, or whole.
    assert len(replies) == len(doc.sentences)
    texts = [tokenizer.decode(r) for r in replies]
    assert all(s.endswith(t) for s, t in zip(doc.sentences, texts))
    assert texts[3] == doc.sentences[3]                  # it names one thing only: the whole sentence
    question = tokenizer.decode(prompts[3])
    assert "Engineer Mara Quell" in question and "<|im_start|>user" in question
    # The teacher's turn is the whole document, then the same question; the student's is the question.
    asked = question.split("<|im_start|>user\n", 1)[1]
    teacher_turn = tokenizer.decode(contexts[3])
    assert teacher_turn.endswith(asked) and "Varnholt harbour bridge" not in asked
    assert teacher_turn.count("Varnholt harbour bridge") == 1
    assert prompts[3] == chat_prompt_ids(tokenizer, asked.split("<|im_end|>")[0])


def test_disc_recall_is_disc_plus_its_recall_views_loss(base, tokenizer):
    from disc_engine.objectives import recall_views
    from disc_engine.splitting import choose_split_indices

    doc = prepare_document(TEXT, tokenizer)
    student = _lora(base)
    loss, reason = get_objective("disc_recall").document_loss(_chat_run(student, tokenizer, "disc_recall", seed=5),
                                                               doc)
    assert reason is None
    # Replay the same draws: the paper's split points, then the views.
    replay = _chat_run(student, tokenizer, "disc_recall", seed=5)
    splits = choose_split_indices(doc.sentence_ids, 5, replay.split_rng)
    contexts, prompts, replies = recall_views(replay, doc)
    paper = disc_loss_reference(student, None, doc.sentence_ids, splits)
    recall = context_distillation_loss_reference(student, None, contexts, replies, student_prefixes=prompts)
    assert paper > 0 and recall > 0
    _assert_close_rel(loss.detach(), (paper + recall).detach(), rtol=1e-3)


def test_recall_falls_back_to_disc_without_a_chat_template(base, tokenizer):
    doc = prepare_document(TEXT, tokenizer)
    student = _lora(base)
    expected, _ = get_objective("disc").document_loss(_run(student, "disc"), doc)
    loss, _ = get_objective("disc_recall").document_loss(_run(student, "disc_recall"), doc)  # no tokenizer
    _assert_close_rel(loss.detach(), expected.detach())
