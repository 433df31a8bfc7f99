"""``evaluate_update``: the scores every model version carries, knowledge gained and capabilities
kept, in one flat dict."""

from __future__ import annotations

import random
import time
from collections.abc import Sequence

import torch
from torch import nn

from ._common import model_fingerprint
from .compliance import format_compliance
from .knowledge import closed_book_gaps
from .probes import probe_accuracy, validate_probe
from .retention import general_mc_accuracy, reference_responses, retention_kl

KNOWLEDGE_KEYS = (
    "knowledge_gap_before", "knowledge_gap_after", "knowledge_gap_closed_fraction",
    "suffix_nll_before", "suffix_nll_after",
    "probe_accuracy_before", "probe_accuracy_after", "probe_count",
)
RETENTION_KEYS = (
    "retention_kl_vs_parent", "retention_kl_vs_base",
    "general_mc_accuracy", "general_mc_accuracy_parent",
    "format_compliance", "format_compliance_parent",
)
RESULT_KEYS = KNOWLEDGE_KEYS + RETENTION_KEYS + ("eval_seconds",)

METRICS: dict[str, str] = {
    "knowledge_gap_before": "KL(parent reading prefix+sentence ‖ parent reading the sentence alone) on the "
                            "update's documents, per token: the knowledge missing before (context only)",
    "knowledge_gap_after": "the same gap for the new version: knowledge still missing after the update "
                           "(lower is better)",
    "knowledge_gap_closed_fraction": "(before − after) / before: share of the closed-book gap the update "
                                     "closed (higher is better)",
    "suffix_nll_before": "parent's per-token NLL of the documents' sentences read without their context "
                         "(context only)",
    "suffix_nll_after": "new version's per-token NLL of the same sentences (lower is better)",
    "probe_accuracy_before": "parent's accuracy on the update's multiple-choice probes (context only)",
    "probe_accuracy_after": "new version's accuracy on the update's multiple-choice probes (higher is better)",
    "probe_count": "number of probes the update carried",
    "retention_kl_vs_parent": "per-token KL(parent ‖ new) on the parent's own replies to general chat "
                              "prompts (lower is better)",
    "retention_kl_vs_base": "per-token KL(base ‖ new) on the base's own replies to general chat prompts; "
                            "tracks forgetting (lower is better)",
    "general_mc_accuracy": "new version's accuracy on easy general-knowledge questions the base answers "
                           "correctly; the base scores 1.0 (higher is better)",
    "general_mc_accuracy_parent": "the parent's score on the same questions (context only)",
    "format_compliance": "fraction of simple instruction prompts the new version answers as told and "
                         "ends its turn (higher is better)",
    "format_compliance_parent": "the parent's fraction on the same prompts (context only)",
    "eval_seconds": "wall-clock seconds the evaluation took",
}


class _AdapterOff(nn.Module):
    """A PEFT model read with its adapters switched off.

    ``get_peft_model(base, ...)`` injects the adapter into ``base`` itself, so after it the
    base module no longer computes the base model; this wrapper does.
    """

    def __init__(self, peft_model):
        super().__init__()
        object.__setattr__(self, "_peft_model", peft_model)  # not a submodule: no parameters of its own

    def parameters(self, recurse: bool = True):
        return self._peft_model.parameters(recurse)

    def get_base_model(self):
        # Lets callers inspect the underlying forward's signature (e.g. for ``logits_to_keep``).
        return self._peft_model.get_base_model()

    def forward(self, *args, **kwargs):
        with self._peft_model.disable_adapter():
            return self._peft_model(*args, **kwargs)


def _as_reference(model, *peft_candidates):
    """``model``, or an adapters-off view when it is the module some PEFT model was built on."""
    for candidate in peft_candidates:
        if (candidate is not model and hasattr(candidate, "disable_adapter")
                and hasattr(candidate, "get_base_model") and candidate.get_base_model() is model):
            return _AdapterOff(candidate)
    return model


def _sample_documents(documents: Sequence[str], limit: int | None, seed: int) -> list[str]:
    if limit is None or len(documents) <= limit:
        return list(documents)
    rng = random.Random(f"disc-evaluation-documents/{seed}")
    return [documents[i] for i in sorted(rng.sample(range(len(documents)), limit))]


def evaluate_update(*, new_model, parent_model, base_model, tokenizer, documents: list[str],
                    probes: list[dict] | None = None, cache_dir: str | None = None, seed: int = 0,
                    max_eval_documents: int | None = 32, new_key: str | None = None,
                    parent_key: str | None = None, base_key: str | None = None) -> dict[str, float | int | None]:
    """Score a new model version against its parent and the base; returns ``RESULT_KEYS``.

    Args:
        new_model, parent_model, base_model: causal LMs (plain or PEFT) in eval mode.
            ``parent_model`` may be ``base_model`` (a first version). When the new version is a
            PEFT model built on the very module passed as parent or base, that module is read
            with the adapter switched off.
        documents: the update's documents; at most ``max_eval_documents`` of them (a seeded
            sample) are used for the knowledge gap.
        probes: the update's multiple-choice probes (``validate_probe``), if any.
        cache_dir: where reference replies, the base's correct-question subset and per-version
            capability scores are cached; None: compute everything.
        new_key, parent_key, base_key: stable identities of the models for the cache (e.g. a
            ``model_checksum`` or an artifact's hash); default: ``model_fingerprint``.

    Values are None where they do not apply: no probes, no document long enough to split,
    a zero gap before the update (no fraction to close).
    """
    started = time.perf_counter()
    probes = list(probes or [])
    for index, probe in enumerate(probes):
        try:
            validate_probe(probe)
        except ValueError as exc:
            raise ValueError(f"probe {index}: {exc}") from None

    parent = _as_reference(parent_model, new_model)
    base = _as_reference(base_model, new_model, parent_model)
    if base_model is parent_model:
        base = parent
    if cache_dir is not None:
        new_key = new_key or model_fingerprint(new_model, tokenizer)
        parent_key = parent_key or model_fingerprint(parent, tokenizer)
        base_key = base_key or model_fingerprint(base, tokenizer)

    with torch.inference_mode():
        before, after = closed_book_gaps([parent, new_model], parent, tokenizer,
                                         _sample_documents(documents, max_eval_documents, seed), seed=seed)
        closed = None
        if before.kl is not None and before.kl > 0:
            closed = (before.kl - after.kl) / before.kl

        parent_replies = reference_responses(parent, tokenizer, cache_dir=cache_dir, model_key=parent_key)
        base_replies = parent_replies if base is parent else reference_responses(
            base, tokenizer, cache_dir=cache_dir, model_key=base_key)

        kl_vs_parent = retention_kl(new_model, parent, tokenizer, responses=parent_replies)
        mc_new = general_mc_accuracy(new_model, base, tokenizer, cache_dir=cache_dir, base_key=base_key,
                                     model_key=new_key)
        # A first version's parent is the base: its numbers follow without computing them again.
        if base is parent:
            kl_vs_base = kl_vs_parent
            mc_parent = None if mc_new is None else 1.0
        else:
            kl_vs_base = retention_kl(new_model, base, tokenizer, responses=base_replies)
            mc_parent = general_mc_accuracy(parent, base, tokenizer, cache_dir=cache_dir, base_key=base_key,
                                            model_key=parent_key)
        result = {
            "knowledge_gap_before": before.kl,
            "knowledge_gap_after": after.kl,
            "knowledge_gap_closed_fraction": closed,
            "suffix_nll_before": before.suffix_nll,
            "suffix_nll_after": after.suffix_nll,
            "probe_accuracy_before": probe_accuracy(parent, tokenizer, probes),
            "probe_accuracy_after": probe_accuracy(new_model, tokenizer, probes),
            "probe_count": len(probes),
            "retention_kl_vs_parent": kl_vs_parent,
            "retention_kl_vs_base": kl_vs_base,
            "general_mc_accuracy": mc_new,
            "general_mc_accuracy_parent": mc_parent,
            "format_compliance": format_compliance(new_model, tokenizer, cache_dir=cache_dir, model_key=new_key),
            "format_compliance_parent": format_compliance(parent, tokenizer, cache_dir=cache_dir,
                                                          model_key=parent_key),
        }
    result["eval_seconds"] = round(time.perf_counter() - started, 3)
    return result
