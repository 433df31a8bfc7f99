"""Knowledge uptake without labels: the closed-book gap on the update's own documents.

For a split of a document at sentence ``i``, the teacher (the parent version) reads the
sentences before ``i`` and then sentence ``i``; the model reads sentence ``i`` alone. What the
teacher predicts better is what the document's earlier sentences tell it. The gap is the DiSC
objective at T = 1, ``mean over t = 2..L of KL(teacher_t ‖ model_t)``, averaged over splits:
measured with the parent as the model it is the knowledge still missing before the update;
with the new version, what is still missing after it.

Split points: every valid sentence from index 1 on (``choose_split_indices(..., "all")``), or,
for a document with more than ``max_splits_per_document`` of them, a sample drawn with an RNG
of the evaluation's own (seeded by ``seed`` and the document's position), not the trainer's.
Sentences are tokenized exactly as for training (``disc_engine.splitting.prepare_document``).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from disc_engine.loss import per_position_kl
from disc_engine.splitting import EmptyDocumentError, choose_split_indices, prepare_document

from ._common import batch_logits, device_of, pad_token_id

DEFAULT_MAX_SPLITS_PER_DOCUMENT = 16
# Longer documents are cut (at a sentence boundary) for the evaluation: the teacher's logits over
# a document cost length × vocabulary floats.
DEFAULT_MAX_DOCUMENT_TOKENS = 1024


@dataclass(frozen=True)
class GapScore:
    kl: float | None              # mean over splits of the per-split mean KL(teacher ‖ model), T = 1
    suffix_nll: float | None      # the model's per-token NLL of suffix tokens 2..L, reading the suffix alone
    open_book_nll: float | None   # the teacher's per-token NLL of the same tokens, reading the prefix too
    documents: int                # documents that had at least one split
    splits: int
    tokens: int                   # predicted suffix tokens


def closed_book_gap(model, teacher, tokenizer, documents: Sequence[str], *, seed: int = 0,
                    max_splits_per_document: int = DEFAULT_MAX_SPLITS_PER_DOCUMENT,
                    max_document_tokens: int = DEFAULT_MAX_DOCUMENT_TOKENS) -> GapScore:
    """The closed-book gap of ``model`` to ``teacher`` on ``documents`` (see the module doc)."""
    return closed_book_gaps([model], teacher, tokenizer, documents, seed=seed,
                            max_splits_per_document=max_splits_per_document,
                            max_document_tokens=max_document_tokens)[0]


@torch.inference_mode()
def closed_book_gaps(models: Sequence, teacher, tokenizer, documents: Sequence[str], *, seed: int = 0,
                     max_splits_per_document: int = DEFAULT_MAX_SPLITS_PER_DOCUMENT,
                     max_document_tokens: int = DEFAULT_MAX_DOCUMENT_TOKENS) -> list[GapScore]:
    """``closed_book_gap`` for several models against one teacher; the teacher reads each
    document once for all of them."""
    if max_splits_per_document < 1:
        raise ValueError(f"max_splits_per_document must be at least 1, got {max_splits_per_document}")
    pad_id = pad_token_id(tokenizer)
    split_kls: list[list[float]] = [[] for _ in models]
    nll_sums = [0.0 for _ in models]
    open_book_sum = 0.0
    tokens = documents_used = 0

    for position, text in enumerate(documents):
        sentence_ids = _prepared_sentences(text, tokenizer, max_document_tokens)
        indices = _evaluation_splits(sentence_ids, max_splits_per_document, seed, position)
        if not indices:
            continue
        documents_used += 1
        offsets = [0]
        for sentence in sentence_ids:
            offsets.append(offsets[-1] + len(sentence))
        document = [token for sentence in sentence_ids[:indices[-1] + 1] for token in sentence]
        suffixes = [sentence_ids[i] for i in indices]
        # The teacher's logit at document position offset + t predicts suffix token t + 1
        # (0-based), for t = 0 … L - 2: the model, reading the suffix alone, predicts the same
        # token from its own position t.
        teacher_positions = torch.cat([torch.arange(offsets[i], offsets[i] + len(sentence_ids[i]) - 1)
                                       for i in indices])
        targets = torch.tensor([token for suffix in suffixes for token in suffix[1:]])
        teacher_logits = teacher(input_ids=torch.tensor([document], device=device_of(teacher)),
                                 use_cache=False).logits[0]
        teacher_log_probs = torch.log_softmax(
            teacher_logits[teacher_positions.to(teacher_logits.device)].float(), dim=-1)
        del teacher_logits
        targets = targets.to(teacher_log_probs.device)
        open_book_sum -= teacher_log_probs.gather(1, targets.unsqueeze(1)).sum().item()
        tokens += len(targets)
        lengths = [len(s) - 1 for s in suffixes]

        for slot, model in enumerate(models):
            logits = batch_logits(model, suffixes, pad_id)
            model_log_probs = torch.log_softmax(
                torch.cat([logits[row, :length] for row, length in enumerate(lengths)]).float(),
                dim=-1).to(teacher_log_probs.device)
            del logits
            # Log-probabilities are their own log-softmax, so they pass for logits here.
            per_position = per_position_kl(teacher_log_probs, model_log_probs)
            for chunk in per_position.split(lengths):
                split_kls[slot].append(chunk.mean().item())
            nll_sums[slot] -= model_log_probs.gather(1, targets.unsqueeze(1)).sum().item()

    scores = []
    for slot in range(len(models)):
        kls = split_kls[slot]
        scores.append(GapScore(
            kl=sum(kls) / len(kls) if kls else None,
            suffix_nll=nll_sums[slot] / tokens if tokens else None,
            open_book_nll=open_book_sum / tokens if tokens else None,
            documents=documents_used, splits=len(kls), tokens=tokens,
        ))
    return scores


def _prepared_sentences(text: str, tokenizer, max_document_tokens: int) -> list[list[int]]:
    try:
        sentence_ids = prepare_document(text, tokenizer).sentence_ids
    except EmptyDocumentError:
        return []
    kept, total = [], 0
    for sentence in sentence_ids:
        if total + len(sentence) > max_document_tokens:
            break
        kept.append(sentence)
        total += len(sentence)
    return kept


def _evaluation_splits(sentence_ids: list[list[int]], cap: int, seed: int, position: int) -> list[int]:
    indices = choose_split_indices(sentence_ids, "all", random.Random(0))
    if len(indices) <= cap:
        return indices
    rng = random.Random(f"disc-evaluation/{seed}/{position}")
    return sorted(rng.sample(indices, cap))
