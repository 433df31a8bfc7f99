"""Multiple-choice questions scored by option likelihood, with no sampling.

A question is read as a user turn in the model's chat format; each option is read as the
assistant's reply, and the option with the highest log-likelihood, SUMMED over its tokens, wins:
``log P(option | question)``, the probability of the whole reply. The per-token mean was tried
and rejected: in a reply the first token carries the choice, and the later tokens of a long
option are near-certain once it has started ("Hippo" → "potamus"), so averaging dilutes the
decisive token and favours long options. On the shipped general-knowledge questions
SmolLM2-135M-Instruct answers 28 of 42 by the sum and 18 by the mean (19 by the sum per
character, lm-evaluation-harness's ``acc_norm``). The sum's known bias towards short options
matters less here; probes with options of very different lengths should keep that in mind.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from disc_engine.options import validate_probe

from ._common import (
    batch_logits,
    chat_prompt_ids,
    device_of,
    encode,
    last_logit_only,
    left_padded,
    pad_token_id,
    right_padded,
)

QUESTIONS_PER_BATCH = 8


@torch.inference_mode()
def option_scores(model, tokenizer, probes: Sequence[dict]) -> list[list[float]]:
    """Log-likelihood (summed over tokens) of every option of every probe, given its question."""
    for probe in probes:
        validate_probe(probe)
    scores: list[list[float]] = []
    for start in range(0, len(probes), QUESTIONS_PER_BATCH):
        chunk = probes[start:start + QUESTIONS_PER_BATCH]
        scores.extend([total for total, _ in row] for row in _option_log_likelihoods(model, tokenizer, chunk))
    return scores


def _option_log_likelihoods(model, tokenizer, probes: Sequence[dict],
                            share_prompt: bool = True) -> list[list[tuple[float, int]]]:
    """(sum of log-probabilities, token count) of each option of each probe, read as the
    assistant's reply to the probe's question.

    The questions are read once, as one left-padded batch, and each question's KV cache is
    shared by its options (``share_prompt``): with a chat template's system prompt the question
    is most of the tokens. A model whose cache cannot be re-indexed reads question + option as
    one row per option instead.
    """
    prompts = [chat_prompt_ids(tokenizer, probe["question"]) for probe in probes]
    options = [[encode(tokenizer, option.strip()) for option in probe["options"]] for probe in probes]
    owners = [index for index, probe_options in enumerate(options) for _ in probe_options]
    flat = [option for probe_options in options for option in probe_options]
    pad_id = pad_token_id(tokenizer)
    device = device_of(model)
    totals: list[float] = []

    output = None
    if share_prompt:
        ids, mask = left_padded(prompts, pad_id, device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        output = model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True,
                       **last_logit_only(model))
        if not hasattr(output.past_key_values, "batch_select_indices"):
            output = None
    if output is not None:
        first_token = torch.log_softmax(output.logits[:, -1].float(), dim=-1)
        rows = torch.tensor(owners, device=device)
        cache = output.past_key_values
        cache.batch_select_indices(rows)
        option_ids, option_mask = right_padded(flat, pad_id, device)
        lengths = torch.tensor([len(p) for p in prompts], device=device)[rows]
        positions = lengths.unsqueeze(1) + torch.arange(option_ids.shape[1], device=device)
        logits = model(input_ids=option_ids, attention_mask=torch.cat([mask[rows], option_mask], dim=1),
                       position_ids=positions, past_key_values=cache, use_cache=True).logits
        for row, option in enumerate(flat):
            # The question's last logit predicts the option's first token; the option's logit at
            # position t predicts its token t + 1.
            log_probs = torch.log_softmax(logits[row, :len(option) - 1].float(), dim=-1)
            targets = torch.tensor(option[1:], dtype=torch.long, device=device)
            later = log_probs.gather(1, targets.unsqueeze(1)).sum().item()
            totals.append(first_token[owners[row], option[0]].item() + later)
    else:
        logits = batch_logits(model, [prompts[owner] + option for owner, option in zip(owners, flat)], pad_id)
        for row, (owner, option) in enumerate(zip(owners, flat)):
            start = len(prompts[owner]) - 1
            log_probs = torch.log_softmax(logits[row, start:start + len(option)].float(), dim=-1)
            targets = torch.tensor(option, dtype=torch.long, device=log_probs.device)
            totals.append(log_probs.gather(1, targets.unsqueeze(1)).sum().item())

    results: list[list[tuple[float, int]]] = [[] for _ in probes]
    for owner, option, total in zip(owners, flat, totals):
        results[owner].append((total, len(option)))
    return results


def probe_predictions(model, tokenizer, probes: Sequence[dict]) -> list[int]:
    """The option index each probe's question gets from the model (ties: the first)."""
    return [max(range(len(row)), key=row.__getitem__) for row in option_scores(model, tokenizer, probes)]


def probe_accuracy(model, tokenizer, probes: Sequence[dict]) -> float | None:
    """Fraction of probes whose answer the model prefers; None for no probes."""
    if not probes:
        return None
    predictions = probe_predictions(model, tokenizer, probes)
    return sum(p == probe["answer"] for p, probe in zip(predictions, probes)) / len(probes)
