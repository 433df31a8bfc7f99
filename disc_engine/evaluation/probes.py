"""Multiple-choice questions scored by option likelihood, with no sampling.

A question is read as a user turn in the model's chat format; each option is read as the
assistant's reply, and the option the model finds most likely wins. "Most likely" is the MEAN
log-probability per option token, not the sum: a sum charges every extra token, so it prefers
short options whatever they say ("Paris" over "Rio de Janeiro"), and the options of questions
about new documents (names, dates, places) differ widely in token count. The mean compares the
model's confidence token for token; it is the per-token form of lm-evaluation-harness's
length-normalised ``acc_norm``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ._common import batch_logits, chat_prompt_ids, encode, pad_token_id


def validate_probe(probe) -> None:
    """Raise ``ValueError`` naming what is wrong with one probe, or return None.

    A probe is ``{"question": str, "options": [str, ...], "answer": int}``: a non-empty
    question, at least two distinct non-empty options, and the index of the right one.
    """
    if not isinstance(probe, dict):
        raise ValueError(f"a probe must be an object with question, options and answer; got {type(probe).__name__}")
    missing = [key for key in ("question", "options", "answer") if key not in probe]
    if missing:
        raise ValueError(f"probe is missing {', '.join(missing)}")
    question, options, answer = probe["question"], probe["options"], probe["answer"]
    if not isinstance(question, str) or not question.strip():
        raise ValueError("probe question must be a non-empty string")
    if not isinstance(options, list) or len(options) < 2:
        raise ValueError(f"probe options must be a list of at least 2 strings; got {options!r}")
    for index, option in enumerate(options):
        if not isinstance(option, str) or not option.strip():
            raise ValueError(f"probe option {index} must be a non-empty string; got {option!r}")
    if len({option.strip() for option in options}) != len(options):
        raise ValueError(f"probe options must be distinct; got {options!r}")
    if isinstance(answer, bool) or not isinstance(answer, int):
        raise ValueError(f"probe answer must be an integer option index; got {answer!r}")
    if not 0 <= answer < len(options):
        raise ValueError(f"probe answer {answer} is out of range for {len(options)} options (0..{len(options) - 1})")


@torch.inference_mode()
def option_scores(model, tokenizer, probes: Sequence[dict], *, batch_size: int = 16) -> list[list[float]]:
    """Mean log-probability per token of every option of every probe, given its question."""
    for probe in probes:
        validate_probe(probe)
    rows: list[tuple[int, list[int], int]] = []   # (probe index, prompt + option ids, prompt length)
    for index, probe in enumerate(probes):
        prompt = chat_prompt_ids(tokenizer, probe["question"])
        for option in probe["options"]:
            rows.append((index, prompt + encode(tokenizer, option.strip()), len(prompt)))
    pad_id = pad_token_id(tokenizer)
    scores: list[list[float]] = [[] for _ in probes]
    for start in range(0, len(rows), batch_size):
        chunk = rows[start:start + batch_size]
        logits = batch_logits(model, [ids for _, ids, _ in chunk], pad_id)
        for row, (index, ids, prompt_length) in enumerate(chunk):
            # Logit at position p predicts token p + 1: the option's tokens are predicted from
            # positions prompt_length - 1 … len(ids) - 2.
            log_probs = torch.log_softmax(logits[row, prompt_length - 1:len(ids) - 1].float(), dim=-1)
            targets = torch.tensor(ids[prompt_length:], device=log_probs.device)
            scores[index].append(log_probs.gather(1, targets.unsqueeze(1)).mean().item())
    return scores


def probe_predictions(model, tokenizer, probes: Sequence[dict], *, batch_size: int = 16) -> list[int]:
    """The option index each probe's question gets from the model (ties: the first)."""
    return [max(range(len(row)), key=row.__getitem__)
            for row in option_scores(model, tokenizer, probes, batch_size=batch_size)]


def probe_accuracy(model, tokenizer, probes: Sequence[dict], *, batch_size: int = 16) -> float | None:
    """Fraction of probes whose answer the model prefers; None for no probes."""
    if not probes:
        return None
    predictions = probe_predictions(model, tokenizer, probes, batch_size=batch_size)
    return sum(p == probe["answer"] for p, probe in zip(predictions, probes)) / len(probes)
