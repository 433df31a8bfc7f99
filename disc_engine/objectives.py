"""The training objectives, by name: what a method computes for one document, and what it needs.

A new method is one entry in ``OBJECTIVES`` plus its loss (in ``disc_engine/loss.py``): the
trainer, the API schema, ``disc train --method`` and the benchmarks all take their choices from
here. Importing this module loads no torch (the service validates method names with it); each
``document_loss`` imports what it computes with when it is first called.

``document_loss(run, doc)`` returns ``(loss, None)`` for a trainable document, or
``(None, reason)`` when the document cannot be trained by this objective (it is then reported as
skipped). ``run`` carries the models, the options, the split-point RNG and the context length.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# The default, chosen on the tuning corpora (docs/results/knowledge_update.md, "FT+KL with chat
# replay"): on the 12 tuning documents, with chat replay (``TrainConfig.replay_weight``) at 1e-3 and
# 6 epochs, FT+KL gained +36.1 points of chat questions [+22.2, +50.0] and +43.1 of clozes against
# disc_recall's +26.4 and +20.8 (epochs 2-6 pooled, paired: +9.7 [-0.9, +20.4] chat, +16.7 [+6.9,
# +25.9] clozes), with instruction compliance and general accuracy the same within +-2 points.
#   python -m benchmarks.knowledge_update.frontier --split tuning --documents 12 --methods sft_kl \
#       --lrs 1e-3 --epochs 6 --measure-every 2 --full-retention --full-retention-every-epoch
# (before it: disc_recall, chosen the same way over disc; section "Chat replay").
DEFAULT_METHOD = "sft_kl"
# The FT+KL baseline keeps the paper's temperature; ``TrainConfig.temperature`` is DiSC's.
SFT_KL_TEMPERATURE = 1.0


@dataclass
class RunContext:
    """What an objective may use for one document: built once per run by the trainer."""

    config: Any            # disc_engine.options.TrainConfig
    model: Any             # the student being trained
    teacher: Any           # a frozen teacher, or None: the student with its adapters off
    split_rng: random.Random
    max_context: int | None
    # This step's document's teacher logits kept across epochs (``disc_engine.teacher_cache``),
    # set by the trainer before each document when the run keeps them; None otherwise.
    teacher_logits: Any = None
    # The run's tokenizer, for objectives that write documents into the chat format.
    tokenizer: Any = None


@dataclass(frozen=True)
class Objective:
    name: str
    description: str
    # Whether training needs the frozen parent beside the student (a copy under full fine-tuning).
    needs_teacher: bool
    # Whether the document is read as split contexts (prefix → sentence) or as one token stream.
    reads_splits: bool
    document_loss: Callable[[RunContext, Any], tuple[Any, str | None]]
    # Several documents in one padded step: (run, docs) -> (loss or None, [reason or None per doc]).
    # None: the trainer averages ``document_loss`` over the documents instead.
    group_loss: Callable[[RunContext, list], tuple[Any, list[str | None]]] | None = None

    def context_alteration(self, token_count: int, max_context: int) -> str:
        """How a document longer than the context is trained, for the run's report."""
        if self.reads_splits:
            return (f"{token_count} tokens exceed the {max_context}-token context: "
                    "teacher prefixes truncated from the left")
        windows = math.ceil(token_count / max_context)
        return f"{token_count} tokens exceed the {max_context}-token context: trained in {windows} windows"


# --- document losses ---------------------------------------------------------------------------

def _no_split(doc) -> str:
    return ("no valid split: no sentence after the first has at least 2 tokens "
            f"({len(doc.sentence_ids)} sentence(s), {doc.token_count} tokens)")


def _disc_document_loss(run: RunContext, doc):
    from disc_engine.loss import disc_loss
    from disc_engine.splitting import choose_split_indices

    split_indices = choose_split_indices(doc.sentence_ids, run.config.num_splits, run.split_rng)
    if not split_indices:
        return None, _no_split(doc)
    return disc_loss(run.model, run.teacher, doc.sentence_ids, split_indices, run.config.temperature,
                     max_context=run.max_context, teacher_cache=run.teacher_logits), None


def _disc_group_loss(run: RunContext, docs: list):
    """``disc_loss`` of several documents as one padded step: splits drawn document by document
    (the same draws as one document a step), one teacher batch and one student batch."""
    from disc_engine.loss import disc_loss_batch
    from disc_engine.splitting import choose_split_indices

    planned, reasons = [], []
    for doc in docs:
        split_indices = choose_split_indices(doc.sentence_ids, run.config.num_splits, run.split_rng)
        if split_indices:
            planned.append((doc.sentence_ids, split_indices))
            reasons.append(None)
        else:
            reasons.append(_no_split(doc))
    if not planned:
        return None, reasons
    return disc_loss_batch(run.model, run.teacher, planned, run.config.temperature,
                           max_context=run.max_context), reasons


def _movable_sentences(doc) -> list[list[int]] | None:
    """Every sentence as it reads after another (leading space), or None if the document's
    pieces are token-level chunks that cannot be reordered."""
    if doc.first_sentence_spaced is None:
        return None
    return [doc.first_sentence_spaced] + [list(s) for s in doc.sentence_ids[1:]]


def _disc_shuffled_document_loss(run: RunContext, doc):
    """DiSC over a fresh random order of the document's sentences each time it is trained.

    Over epochs every sentence is read after different others, the first one included, so a
    fact stated before the sentence that restates it becomes learnable where it is stated. Each
    step is exactly ``disc_loss`` on the reordered document: still one teacher forward.
    """
    from disc_engine.loss import disc_loss
    from disc_engine.splitting import choose_split_indices

    movable = _movable_sentences(doc)
    if movable is None:
        return _disc_document_loss(run, doc)
    order = list(range(len(movable)))
    run.split_rng.shuffle(order)
    sentences = [doc.sentence_ids[0] if (i == 0 and position == 0) else movable[i]
                 for position, i in enumerate(order)]
    split_indices = choose_split_indices(sentences, run.config.num_splits, run.split_rng)
    if not split_indices:
        return None, _no_split(doc)
    return disc_loss(run.model, run.teacher, sentences, split_indices, run.config.temperature,
                     max_context=run.max_context), None


def anyorder_splits(sentences: list[list[int]], num_splits, rng: random.Random) -> list[int]:
    """Sentence indices to distil under any-order context: any sentence of ≥ 2 tokens, the
    first included; ``k`` drawn uniformly (all of them for ``"all"``), sorted."""
    from disc_engine.splitting import MIN_SUFFIX_TOKENS

    valid = [i for i, s in enumerate(sentences) if len(s) >= MIN_SUFFIX_TOKENS]
    if num_splits == "all" or len(valid) <= num_splits:
        return valid
    return sorted(rng.sample(valid, num_splits))


def _disc_anyorder_document_loss(run: RunContext, doc):
    """Any-order context: for sentence i the teacher reads every other sentence of the document
    (in document order), then sentence i; the student reads sentence i alone."""
    from disc_engine.loss import context_distillation_loss

    movable = _movable_sentences(doc)
    if movable is None or len(movable) < 2:
        return _disc_document_loss(run, doc)
    chosen = anyorder_splits(movable, run.config.num_splits, run.split_rng)
    if not chosen:
        return None, f"no sentence has at least 2 tokens ({len(movable)} sentence(s))"
    contexts = [[t for j, s in enumerate(movable) if j != i for t in s] for i in chosen]
    suffixes = [movable[i] for i in chosen]
    return context_distillation_loss(run.model, run.teacher, contexts, suffixes, run.config.temperature,
                                     max_context=run.max_context), None


def recall_views(run: RunContext, doc) -> tuple[list[list[int]], list[list[int]], list[list[int]]] | None:
    """The chat-format recall views of a document (``disc_engine.recall``), one per chosen
    sentence (any sentence, the first included; ``num_splits`` of them): the student is asked
    about a name the sentence mentions and replies with the sentence from another of its names
    on (the whole sentence when it names nothing else); the teacher reads the whole document in
    the same user turn, before the same question. Returns (teacher contexts, student prompts,
    replies) as token ids; None when the run has no chat tokenizer or the document no text."""
    from disc_engine.evaluation._common import chat_prompt_ids, encode
    from disc_engine.recall import main_name, recall_prompt, reply_from_a_name, sentence_names, teacher_turn

    tokenizer = run.tokenizer
    if tokenizer is None or not getattr(tokenizer, "chat_template", None) or not doc.sentences:
        return None
    whole = [encode(tokenizer, sentence) for sentence in doc.sentences]
    chosen = anyorder_splits(whole, run.config.num_splits, run.split_rng)
    if not chosen:
        return None
    names = sentence_names(doc.sentences)
    fallback = main_name(names)
    document = " ".join(doc.sentences)
    contexts, prompts, replies = [], [], []
    for i in chosen:
        prompt, asked = recall_prompt(names[i], run.split_rng, fallback)
        prompts.append(chat_prompt_ids(tokenizer, prompt))
        contexts.append(chat_prompt_ids(tokenizer, teacher_turn(document, prompt)))
        reply = whole[i]
        if asked is not None:
            fragment = encode(tokenizer, reply_from_a_name(doc.sentences[i], names[i], asked, run.split_rng))
            reply = fragment if len(fragment) >= 2 else reply
        replies.append(reply)
    return contexts, prompts, replies


def _disc_recall_document_loss(run: RunContext, doc):
    """The paper's DiSC loss on the document plus its recall views' loss.

    DiSC stores what each sentence's prefix tells the teacher, in the document's own order; the
    recall views teach the same facts as chat replies that start from a name the question asks
    about, the first sentence included. A document without views (no chat tokenizer) is trained
    by DiSC alone; one without a DiSC split (a single short sentence) by its views alone.
    """
    from disc_engine.loss import context_distillation_loss

    paper, reason = _disc_document_loss(run, doc)
    views = recall_views(run, doc)
    if views is None:
        return paper, reason
    contexts, prompts, replies = views
    recall = context_distillation_loss(run.model, run.teacher, contexts, replies, run.config.temperature,
                                       max_context=run.max_context, student_prefixes=prompts)
    return (recall if paper is None else paper + recall), None


def _windowed_loss(run: RunContext, doc, window_loss: Callable[[list[int]], Any]):
    """A token-stream objective over a document cut into context-sized windows."""
    import torch

    tokens = [token for sentence in doc.sentence_ids for token in sentence]
    size = run.max_context or len(tokens) or 1
    windows = [w for w in (tokens[s:s + size] for s in range(0, len(tokens), size)) if len(w) >= 2]
    if not windows:
        return None, f"fewer than 2 tokens ({len(tokens)}): nothing to predict"
    predicted = sum(len(w) - 1 for w in windows)
    loss = torch.zeros((), device=next(run.model.parameters()).device)
    for window in windows:
        # Weighted by predicted tokens so a windowed document counts like an unwindowed one.
        loss = loss + window_loss(window) * ((len(window) - 1) / predicted)
    return loss, None


def _sft_document_loss(run: RunContext, doc):
    from disc_engine.loss import sft_loss

    return _windowed_loss(run, doc, lambda window: sft_loss(run.model, window))


def _sft_kl_document_loss(run: RunContext, doc):
    from disc_engine.loss import sft_kl_loss

    return _windowed_loss(run, doc, lambda window: sft_kl_loss(
        run.model, run.teacher, window, run.config.beta, SFT_KL_TEMPERATURE))


OBJECTIVES: dict[str, Objective] = {o.name: o for o in (
    Objective("disc", "distillation via split contexts (the paper's method: the teacher reads the "
              "preceding sentences, the student the sentence alone)",
              needs_teacher=True, reads_splits=True, document_loss=_disc_document_loss,
              group_loss=_disc_group_loss),
    Objective("disc_shuffled", "DiSC over a new random sentence order each time a document is "
              "trained (every sentence, the first included, is read after different others; one "
              "teacher forward per step)",
              needs_teacher=True, reads_splits=True, document_loss=_disc_shuffled_document_loss),
    Objective("disc_anyorder", "any-order context: for each chosen sentence the teacher reads every "
              "other sentence of the document, then that sentence; the student reads it alone",
              needs_teacher=True, reads_splits=True, document_loss=_disc_anyorder_document_loss),
    Objective("disc_recall", "DiSC plus recall views: the paper's loss, plus for each chosen sentence "
              "a chat turn asking about a name it mentions, answered by the sentence from another of "
              "its names on; the teacher reads the whole document before the same question",
              needs_teacher=True, reads_splits=True, document_loss=_disc_recall_document_loss),
    Objective("sft", "next-token cross-entropy on the documents (fine-tuning baseline)",
              needs_teacher=False, reads_splits=False, document_loss=_sft_document_loss),
    Objective("sft_kl", "cross-entropy + beta * KL to the parent on the document tokens (FT+KL baseline)",
              needs_teacher=True, reads_splits=False, document_loss=_sft_kl_document_loss),
)}
METHODS = tuple(OBJECTIVES)


def get_objective(name: str) -> Objective:
    try:
        return OBJECTIVES[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r}; known: {', '.join(OBJECTIVES)}") from None
