"""Names found in news sentences, and the chat requests built from them (``disc_engine.recall``)."""

from __future__ import annotations

import random

from disc_engine.recall import GENERAL_PROMPT, main_name, recall_prompt, reply_from_a_name, sentence_names


def test_names_are_capitalised_runs_and_first_words_only_when_named_elsewhere():
    sentences = [
        "A team led by Glaimei Brenpel has found the Dainbrein beetle on 21 April 2026.",
        "Brenpel works at the Braisfukford Institute of Marine Studies.",
        "Funding from Troshev Works's owners paid for it.",
        "So far the team has collected 76 specimens.",
        "Fermeilt Dongevan was elected.",
    ]
    assert sentence_names(sentences) == [
        ["Glaimei Brenpel", "Dainbrein"],             # "A" opens the sentence; "April" is a date
        ["Brenpel", "Braisfukford Institute of Marine Studies"],   # named elsewhere; "of" inside
        ["Troshev Works"],                            # possessive stripped; "Funding" is not a name
        [],                                           # "So" opens the sentence and names nothing
        ["Fermeilt Dongevan"],                        # a first word followed by a name
    ]


def test_prompts_ask_about_a_name_of_the_sentence_or_the_documents_main_one():
    names = [["Glaimei Brenpel", "Dainbrein"], ["Brenpel"], [], ["Brenpel", "Dainbrein"]]
    assert main_name(names) == "Dainbrein"   # in 2 sentences, as is Brenpel; the first such one wins
    rng = random.Random(0)
    prompt, asked = recall_prompt(names[0], rng)
    assert asked in names[0] and asked in prompt
    assert recall_prompt([], rng, fallback="Dainbrein")[1] == "Dainbrein"
    assert recall_prompt([], rng) == (GENERAL_PROMPT, None)
    assert main_name([[], []]) is None


def test_a_reply_starts_from_another_name_than_the_one_asked_about():
    sentence = "A team led by Glaimei Brenpel has found the Dainbrein beetle in the Heitreik Hills."
    names = sentence_names([sentence])[0]
    assert names == ["Glaimei Brenpel", "Dainbrein", "Heitreik Hills"]
    replies = {reply_from_a_name(sentence, names, "Dainbrein", random.Random(seed)) for seed in range(20)}
    assert replies == {"Glaimei Brenpel has found the Dainbrein beetle in the Heitreik Hills.", "Heitreik Hills."}
    # Nothing else named: the whole sentence.
    assert reply_from_a_name("Brenpel said so.", ["Brenpel"], "Brenpel", random.Random(0)) == "Brenpel said so."
