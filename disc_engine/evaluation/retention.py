"""Capabilities kept: how far a new version drifted from a reference model on general chat, and
whether it still answers easy general-knowledge questions the base answered.

``retention_kl``: a reference model (the parent, or the base) answers a fixed set of general
chat prompts greedily (``data/chat_prompts.json``); the new model then reads the same prompt
and reply, and the per-token KL(reference ‖ new) over the reply's tokens is averaged. The paper
relates this token-level KL to the initial model to forgetting. The reference replies depend
only on the reference model, so they are generated once and cached on disk.

``general_mc_accuracy``: easy multiple-choice questions (``data/general_mc.json``), scored like
probes, on the subset the BASE model answers correctly (determined once per base and cached),
so the base scores 1.0 by construction and the number measures what was lost.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from disc_engine.loss import per_position_kl

from ._common import DiskCache, batch_logits, chat_prompt_ids, greedy_generate, load_json, log_probs_at, pad_token_id
from .probes import probe_predictions, validate_probe

DEFAULT_MAX_NEW_TOKENS = 48


def load_chat_prompts() -> list[str]:
    return list(load_json("chat_prompts.json"))


def load_general_mc() -> list[dict]:
    questions = load_json("general_mc.json")
    for question in questions:
        validate_probe(question)
    return questions


def reference_responses(model, tokenizer, *, prompts: Sequence[str] | None = None,
                        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS, cache_dir: str | None = None,
                        model_key: str | None = None) -> list[list[int]]:
    """The model's greedy replies (token ids, with the end-of-turn token when emitted) to the
    chat prompts.

    Cached under ``cache_dir`` by the model's identity: ``model_key`` (e.g. a checkpoint's
    ``model_checksum`` or an artifact's hash) or, without one, ``model_fingerprint``.
    """
    prompts = load_chat_prompts() if prompts is None else list(prompts)
    if not prompts:
        raise ValueError("reference_responses needs at least one prompt")

    def generate() -> list[list[int]]:
        prompt_ids = [chat_prompt_ids(tokenizer, prompt) for prompt in prompts]
        return [g.tokens for g in greedy_generate(model, tokenizer, prompt_ids, max_new_tokens)]

    return DiskCache(cache_dir).memoize("reference-responses", model, tokenizer, model_key,
                                        (prompts, max_new_tokens), generate)


@torch.inference_mode()
def retention_kl(model, reference_model, tokenizer, *, prompts: Sequence[str] | None = None,
                 responses: Sequence[Sequence[int]] | None = None,
                 max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS, cache_dir: str | None = None,
                 reference_key: str | None = None, batch_size: int = 8) -> float:
    """Mean per-token KL(reference ‖ model) on the reference model's own replies to the chat
    prompts (each reply token weighs the same). 0 for identical models; lower is better.

    ``responses`` are the reference's replies if already at hand; otherwise they come from
    ``reference_responses`` (cached with ``cache_dir``).
    """
    prompts = load_chat_prompts() if prompts is None else list(prompts)
    if responses is None:
        responses = reference_responses(reference_model, tokenizer, prompts=prompts, max_new_tokens=max_new_tokens,
                                        cache_dir=cache_dir, model_key=reference_key)
    if len(responses) != len(prompts):
        raise ValueError(f"{len(responses)} responses for {len(prompts)} prompts")
    pad_id = pad_token_id(tokenizer)
    rows = [(chat_prompt_ids(tokenizer, prompt), list(reply)) for prompt, reply in zip(prompts, responses) if reply]
    # Rows of similar length together waste less compute on padding.
    rows.sort(key=lambda row: len(row[0]) + len(row[1]))
    if not rows:
        raise ValueError("the reference replies are all empty: nothing to compare on")
    total, count = 0.0, 0
    for start in range(0, len(rows), batch_size):
        chunk = rows[start:start + batch_size]
        sequences = [prompt + reply for prompt, reply in chunk]
        # The logit at position p predicts token p + 1: reply tokens are predicted from
        # positions len(prompt) - 1 … len(prompt) + len(reply) - 2.
        spans = [(len(prompt) - 1, len(prompt) + len(reply) - 1) for prompt, reply in chunk]
        reference_log_probs = log_probs_at(batch_logits(reference_model, sequences, pad_id), spans)
        model_log_probs = log_probs_at(batch_logits(model, sequences, pad_id), spans)
        model_log_probs = model_log_probs.to(reference_log_probs.device)
        per_position = per_position_kl(reference_log_probs, model_log_probs)
        total += per_position.sum().item()
        count += per_position.numel()
    return total / count


def base_correct_questions(base_model, tokenizer, *, questions: Sequence[dict] | None = None,
                           cache_dir: str | None = None, base_key: str | None = None) -> list[dict]:
    """The general-knowledge questions the base model answers correctly (cached per base)."""
    questions = load_general_mc() if questions is None else list(questions)

    def answered() -> list[int]:
        predictions = probe_predictions(base_model, tokenizer, questions)
        return [i for i, (p, q) in enumerate(zip(predictions, questions)) if p == q["answer"]]

    correct = DiskCache(cache_dir).memoize("general-mc-base", base_model, tokenizer, base_key,
                                           (questions,), answered)
    return [questions[i] for i in correct]


def general_mc_accuracy(model, base_model, tokenizer, *, questions: Sequence[dict] | None = None,
                        cache_dir: str | None = None, base_key: str | None = None,
                        model_key: str | None = None) -> float | None:
    """Accuracy of ``model`` on the general-knowledge questions the base answers correctly
    (1.0 for the base itself); None when the base answers none of them.

    With ``cache_dir`` the score is also stored under the model's identity (``model_key`` or its
    fingerprint), so a version scored as the new model is not scored again as the next parent.
    """
    subset = base_correct_questions(base_model, tokenizer, questions=questions, cache_dir=cache_dir,
                                    base_key=base_key)
    if not subset:
        return None

    def accuracy() -> float:
        predictions = probe_predictions(model, tokenizer, subset)
        return sum(p == q["answer"] for p, q in zip(predictions, subset)) / len(subset)

    return DiskCache(cache_dir).memoize("general-mc", model, tokenizer, model_key, (subset,), accuracy)
