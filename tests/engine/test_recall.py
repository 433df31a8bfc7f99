"""Names found in news sentences, and the chat requests built from them (``disc_engine.recall``)."""

from __future__ import annotations

import random

from disc_engine.recall import GENERAL_PROMPT, main_name, recall_prompt, sentence_names


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
    assert any(n in recall_prompt(names[0], rng) for n in names[0])
    assert "Dainbrein" in recall_prompt([], rng, fallback="Dainbrein")
    assert recall_prompt([], rng) == GENERAL_PROMPT
    assert main_name([[], []]) is None
