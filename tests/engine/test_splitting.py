"""Sentence splitting, per-sentence tokenization and the choice of DiSC split points."""

from __future__ import annotations

import random

import pytest

from disc_engine.splitting import (
    FALLBACK_CHUNK_TOKENS,
    MIN_SUFFIX_TOKENS,
    EmptyDocumentError,
    choose_split_indices,
    prepare_document,
    split_sentences,
)


def _sentences(*lengths: int) -> list[list[int]]:
    return [list(range(100 + i, 100 + i + n)) for i, n in enumerate(lengths)]


# --- split_sentences ---------------------------------------------------------------------------

def test_abbreviations_do_not_end_sentences():
    text = ("Dr. Smith met Mr. Jones at 5 p.m. on Jan. 3rd in Washington, D.C. for talks. "
            "They signed the deal, worth $4.5 million, e.g. for new roads.  Was it enough?\n\nNobody knows!")
    assert split_sentences(text) == [
        "Dr. Smith met Mr. Jones at 5 p.m. on Jan. 3rd in Washington, D.C. for talks.",
        "They signed the deal, worth $4.5 million, e.g. for new roads.",
        "Was it enough?",
        "Nobody knows!",
    ]


def test_whitespace_gives_no_sentences():
    assert split_sentences("") == []
    assert split_sentences(" \n\t ") == []


# --- prepare_document --------------------------------------------------------------------------

@pytest.mark.parametrize("text", ["", "   ", "\n\n\t"])
def test_empty_document_raises(tokenizer, text):
    with pytest.raises(EmptyDocumentError):
        prepare_document(text, tokenizer)
    assert issubclass(EmptyDocumentError, ValueError)


def test_each_sentence_tokenized_alone_with_a_leading_space(tokenizer):
    text = "The bridge opened in 2031.\n\nIt is 1,240 metres long.   Engineers praised it."
    doc = prepare_document(text, tokenizer)

    assert len(doc.sentence_ids) == 3
    assert doc.alterations == []
    assert doc.token_count == sum(len(ids) for ids in doc.sentence_ids)
    assert doc.sentence_ids[0] == tokenizer("The bridge opened in 2031.", add_special_tokens=False)["input_ids"]
    assert doc.sentence_ids[1] == tokenizer(" It is 1,240 metres long.", add_special_tokens=False)["input_ids"]
    decoded = tokenizer.decode([t for ids in doc.sentence_ids for t in ids])
    assert decoded == "The bridge opened in 2031. It is 1,240 metres long. Engineers praised it."
    assert tokenizer.bos_token_id not in doc.sentence_ids[0]


def test_one_sentence_falls_back_to_token_chunks(tokenizer):
    text = " ".join(f"word{i}" for i in range(60))  # one long sentence without punctuation
    whole = tokenizer(text, add_special_tokens=False)["input_ids"]
    doc = prepare_document(text, tokenizer)

    assert len(doc.sentence_ids) >= 2
    assert [t for ids in doc.sentence_ids for t in ids] == whole
    sizes = [len(ids) for ids in doc.sentence_ids]
    assert max(sizes) - min(sizes) <= 1
    assert max(sizes) <= FALLBACK_CHUNK_TOKENS
    assert len(doc.alterations) == 1 and "one sentence" in doc.alterations[0]
    assert choose_split_indices(doc.sentence_ids, 5, random.Random(0))


def test_short_one_sentence_document_still_splits_in_two(tokenizer):
    doc = prepare_document("Rain fell today.", tokenizer)
    assert len(doc.sentence_ids) == 2
    assert all(len(ids) >= MIN_SUFFIX_TOKENS for ids in doc.sentence_ids)
    assert choose_split_indices(doc.sentence_ids, 5, random.Random(0)) == [1]


def test_one_token_document_cannot_split(tokenizer):
    doc = prepare_document("Hi", tokenizer)
    assert doc.sentence_ids == [tokenizer("Hi", add_special_tokens=False)["input_ids"]]
    assert "too short" in doc.alterations[0]
    assert choose_split_indices(doc.sentence_ids, 5, random.Random(0)) == []



def test_a_sentence_over_the_limit_inside_a_document_is_cut_and_nothing_is_lost(tokenizer):
    long_sentence = " ".join(f"word{i}" for i in range(200))
    text = f"Short intro sentence here. {long_sentence}. A short ending."
    whole = prepare_document(text, tokenizer)
    doc = prepare_document(text, tokenizer, max_sentence_tokens=64)

    assert len(whole.sentence_ids) == 3 and len(whole.sentence_ids[1]) > 64
    # The same tokens in the same order, the long sentence now in pieces that fit.
    assert [t for ids in doc.sentence_ids for t in ids] == [t for ids in whole.sentence_ids for t in ids]
    assert doc.sentence_ids[0] == whole.sentence_ids[0] and doc.sentence_ids[-1] == whole.sentence_ids[-1]
    assert max(len(ids) for ids in doc.sentence_ids) <= FALLBACK_CHUNK_TOKENS
    assert len(doc.alterations) == 1 and doc.alterations[0].startswith(
        f"sentence 2 has {len(whole.sentence_ids[1])} tokens, more than 64: split at token level into")
    assert doc.first_sentence_spaced is not None   # the first sentence is whole: still reorderable
    # Every piece can be a suffix: with "all" each one is distilled with the text before it.
    assert choose_split_indices(doc.sentence_ids, "all", random.Random(0)) == list(range(1, len(doc.sentence_ids)))


def test_a_long_first_sentence_is_cut_and_the_document_is_no_longer_reordered(tokenizer):
    text = " ".join(f"word{i}" for i in range(200)) + ". Then a short one."
    doc = prepare_document(text, tokenizer, max_sentence_tokens=64)
    assert len(doc.sentence_ids) > 3 and doc.first_sentence_spaced is None
    assert "sentence 1 has" in doc.alterations[0]

# --- choose_split_indices ----------------------------------------------------------------------

def test_k_distinct_sorted_interior_and_last_always_included():
    sentences = _sentences(*([5] * 12))
    for seed in range(50):
        chosen = choose_split_indices(sentences, 5, random.Random(seed))
        assert len(chosen) == len(set(chosen)) == 5
        assert chosen == sorted(chosen)
        assert chosen[-1] == 11
        assert all(1 <= i <= 11 for i in chosen)


def test_draws_cover_the_interior_uniformly_enough():
    sentences = _sentences(*([5] * 6))
    seen = set()
    for seed in range(200):
        seen.update(choose_split_indices(sentences, 2, random.Random(seed)))
    assert seen == {1, 2, 3, 4, 5}


def test_fewer_sentences_than_k_takes_every_valid_one():
    assert choose_split_indices(_sentences(4, 4, 4), 5, random.Random(0)) == [1, 2]


def test_k_of_one_is_the_last_sentence():
    assert choose_split_indices(_sentences(4, 4, 4, 4), 1, random.Random(0)) == [3]


def test_all_takes_every_valid_sentence_after_the_first():
    sentences = _sentences(3, 1, 4, 2, 1)
    assert choose_split_indices(sentences, "all", random.Random(0)) == [2, 3]


def test_short_suffixes_are_never_chosen_and_last_valid_is_kept():
    sentences = _sentences(5, 1, 5, 1, 5, 1)  # last sentence has a single token
    for seed in range(20):
        chosen = choose_split_indices(sentences, 5, random.Random(seed))
        assert chosen == [2, 4]


def test_deterministic_for_a_given_rng_state():
    sentences = _sentences(*([5] * 20))
    first = choose_split_indices(sentences, 5, random.Random(1234))
    again = choose_split_indices(sentences, 5, random.Random(1234))
    other = [tuple(choose_split_indices(sentences, 5, random.Random(s))) for s in range(10)]
    assert first == again
    assert len(set(other)) > 1


def test_no_valid_split_gives_empty_list():
    assert choose_split_indices(_sentences(5), 5, random.Random(0)) == []
    assert choose_split_indices(_sentences(5, 1), 5, random.Random(0)) == []
    assert choose_split_indices([], "all", random.Random(0)) == []


@pytest.mark.parametrize("bad", [0, -1, "some", 2.0, True])
def test_bad_num_splits_rejected(bad):
    with pytest.raises(ValueError, match="num_splits"):
        choose_split_indices(_sentences(5, 5), bad, random.Random(0))
