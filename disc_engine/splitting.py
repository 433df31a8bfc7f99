"""Documents into sentences, sentences into token ids, and the choice of DiSC split points.

Tokenization follows the method's reference implementation: every sentence is tokenized on
its own, without special tokens, so a split's suffix is exactly one sentence's token ids and
the teacher's input is the concatenation of whole sentences. One deliberate difference: every
sentence after the first keeps one leading space (any whitespace run between two sentences,
paragraph breaks included, becomes a single space). With byte-level BPE tokenizers a word
after a space is a different token (" The") from the same word at the start of a text
("The"); keeping the space makes the concatenated sentences read, and tokenize, like running
text for the teacher, and gives the student suffixes that look like the middle of a document,
which is what they are.

Split points (``choose_split_indices``): ``k - 1`` distinct sentence indices drawn uniformly
from ``1 … n-1`` plus, always, the last sentence; sentences shorter than
``MIN_SUFFIX_TOKENS`` are never chosen.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from functools import lru_cache

MIN_SUFFIX_TOKENS = 2
# A one-sentence document is cut into chunks of about this many tokens (a typical English
# sentence) so that it still has split points.
FALLBACK_CHUNK_TOKENS = 32


class EmptyDocumentError(ValueError):
    """The document holds no text to learn from (empty or whitespace only)."""


@dataclass
class PreparedDocument:
    sentence_ids: list[list[int]]
    token_count: int
    alterations: list[str] = field(default_factory=list)
    # The first sentence as it reads after another one (with its leading space), for objectives
    # that reorder sentences; None when the document was cut at token level instead.
    first_sentence_spaced: list[int] | None = None
    # The sentences as text (before any token-level cut), for objectives that re-read them in
    # another format (``disc_recall``'s chat turns).
    sentences: list[str] = field(default_factory=list)


@lru_cache(maxsize=1)
def _segmenter():
    import pysbd

    # clean=False: pysbd must not rewrite the text (it would, e.g., join lines), only cut it.
    return pysbd.Segmenter(language="en", clean=False)


def split_sentences(text: str) -> list[str]:
    """Sentences of ``text`` (rule-based, offline), stripped, empties removed."""
    if not text or not text.strip():
        return []
    sentences = (s.strip() for s in _segmenter().segment(text))
    return [s for s in sentences if s]


def prepare_document(text: str, tokenizer, *, max_sentence_tokens: int | None = None) -> PreparedDocument:
    """Sentence token ids for one document, ready for ``choose_split_indices`` and ``disc_loss``.

    Raises ``EmptyDocumentError`` for empty or whitespace-only text. A document of one sentence
    has no sentence boundary to split at; it is cut at token level into chunks of about
    ``FALLBACK_CHUNK_TOKENS`` tokens (at least two), and ``alterations`` says so. So is any
    sentence longer than ``max_sentence_tokens``: as one suffix it would leave its teacher no
    room for a prefix (and be cut to the context), so most of its tokens would teach nothing.
    The pieces are contiguous, so every token of the document stays in some sentence.
    """
    if not text or not text.strip():
        raise EmptyDocumentError("document is empty or whitespace only")
    sentences = split_sentences(text)
    alterations: list[str] = []
    sentence_ids = [
        _encode(tokenizer, sentence if index == 0 else " " + sentence)
        for index, sentence in enumerate(sentences)
    ]
    sentence_ids = [ids for ids in sentence_ids if ids]
    if not sentence_ids:
        raise EmptyDocumentError("document produced no tokens")
    first_cut = False
    if max_sentence_tokens is not None and len(sentence_ids) > 1:
        pieces: list[list[int]] = []
        for number, ids in enumerate(sentence_ids):
            chunks = _token_chunks(ids) if len(ids) > max_sentence_tokens else [ids]
            if len(chunks) > 1:
                first_cut = first_cut or number == 0
                alterations.append(
                    f"sentence {number + 1} has {len(ids)} tokens, more than {max_sentence_tokens}: "
                    f"split at token level into {len(chunks)} chunks of ~{len(ids) // len(chunks)} tokens")
            pieces.extend(chunks)
        sentence_ids = pieces
    if len(sentence_ids) == 1:
        tokens = sentence_ids[0]
        chunks = _token_chunks(tokens)
        if len(chunks) > 1:
            sentence_ids = chunks
            alterations.append(
                f"one sentence: split at token level into {len(chunks)} chunks of ~{len(tokens) // len(chunks)} tokens")
        else:
            alterations.append(f"one sentence of {len(tokens)} token(s): too short to split")
    spaced = (_encode(tokenizer, " " + sentences[0])
              if len(sentences) > 1 and len(sentence_ids) > 1 and not first_cut else None)
    return PreparedDocument(
        sentence_ids=sentence_ids,
        token_count=sum(len(ids) for ids in sentence_ids),
        alterations=alterations,
        first_sentence_spaced=spaced,
        sentences=sentences,
    )


def choose_split_indices(sentence_ids: list[list[int]], num_splits: int | str,
                         rng: random.Random) -> list[int]:
    """Sentence indices at which to split a document, sorted.

    ``num_splits = k`` (an int ≥ 1) follows the paper: ``k - 1`` distinct indices drawn
    uniformly from the valid interior sentences ``1 … n-2`` plus, always, the last valid
    sentence; fewer when the document has fewer valid sentences. A sentence is valid when it
    has at least ``MIN_SUFFIX_TOKENS`` tokens (the loss predicts suffix tokens 2..L). Index 0 is
    never chosen: with no prefix the teacher knows nothing the student does not.

    ``num_splits = "all"`` (an extension beyond the paper) takes every valid sentence from
    index 1 on; the loss still needs only one teacher forward per document.

    Deterministic for a given ``rng`` state. Empty when the document has no valid split.
    """
    if isinstance(num_splits, str):
        if num_splits != "all":
            raise ValueError(f"num_splits must be a positive int or 'all', got {num_splits!r}")
    elif isinstance(num_splits, bool) or not isinstance(num_splits, int) or num_splits < 1:
        raise ValueError(f"num_splits must be a positive int or 'all', got {num_splits!r}")

    valid = [i for i in range(1, len(sentence_ids)) if len(sentence_ids[i]) >= MIN_SUFFIX_TOKENS]
    if not valid or num_splits == "all":
        return valid
    last, interior = valid[-1], valid[:-1]
    drawn = rng.sample(interior, min(num_splits - 1, len(interior)))
    return sorted(drawn + [last])


def _encode(tokenizer, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def _token_chunks(tokens: list[int]) -> list[list[int]]:
    """Near-equal chunks, each long enough to be a suffix; one chunk when that is impossible."""
    count = max(2, math.ceil(len(tokens) / FALLBACK_CHUNK_TOKENS))
    count = min(count, len(tokens) // MIN_SUFFIX_TOKENS)
    if count < 2:
        return [tokens]
    base, extra = divmod(len(tokens), count)
    chunks, start = [], 0
    for index in range(count):
        size = base + (1 if index < extra else 0)
        chunks.append(tokens[start:start + size])
        start += size
    return chunks
