"""DiSC and baseline losses on the tiny model (fp32), and once on the real default model.

The fast ``disc_loss`` is held to the plain per-split loop ``disc_loss_reference`` in value and
gradient, for LoRA and for full fine-tuning.
"""

from __future__ import annotations

import copy
import random

import pytest
import torch
import torch.nn.functional as F
from peft import LoraConfig, get_peft_model

from disc_engine.loss import disc_loss, disc_loss_batch, disc_loss_reference, sft_kl_loss, sft_loss
from disc_engine.models import load_model, load_tokenizer
from disc_engine.splitting import choose_split_indices, prepare_document
from tests.engine.conftest import TEXT

RTOL = 1e-4

def _lora(base, *, zero_init: bool = False):
    """A LoRA student on a private copy of ``base``; random B so the adapter changes outputs."""
    config = LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", lora_dropout=0.0,
                        init_lora_weights=zero_init)
    torch.manual_seed(0)
    model = get_peft_model(copy.deepcopy(base), config)
    if not zero_init:
        with torch.no_grad():
            for name, param in model.named_parameters():
                if "lora_B" in name:
                    param.mul_(0.05)  # keep the student near the teacher, as after real training
    return model


def _full_ft_student(base, scale: float = 0.02):
    """A fully trainable copy of ``base`` whose weights have moved away from it."""
    student = copy.deepcopy(base).train()
    torch.manual_seed(1)
    with torch.no_grad():
        for param in student.parameters():
            param.add_(scale * torch.randn_like(param) * param.std())
    return student


def _frozen(model):
    frozen = copy.deepcopy(model).eval()
    for param in frozen.parameters():
        param.requires_grad_(False)
    return frozen


def _value_and_grads(loss_fn, model):
    model.zero_grad(set_to_none=True)
    loss = loss_fn()
    loss.backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    model.zero_grad(set_to_none=True)
    return loss.detach(), grads


def _assert_close_rel(a: torch.Tensor, b: torch.Tensor, rtol: float = RTOL):
    assert torch.linalg.vector_norm(a - b) <= rtol * torch.linalg.vector_norm(b), (a, b)


def _assert_same_value_and_grads(student, teacher, sentences, splits, **kwargs):
    fast, fast_grads = _value_and_grads(
        lambda: disc_loss(student, teacher, sentences, splits, **kwargs), student)
    ref, ref_grads = _value_and_grads(
        lambda: disc_loss_reference(student, teacher, sentences, splits, **kwargs), student)
    assert fast.dtype == torch.float32 and fast.dim() == 0
    assert fast > 0
    _assert_close_rel(fast, ref)
    assert fast_grads.keys() == ref_grads.keys() and fast_grads
    for name in ref_grads:
        assert torch.linalg.vector_norm(ref_grads[name]) > 0, name
        _assert_close_rel(fast_grads[name], ref_grads[name])


# --- equality with the per-split loop ----------------------------------------------------------

def test_lora_equals_per_split_loop_in_value_and_gradient(base, sentences):
    student = _lora(base)
    splits = choose_split_indices(sentences, 5, random.Random(3))
    assert len(splits) == 5
    _assert_same_value_and_grads(student, None, sentences, splits)
    assert all("lora_" in n for n, p in student.named_parameters() if p.requires_grad)


@pytest.mark.parametrize("max_context", [None, 40], ids=["whole", "windowed"])
def test_several_documents_in_one_padded_step_equal_the_mean_of_their_losses(base, tokenizer, sentences,
                                                                             max_context):
    student = _lora(base)
    other = prepare_document("A comet passed Mars in May. Astronomers photographed its green tail. "
                             "It returns in 2107, they said.", tokenizer).sentence_ids
    documents = [(sentences, choose_split_indices(sentences, 4, random.Random(1))),
                 (other, choose_split_indices(other, 2, random.Random(2)))]
    assert len({len([t for s in d for t in s]) for d, _ in documents}) == 2  # rows of different lengths
    batched, batched_grads = _value_and_grads(
        lambda: disc_loss_batch(student, None, documents, max_context=max_context), student)
    mean, mean_grads = _value_and_grads(
        lambda: sum(disc_loss(student, None, d, i, max_context=max_context) for d, i in documents) / 2, student)
    _assert_close_rel(batched, mean, rtol=1e-5)
    for name in mean_grads:
        _assert_close_rel(batched_grads[name], mean_grads[name], rtol=1e-5)


def test_full_fine_tuning_equals_per_split_loop_in_value_and_gradient(base, sentences):
    student = _full_ft_student(base)
    splits = choose_split_indices(sentences, "all", random.Random(0))
    _assert_same_value_and_grads(student, _frozen(base), sentences, splits, temperature=1.5)


def test_positions_aligned_across_suffixes_of_different_lengths(base, sentences):
    """Regression: padding in the student batch must not shift any suffix's positions."""
    student = _lora(base)
    splits = [1, 2, 3, 4, 5, 6]
    assert len({len(sentences[i]) for i in splits}) >= 4
    with torch.no_grad():
        together = disc_loss(student, None, sentences, splits)
        alone = torch.stack([disc_loss(student, None, sentences, [i]) for i in splits]).mean()
        per_split_loop = torch.stack([disc_loss_reference(student, None, sentences, [i]) for i in splits])
    _assert_close_rel(together, alone)
    _assert_close_rel(together, per_split_loop.mean())


# --- properties --------------------------------------------------------------------------------

def test_loss_is_zero_when_teacher_and_student_read_the_same_tokens(base, sentences):
    with torch.no_grad():
        same_model = disc_loss(base, base, sentences, [0])
        identity_adapter = disc_loss(_lora(base, zero_init=True), None, sentences, [0])
        with_prefix = disc_loss(base, base, sentences, [3])
    assert abs(same_model.item()) < 1e-6
    assert abs(identity_adapter.item()) < 1e-6
    assert with_prefix > 1e-4  # the prefix changes the teacher's predictions


def test_loss_is_non_negative(base, sentences):
    student = _lora(base)
    with torch.no_grad():
        for seed in range(5):
            splits = choose_split_indices(sentences, 3, random.Random(seed))
            assert disc_loss(student, None, sentences, splits) >= 0


def test_teacher_none_equals_an_explicit_frozen_base(base, sentences):
    student = _lora(base)
    splits = [2, 4, 6]
    implicit, implicit_grads = _value_and_grads(lambda: disc_loss(student, None, sentences, splits), student)
    explicit, explicit_grads = _value_and_grads(
        lambda: disc_loss(student, _frozen(base), sentences, splits), student)
    _assert_close_rel(implicit, explicit, 1e-6)
    for name in implicit_grads:
        _assert_close_rel(implicit_grads[name], explicit_grads[name], 1e-5)
    # the adapter is back on afterwards
    ids = torch.tensor([sentences[1]])
    with torch.no_grad():
        assert not torch.allclose(student(input_ids=ids).logits, base(input_ids=ids).logits)


def test_gradients_never_reach_the_teacher(base, sentences):
    teacher = copy.deepcopy(base)  # deliberately left trainable
    student = _full_ft_student(base)
    disc_loss(student, teacher, sentences, [1, 3]).backward()
    assert all(p.grad is None for p in teacher.parameters())
    assert all(p.grad is not None for p in student.parameters() if p.requires_grad)


def test_temperature_scales_as_documented(base, sentences):
    student = _lora(base)
    with torch.no_grad():
        at_1 = disc_loss(student, None, sentences, [2, 5], temperature=1.0)
        at_3 = disc_loss(student, None, sentences, [2, 5], temperature=3.0)
        ref_3 = disc_loss_reference(student, None, sentences, [2, 5], temperature=3.0)
    _assert_close_rel(at_3, ref_3)
    assert not torch.isclose(at_1, at_3)


def test_chunked_kl_equals_unchunked(base, sentences):
    student = _lora(base)
    splits = [1, 3, 5, 6]
    one_chunk, grads_one = _value_and_grads(
        lambda: disc_loss(student, None, sentences, splits, chunk_size=100_000), student)
    tiny_chunks, grads_tiny = _value_and_grads(
        lambda: disc_loss(student, None, sentences, splits, chunk_size=3), student)
    _assert_close_rel(tiny_chunks, one_chunk, 1e-6)
    for name in grads_one:
        _assert_close_rel(grads_tiny[name], grads_one[name], 1e-5)


# --- cost: one teacher forward, logits only where needed ---------------------------------------

def test_one_teacher_and_one_student_forward_with_logits_only_at_suffix_positions(base, sentences):
    student = _full_ft_student(base)
    teacher = _frozen(base)
    calls = {"teacher": 0, "student": 0}
    head_rows = {}
    hooks = [
        teacher.model.register_forward_hook(lambda *_: calls.__setitem__("teacher", calls["teacher"] + 1)),
        student.model.register_forward_hook(lambda *_: calls.__setitem__("student", calls["student"] + 1)),
        teacher.lm_head.register_forward_hook(lambda m, args, out: head_rows.__setitem__("teacher", out.shape)),
        student.lm_head.register_forward_hook(lambda m, args, out: head_rows.__setitem__("student", out.shape)),
    ]
    splits = [1, 2, 4, 6]
    try:
        disc_loss(student, teacher, sentences, splits)
    finally:
        for hook in hooks:
            hook.remove()
    needed = sum(len(sentences[i]) - 1 for i in splits)
    vocab = base.config.vocab_size
    assert calls == {"teacher": 1, "student": 1}
    assert head_rows["teacher"].numel() == needed * vocab
    assert head_rows["student"].numel() == needed * vocab


# --- max_context -------------------------------------------------------------------------------

def test_max_context_at_least_the_document_changes_nothing(base, sentences):
    student = _lora(base)
    splits = [2, 4, 6]
    document_length = sum(len(s) for s in sentences)
    with torch.no_grad():
        plain = disc_loss(student, None, sentences, splits)
        limited = disc_loss(student, None, sentences, splits, max_context=document_length)
    assert torch.equal(plain, limited)


def test_max_context_truncates_the_teacher_prefix_from_the_left(base, sentences):
    student = _full_ft_student(base)
    teacher = _frozen(base)
    splits = [1, 3, 5, 6]
    limit = len(sentences[0]) + len(sentences[1]) + len(sentences[2])  # split 1 fits, later ones do not
    forwards = []
    hook = teacher.model.register_forward_hook(
        lambda m, args, kwargs, out: forwards.append(kwargs["input_ids"].shape[1]), with_kwargs=True)
    try:
        with torch.no_grad():
            limited = disc_loss(student, teacher, sentences, splits, max_context=limit)
    finally:
        hook.remove()
    assert forwards and max(forwards) <= limit
    with torch.no_grad():
        unlimited = disc_loss(student, teacher, sentences, splits)
    assert not torch.isclose(limited, unlimited)
    _assert_same_value_and_grads(student, teacher, sentences, splits, max_context=limit)


def test_suffix_longer_than_max_context_is_cut_for_both_models(base, sentences):
    # Within the cut suffix the teacher has no prefix left, so the loss comes only from the
    # weight difference; a student moved further away keeps it far enough from 0 (and from fp32
    # rounding) for a relative check.
    student = _full_ft_student(base, scale=0.3)
    longest = max(range(1, len(sentences)), key=lambda i: len(sentences[i]))
    limit = len(sentences[longest]) - 3
    _assert_same_value_and_grads(student, _frozen(base), sentences, [longest, len(sentences) - 1],
                                 max_context=limit)


# --- refusals ----------------------------------------------------------------------------------

def test_bad_inputs_are_refused_with_a_clear_error(base, sentences):
    with pytest.raises(ValueError, match="empty"):
        disc_loss(base, base, sentences, [])
    with pytest.raises(ValueError, match="outside"):
        disc_loss(base, base, sentences, [len(sentences)])
    with pytest.raises(ValueError, match="at least 2"):
        disc_loss(base, base, sentences + [[7]], [len(sentences)])
    with pytest.raises(ValueError, match="PEFT"):
        disc_loss(base, None, sentences, [1])
    with pytest.raises(ValueError, match="temperature"):
        disc_loss(base, base, sentences, [1], temperature=0.0)


# --- baselines ---------------------------------------------------------------------------------

def test_sft_loss_is_next_token_cross_entropy(base, tokenizer):
    ids = tokenizer(TEXT, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        ours = sft_loss(base, ids)
        transformers_loss = base(input_ids=torch.tensor([ids]), labels=torch.tensor([ids])).loss
    _assert_close_rel(ours, transformers_loss, 1e-5)
    with pytest.raises(ValueError, match="at least 2 tokens"):
        sft_loss(base, ids[:1])


def test_sft_kl_loss_is_ce_plus_beta_kl_to_the_reference(base, tokenizer):
    ids = tokenizer(TEXT, add_special_tokens=False)["input_ids"]
    student = _lora(base)
    beta, temperature = 0.3, 2.0
    with torch.no_grad():
        ours = sft_kl_loss(student, None, ids, beta=beta, temperature=temperature)
        explicit_reference = sft_kl_loss(student, _frozen(base), ids, beta=beta, temperature=temperature)
        ce = sft_loss(student, ids)
        s = student(input_ids=torch.tensor([ids])).logits[0, :-1]
        r = base(input_ids=torch.tensor([ids])).logits[0, :-1]
        kl = F.kl_div(F.log_softmax(s / temperature, -1), F.softmax(r / temperature, -1), reduction="batchmean")
        identity = sft_kl_loss(_lora(base, zero_init=True), None, ids)
        ce_of_base = sft_loss(base, ids)
    _assert_close_rel(ours, ce + beta * kl * temperature ** 2)
    _assert_close_rel(ours, explicit_reference, 1e-6)
    assert kl > 0
    _assert_close_rel(identity, ce_of_base, 1e-6)
    loss = sft_kl_loss(student, None, ids)
    loss.backward()
    assert all(p.grad is not None for p in student.parameters() if p.requires_grad)


# --- the real default model --------------------------------------------------------------------

@pytest.mark.slow
def test_default_model_with_lora_equals_per_split_loop():
    from disc_engine.models import DEFAULT_MODEL

    tokenizer = load_tokenizer(DEFAULT_MODEL)
    student = get_peft_model(load_model(DEFAULT_MODEL), LoraConfig(
        r=16, lora_alpha=32, target_modules="all-linear", lora_dropout=0.0, init_lora_weights=False))
    with torch.no_grad():
        for name, param in student.named_parameters():
            if "lora_B" in name:
                param.mul_(0.01)
    sentences = prepare_document(TEXT, tokenizer).sentence_ids
    splits = choose_split_indices(sentences, 3, random.Random(0))
    fast = disc_loss(student, None, sentences, splits)
    fast.backward()
    fast_grad = torch.cat([p.grad.flatten() for p in student.parameters() if p.requires_grad])
    student.zero_grad(set_to_none=True)
    ref = disc_loss_reference(student, None, sentences, splits)
    ref.backward()
    ref_grad = torch.cat([p.grad.flatten() for p in student.parameters() if p.requires_grad])
    assert ref > 0
    _assert_close_rel(fast.detach(), ref.detach())
    _assert_close_rel(fast_grad, ref_grad)
