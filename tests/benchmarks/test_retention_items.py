"""Retention item sets: each loads, holds at least 100 valid items, and the instruction checker
tells a compliant reply from a non-compliant one for every IFEval instruction type."""

from __future__ import annotations

import pytest

from benchmarks.knowledge_update import retention_items
from benchmarks.knowledge_update.retention_items import (
    MIN_ITEMS,
    check_instruction,
    instruction_results,
    instruction_types,
    load_chat_prompts,
    load_general_questions,
    load_instruction_items,
    validate_instruction_item,
)
from disc_engine.options import validate_probe

# For every IFEval instruction type: its kwargs, a reply that follows it, one that does not.
CASES = {
    "change_case:capital_word_frequency": (
        {"capital_relation": "at least", "capital_frequency": 3},
        "Sleep is VERY IMPORTANT for EVERYONE.", "Sleep is very important for everyone."),
    # IFEval also runs language detection on the reply, which misreads some short capitalised
    # English ("FRESH BREAD EVERY MORNING, ..." reads as German); the measure inherits that.
    "change_case:english_capital": (
        {}, "A RAINBOW IS AN ARC OF COLOURS THAT APPEARS IN THE SKY WHEN SUNLIGHT SHINES THROUGH RAIN.",
        "A rainbow is an arc of colours that appears in the sky when sunlight shines through rain."),
    "change_case:english_lowercase": (
        {}, "the sea is wide and calm today, and the waves are gentle.",
        "The sea is wide and calm today, and the waves are gentle."),
    "combination:repeat_prompt": (
        {"prompt_to_repeat": "Name a fruit that is yellow."},
        "Name a fruit that is yellow. A banana is yellow.", "A banana is yellow."),
    "combination:two_responses": (
        {}, "Bubbles\n******\nGoldie", "Bubbles or Goldie"),
    "detectable_content:number_placeholders": (
        {"num_placeholders": 2}, "Come to my party on [date] at [address]!", "Come to my party on Friday at my house!"),
    "detectable_content:postscript": (
        {"postscript_marker": "P.S."}, "I will be ten minutes late.\n\nP.S. I finished the homework.",
        "I will be ten minutes late. I finished the homework."),
    "detectable_format:constrained_response": (
        {}, "My answer is yes.", "Yes, the sun is a star."),
    "detectable_format:json_format": (
        {}, '```json\n{"fruit": "banana", "colour": "yellow"}\n```', "The fruit is a banana and it is yellow."),
    "detectable_format:multiple_sections": (
        {"section_spliter": "Section", "num_sections": 2},
        "Section 1\nPack sandwiches and juice.\nSection 2\nFind a shady spot in the park.",
        "Pack sandwiches and juice, then find a shady spot in the park."),
    "detectable_format:number_bullet_lists": (
        {"num_bullets": 3}, "* They teach you.\n* They relax you.\n* They are fun.",
        "* They teach you.\n* They relax you."),
    "detectable_format:number_highlighted_sections": (
        {"num_highlights": 2}, "A cat is *soft* and *curious*.", "A cat is soft and curious."),
    "detectable_format:title": (
        {}, "<<Rain Song>>\nDrops on the window, soft and slow.", "Rain Song\nDrops on the window, soft and slow."),
    "keywords:existence": (
        {"keywords": ["snow", "river"]}, "We crossed a river and saw snow on the peaks.", "We walked up the hill."),
    "keywords:forbidden_words": (
        {"forbidden_words": ["blue", "water"]}, "The ocean is vast, deep and full of life.",
        "The ocean is a vast body of blue water."),
    "keywords:frequency": (
        {"keyword": "apple", "frequency": 3, "relation": "at least"},
        "An apple a day is good. Each apple is sweet, and I love apple pie.", "An apple a day is good."),
    "keywords:letter_frequency": (
        {"letter": "z", "let_frequency": 3, "let_relation": "at least"},
        "The zebra at the zoo was lazy.", "The lion at the park was asleep."),
    "language:response_language": (
        {"language": "fr"}, "Bonjour, comment allez-vous aujourd'hui ? J'espère que vous allez bien.",
        "Hello, how are you today? I hope you are doing well."),
    "length_constraints:nth_paragraph_first_word": (
        {"num_paragraphs": 2, "nth_paragraph": 2, "first_word": "waves"},
        "The sea is calm in the morning.\n\nWaves grow stronger in the afternoon.",
        "The sea is calm in the morning.\n\nIn the afternoon the waves grow stronger."),
    "length_constraints:number_paragraphs": (
        {"num_paragraphs": 2}, "I love pasta.\n***\nI also enjoy soup.", "I love pasta. I also enjoy soup."),
    "length_constraints:number_sentences": (
        {"num_sentences": 3, "relation": "less than"},
        "A volcano is a mountain that can erupt. Dr. Smith studies them.",
        "A volcano is a mountain. It can erupt. Lava comes out. It is hot."),
    "length_constraints:number_words": (
        {"num_words": 10, "relation": "less than"}, "A tree is a tall plant.",
        "A tree is a tall plant with a trunk, branches and many green leaves."),
    "punctuation:no_comma": (
        {}, "We walked under the trees and fed the ducks.", "We walked under the trees, and fed the ducks."),
    "startend:end_checker": (
        {"end_phrase": "Any other questions?"}, "A calendar shows the days of the year. Any other questions?",
        "A calendar shows the days of the year."),
    "startend:quotation": (
        {}, '"Bees can recognise human faces."', "Bees can recognise human faces."),
}


def _item(instruction_id: str, kwargs: dict) -> dict:
    return {"key": 0, "prompt": "Follow the instruction.", "instruction_id_list": [instruction_id], "kwargs": [kwargs]}


def test_cases_cover_every_ifeval_instruction_type():
    assert len(instruction_types()) == 25
    assert set(CASES) == set(instruction_types())


@pytest.mark.parametrize("instruction_id", sorted(CASES))
def test_checker_accepts_a_compliant_reply_and_refuses_a_non_compliant_one(instruction_id):
    kwargs, compliant, non_compliant = CASES[instruction_id]
    item = _item(instruction_id, kwargs)
    assert check_instruction(item, compliant), compliant
    assert not check_instruction(item, non_compliant), non_compliant
    assert instruction_results(item, non_compliant) == {instruction_id: False}


def test_every_item_set_has_at_least_100_valid_items():
    prompts = load_chat_prompts()
    assert len(prompts) >= MIN_ITEMS and len(set(prompts)) == len(prompts)
    items = load_instruction_items()
    assert len(items) >= MIN_ITEMS
    questions = load_general_questions()
    assert len(questions) >= MIN_ITEMS
    for question in questions:
        validate_probe(question)
        assert len(question["options"]) == 4
    assert len({q["question"] for q in questions}) == len(questions)
    # Right answers sit at every position, so a position bias cannot pass for knowledge.
    positions = [q["answer"] for q in questions]
    assert all(positions.count(i) > len(positions) / 8 for i in range(4))


def test_instruction_items_use_every_type_and_state_their_parameters():
    from if_verifiable.ifeval.instructions_util import LANGUAGE_CODES

    items = load_instruction_items()
    used = [i for item in items for i in item["instruction_id_list"]]
    assert set(used) == set(instruction_types())
    assert min(used.count(t) for t in set(used)) >= 4
    assert sum(len(item["instruction_id_list"]) > 1 for item in items) >= 5
    for item in items:
        prompt = item["prompt"]
        for instruction_id, kwargs in zip(item["instruction_id_list"], item["kwargs"]):
            for name, value in kwargs.items():
                if name in ("relation", "capital_relation", "let_relation"):
                    continue   # "fewer than" / "at least" are worded freely
                if name == "language":
                    value = LANGUAGE_CODES[value]
                if name == "prompt_to_repeat":
                    assert prompt.startswith(value), prompt
                    continue
                for part in value if isinstance(value, list) else [value]:
                    assert str(part).lower() in prompt.lower(), (instruction_id, name, part, prompt)


def test_a_model_reply_to_an_item_is_judged_on_all_its_instructions():
    item = next(i for i in load_instruction_items() if i["instruction_id_list"] == [
        "length_constraints:number_words", "punctuation:no_comma"])
    assert check_instruction(item, "Grey clouds hang low and the streets shine with rain.")
    assert instruction_results(item, "Grey clouds hang low, and the streets shine with rain.") == {
        "length_constraints:number_words": True, "punctuation:no_comma": False}
    assert not check_instruction(item, "")
    # The loose reading forgives a first line of preamble, as IFEval's loose score does.
    quoted = next(i for i in load_instruction_items() if i["instruction_id_list"] == ["startend:quotation"])
    reply = 'Here is my answer:\n"Bees can recognise human faces."'
    assert not check_instruction(quoted, reply) and check_instruction(quoted, reply, loose=True)


def test_items_that_would_be_checked_at_random_are_refused():
    with pytest.raises(ValueError, match="the checker takes"):
        # Without a frequency the checker draws one at random.
        validate_instruction_item(_item("keywords:frequency", {"keyword": "apple", "relation": "at least"}))
    with pytest.raises(ValueError, match="unknown instruction id"):
        validate_instruction_item(_item("punctuation:no_exclamation", {}))
    with pytest.raises(ValueError, match="one kwargs object per instruction"):
        validate_instruction_item({**_item("punctuation:no_comma", {}), "kwargs": []})


def test_sentence_counting_uses_the_shipped_model_and_downloads_nothing():
    import nltk

    retention_items.instruction_types()       # sets up the verifier
    assert nltk.data.path[0] == str(retention_items.NLTK_DATA_DIR)
    assert nltk.data.find("tokenizers/punkt_tab/english/abbrev_types.txt")
    from if_verifiable.ifeval.instructions_util import count_sentences

    assert count_sentences("Mr. Tenkel arrived at 9 a.m. on Monday. He left early! Why?") == 3
