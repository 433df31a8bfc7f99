"""The cheap check retention-budgeted training runs after every epoch (``disc_engine.budget``).

Built once per run; its first call must be on the parent (the model before any step), which
becomes the reference:

* **retention**: the parent's greedy replies to a few chat prompts and its log-probabilities at
  every reply position are kept; after each epoch the model reads the same prompt + reply rows
  in one batched forward and ``retention_kl_vs_parent`` is the mean per-token KL(parent ‖ model).
  No second model and no generation after the first call.
* **knowledge**: the fraction of the closed-book gap closed on (a sample of) the update's own
  documents: each sentence after the first read alone, its mean NLL compared with the parent's
  alone (0) and the parent's with the preceding sentences in context (1). The update's probes
  are deliberately not used to choose an epoch, so the scores reported for them stay honest.
* **format** (only with ``check_format``, for a budget with a format bound): the share of the
  format check's instruction prompts (``compliance``) whose greedy reply follows its instruction.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import torch

from disc_engine.loss import per_position_kl
from disc_engine.splitting import EmptyDocumentError, prepare_document

from ._common import batch_logits, chat_prompt_ids, greedy_generate, log_probs_at, pad_token_id
from .retention import load_chat_prompts

DEFAULT_PROMPTS = 16
DEFAULT_MAX_NEW_TOKENS = 32
DEFAULT_DOCUMENTS = 8
MAX_DOCUMENT_TOKENS = 512


class EpochCheck:
    def __init__(self, tokenizer, documents: Sequence[str], *, prompts: Sequence[str] | None = None,
                 num_prompts: int = DEFAULT_PROMPTS, max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
                 num_documents: int = DEFAULT_DOCUMENTS, seed: int = 0, check_format: bool = False):
        self.tokenizer = tokenizer
        self.check_format = check_format
        self.pad_id = pad_token_id(tokenizer)
        prompts = list(load_chat_prompts() if prompts is None else prompts)[:num_prompts]
        self.prompt_ids = [chat_prompt_ids(tokenizer, p) for p in prompts]
        self.max_new_tokens = max_new_tokens
        chosen = list(documents)
        if len(chosen) > num_documents:
            chosen = random.Random(seed).sample(chosen, num_documents)
        self.documents = []
        for text in chosen:
            try:
                sentences = prepare_document(text, tokenizer).sentence_ids
            except EmptyDocumentError:
                continue
            kept, total = [], 0
            for sentence in sentences:
                if total + len(sentence) > MAX_DOCUMENT_TOKENS:
                    break
                kept.append(sentence)
                total += len(sentence)
            if len(kept) >= 2:
                self.documents.append(kept)
        self._rows: list[tuple[list[int], list[int]]] | None = None
        self._reference: list[torch.Tensor] = []
        self._closed0 = self._open0 = None

    @torch.inference_mode()
    def __call__(self, model) -> dict:
        if self._rows is None:
            self._capture_reference(model)
            return {"retention_kl_vs_parent": 0.0, "knowledge": 0.0, "suffix_nll": self._closed0,
                    **self._format(model)}
        kl_sum, count = 0.0, 0
        for batch, reference in self._batches():
            model_log_probs = self._reply_log_probs(model, batch)
            kl = per_position_kl(reference, model_log_probs.to(reference.device))
            kl_sum += kl.sum().item()
            count += kl.numel()
        closed = self._closed_book_nll(model)
        gap = self._closed0 - self._open0
        knowledge = (self._closed0 - closed) / gap if gap > 0 else 0.0
        return {"retention_kl_vs_parent": kl_sum / count if count else 0.0, "knowledge": knowledge,
                "suffix_nll": closed, **self._format(model)}

    def _format(self, model) -> dict:
        """With ``check_format``: the share of the format check's instruction prompts followed."""
        if not self.check_format:
            return {}
        from .compliance import format_compliance

        return {"format_compliance": format_compliance(model, self.tokenizer)}

    # --- reference (the parent) --------------------------------------------------------------

    def _capture_reference(self, model) -> None:
        replies = greedy_generate(model, self.tokenizer, self.prompt_ids, self.max_new_tokens)
        self._rows = [(prompt, reply.tokens) for prompt, reply in zip(self.prompt_ids, replies) if reply.tokens]
        self._rows.sort(key=lambda row: len(row[0]) + len(row[1]))
        self._reference = [self._reply_log_probs(model, batch) for batch, _ in self._batches(reference=False)]
        self._closed0 = self._closed_book_nll(model)
        self._open0 = self._open_book_nll(model)

    def _batches(self, batch_size: int = 8, reference: bool = True):
        for number, start in enumerate(range(0, len(self._rows), batch_size)):
            yield self._rows[start:start + batch_size], (self._reference[number] if reference else None)

    def _reply_log_probs(self, model, batch) -> torch.Tensor:
        sequences = [prompt + reply for prompt, reply in batch]
        # The logit at position p predicts token p + 1.
        spans = [(len(prompt) - 1, len(prompt) + len(reply) - 1) for prompt, reply in batch]
        return log_probs_at(batch_logits(model, sequences, self.pad_id), spans)

    # --- knowledge ----------------------------------------------------------------------------

    def _closed_book_nll(self, model) -> float:
        total, tokens = 0.0, 0
        for sentences in self.documents:
            suffixes = [s for s in sentences[1:] if len(s) >= 2]
            if not suffixes:
                continue
            logits = batch_logits(model, suffixes, self.pad_id)
            for row, suffix in enumerate(suffixes):
                log_probs = torch.log_softmax(logits[row, :len(suffix) - 1].float(), dim=-1)
                targets = torch.tensor(suffix[1:], device=log_probs.device)
                total -= log_probs.gather(1, targets.unsqueeze(1)).sum().item()
                tokens += len(suffix) - 1
        return total / tokens if tokens else 0.0

    def _open_book_nll(self, model) -> float:
        # The same target tokens as the closed book (suffix tokens 2..L), read after their prefix.
        total, tokens = 0.0, 0
        for sentences in self.documents:
            document = [t for s in sentences for t in s]
            logits = batch_logits(model, [document], self.pad_id)[0]
            log_probs = torch.log_softmax(logits.float(), dim=-1)
            offset = len(sentences[0])
            for sentence in sentences[1:]:
                if len(sentence) >= 2:
                    for t in range(1, len(sentence)):
                        total -= log_probs[offset + t - 1, sentence[t]].item()
                        tokens += 1
                offset += len(sentence)
        return total / tokens if tokens else 0.0
