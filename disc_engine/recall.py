"""Chat-format recall views of a document, for the ``disc_recall`` objective (torch-free).

A user asks a deployed chat model about a *thing* ("Who found the Dainbrein beetle?"); a news
document states the fact the other way round ("A team led by Glaimei Brenpel has found the
Dainbrein beetle"). Distilling the document as running text teaches what follows what in the
document's own order, so a question that starts from the other end finds little. A recall view
turns one sentence into a chat exchange that starts from a name the sentence mentions and is
answered by the sentence from another of its names on:

    user: Tell me about Dainbrein.      assistant: Glaimei Brenpel has found the Dainbrein beetle …

The names are found without a model: runs of capitalised words, where a capitalised word at a
sentence's start counts only if the document capitalises it (or the word after it) elsewhere and
never writes it in lower case (so "The", "So" and "Funding" opening a sentence are not names,
"Brenpel" opening one is). The prompts are
generic requests for what the model knows about a name; they are not the probes' questions.
"""

from __future__ import annotations

import random
import re

# Generic requests for what the model knows about a name ({} is the name).
RECALL_PROMPTS = (
    "Tell me about {}.",
    "What do you know about {}?",
    "What is the latest news about {}?",
    "What happened with {}?",
)
# For a document that names nothing.
GENERAL_PROMPT = "What is in the news?"
# How the teacher reads the document before the same request.
TEACHER_TURN = "{document}\n\n{prompt}"

# Words inside a name that are not capitalised ("Institute of Marine Studies").
_CONNECTORS = frozenset({"of"})
# Capitalised, but a date rather than a thing anyone asks about.
_CALENDAR = frozenset({
    "January", "February", "March", "April", "May", "June", "July", "August", "September",
    "October", "November", "December", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday",
    "Saturday", "Sunday",
})
# Sentence openers that are never part of a name, for documents too short to show them in lower case.
_OPENERS = frozenset({"a", "an", "the", "this", "that", "these", "those", "it", "its", "in", "on", "at",
                      "after", "before", "when", "while", "as", "but", "and", "so", "his", "her", "their"})
_WORD = re.compile(r"[^\W\d_][\w'’-]*")
_POSSESSIVE = re.compile(r"['’]s?$")


def _bare(word: str) -> str:
    return _POSSESSIVE.sub("", word)


def sentence_names(sentences: list[str]) -> list[list[str]]:
    """The names each sentence mentions (distinct, in order of appearance)."""
    words = [[(m.group(), m.start(), m.end()) for m in _WORD.finditer(s)] for s in sentences]
    # Capitalised away from a sentence's start: a name, not just a first word.
    named = {_bare(w) for ws in words for i, (w, _, _) in enumerate(ws)
             if i > 0 and w[0].isupper() and _bare(w) not in _CALENDAR}
    # Words the document also writes in lower case ("the", "so") never open a name.
    common = _OPENERS | {w for ws in words for w, _, _ in ws if w[0].islower()}
    return [_names_in(sentence, ws, named, common) for sentence, ws in zip(sentences, words)]


def _names_in(sentence: str, words: list[tuple[str, int, int]], named: set[str], common: set[str]) -> list[str]:
    names: list[str] = []
    run: list[tuple[str, int, int]] = []

    def close() -> None:
        while run and run[-1][0] in _CONNECTORS:
            run.pop()
        if run:
            name = _bare(sentence[run[0][1]:run[-1][2]])
            if name and name not in names:
                names.append(name)
        run.clear()

    for i, (word, start, end) in enumerate(words):
        adjacent = bool(run) and sentence[run[-1][2]:start] == " "
        # A first word is a name if the document names it elsewhere, or if a name follows it.
        opens_name = (i == 0 and word.lower() not in common
                      and (_bare(word) in named or (len(words) > 1 and _bare(words[1][0]) in named)))
        capital = word[0].isupper() and (i > 0 or opens_name) and _bare(word) not in _CALENDAR
        if capital:
            if run and not adjacent:
                close()
            run.append((word, start, end))
            if _bare(word) != word:         # a possessive ends the name
                close()
        elif word in _CONNECTORS and adjacent:
            run.append((word, start, end))
        else:
            close()
    close()
    return names


def main_name(names: list[list[str]]) -> str | None:
    """The name the document mentions in most sentences (the first such one), or None."""
    counts: dict[str, int] = {}
    for sentence in names:
        for name in sentence:
            counts[name] = counts.get(name, 0) + 1
    return max(counts, key=counts.__getitem__) if counts else None


def recall_prompt(names: list[str], rng: random.Random, fallback: str | None = None) -> tuple[str, str | None]:
    """A request about one of ``names`` (drawn with ``rng``); about ``fallback`` (the document's
    main name) when the sentence names nothing; the general request when neither exists. Returns
    the request and the name asked about."""
    if not names:
        names = [fallback] if fallback else []
    if not names:
        return GENERAL_PROMPT, None
    template = RECALL_PROMPTS[rng.randrange(len(RECALL_PROMPTS))]
    asked = names[rng.randrange(len(names))]
    return template.format(asked), asked


def reply_from_a_name(sentence: str, names: list[str], asked: str, rng: random.Random) -> str:
    """The sentence from one of its names other than the one ``asked`` about (drawn with ``rng``)
    to its end, so that the reply starts with what goes with the asked name; the whole sentence
    when it names nothing else."""
    others = [n for n in names if n != asked and n not in asked and sentence.find(n) > 0]
    if not others:
        return sentence
    return sentence[sentence.find(others[rng.randrange(len(others))]):]


def teacher_turn(document: str, prompt: str) -> str:
    return TEACHER_TURN.format(document=document, prompt=prompt)
