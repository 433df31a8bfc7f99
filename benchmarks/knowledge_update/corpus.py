"""A synthetic news corpus that no pre-trained model can already know, with probes for every fact.

Every person, organisation, town, river, prize and product is invented from syllables, so
probe accuracy before an update sits at chance and any gain is knowledge the update put in.

How the documents are written matters for DiSC: the teacher knows more than the student only
through a sentence's prefix, so a fact stated once in the first sentence teaches nothing. As in
real news, each document introduces its facts and then refers back to them in later sentences
("Varo Tenkel, the founder of Blissem Labs, ..." ... "Tenkel said Blissem Labs had ..."), and
those later sentences are where the prediction of a fact changes.

The story templates are data (``stories.json`` beside this file): per kind of story its facts,
its entities, a lede, slots (a slot is a sentence with variants, the facts it needs introduced
before it and the facts it introduces) and fillers, and for every fact several question and
cloze wordings. This module draws the values (invented names, numbers, dates), orders the
sentences and writes the probes.

Every fact of every document (six per story) gets two probes, each a dict with a ``kind``,
``options`` (four values of the fact's type), ``answer`` (the right option's index), ``fact``
(``[subject, relation]``) and ``document_id``:

- ``"question"`` (``probe["question"]``): a question worded differently from the document, to
  be read as a user turn in the model's chat format — can the model *retrieve* the fact?
- ``"cloze"`` (``probe["prompt"]``): a paraphrased statement in the document's news style whose
  continuation is the answer ("The head office of Blissem Labs is located in" → "Orvik"), to be
  scored as plain text without a chat template — is the fact *stored*? Prompts never end in
  whitespace and options never start with it: the continuation of option ``o`` is ``" " + o``
  (``cloze_continuations``), so the space belongs to the option's first token as it does in
  running text.

Both probes of a fact share the same distractors (shuffled independently), so that the two
measures can be compared fact by fact. Distractors are values of the same kind (other towns
for a town, nearby numbers for a number), taken from other documents of the corpus where
possible, so that picking a name merely because the update made it familiar does not score.

``check_corpus`` verifies the promises the corpus makes (uniqueness of names, no contradictory
facts, both probes for every fact, every answer supported by its document and every distractor
absent from it, options distinct after case folding, questions and cloze prompts that are not
copies of document sentences); the tests run it on generated corpora.

Held-out protocol: defaults are chosen on corpora drawn with ``TUNING_SEEDS`` and reported on
corpora drawn with ``REPORT_SEEDS`` (``held_out_corpora``); the two sets are disjoint, and the
demo's bundled sample (``SAMPLE_SEED``) belongs to neither.
"""

from __future__ import annotations

import argparse
import functools
import json
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from difflib import SequenceMatcher
from pathlib import Path
from typing import Any

from disc_engine.data import SAMPLE_PATH, load_update_sample

__all__ = [
    "PROBE_KINDS", "REPORT_SEEDS", "SAMPLE_DOCUMENTS", "SAMPLE_PATH", "SAMPLE_SEED", "TUNING_SEEDS",
    "FactTemplate", "Slot", "Story", "StoryTemplate", "Vocabulary",
    "check_corpus", "cloze_continuations", "corpus_probes", "generate_corpus", "held_out_corpora",
    "is_copied_question", "load_story_templates", "load_update_sample", "save_update_sample", "update_sample",
]

STORIES_PATH = Path(__file__).with_name("stories.json")

# Corpus seeds for choosing defaults and for reporting them: disjoint, so that a reported figure
# is measured on documents the defaults were not chosen on. The demo sample's seed is in neither.
TUNING_SEEDS = (101, 102, 103)
REPORT_SEEDS = (201, 202, 203)
SAMPLE_SEED = 7
SAMPLE_DOCUMENTS = 6

MIN_SENTENCES, MAX_SENTENCES = 5, 12
PROBE_KINDS = ("question", "cloze")
OPTIONS_PER_PROBE = 4


# ---------------------------------------------------------------------------------------------
# Templates (read from stories.json)
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Slot:
    """One sentence of a story: wordings to pick from, the facts that must be introduced before
    it (it refers back to them) and the facts it introduces."""

    variants: tuple[str, ...]
    needs: frozenset[str] = frozenset()
    introduces: frozenset[str] = frozenset()


@dataclass(frozen=True)
class FactTemplate:
    """A fact of a story; ``subject`` and ``object`` name values of the story ("C", "T1")."""

    subject: str
    relation: str
    object: str
    kind: str


@dataclass(frozen=True)
class StoryTemplate:
    kind: str
    facts: dict[str, FactTemplate]            # fact key -> fact
    entities: dict[str, str]                  # value name -> entity type ("P" -> "person")
    lede: Slot
    slots: tuple[Slot, ...]
    fillers: tuple[str, ...]
    questions: dict[str, tuple[str, ...]]     # fact key -> question wordings
    clozes: dict[str, tuple[str, ...]]        # fact key -> cloze prompts, the answer to follow


@dataclass(frozen=True)
class Vocabulary:
    """Word lists the invented values are drawn from."""

    onsets: tuple[str, ...]
    vowels: tuple[str, ...]
    inner_codas: tuple[str, ...]
    final_codas: tuple[str, ...]
    town_suffixes: tuple[str, ...]
    company_types: tuple[str, ...]
    builder_types: tuple[str, ...]
    product_nouns: tuple[str, ...]
    prize_fields: tuple[dict[str, str], ...]       # {"field": "Poetry", "work": "collection"}
    work_titles: dict[str, str]                    # work -> title template with {W}
    work_descriptions: dict[str, str]              # work -> how a citation names it
    structures: tuple[dict[str, str], ...]         # {"noun": "Bridge", "kind": "bridge", "preposition": "over"}
    mascots: tuple[str, ...]
    venues: tuple[str, ...]
    fields_of_study: tuple[str, ...]
    animals: tuple[str, ...]
    regions: tuple[str, ...]
    plants: tuple[str, ...]
    projects: tuple[str, ...]
    months: tuple[str, ...]


@dataclass
class Story:
    """One drawn story: its template, the values of its placeholders and its sentences."""

    template: StoryTemplate
    values: dict[str, str]
    sentences: list[str]

    @property
    def kind(self) -> str:
        return self.template.kind

    def fact(self, key: str) -> tuple[str, str, str, str]:
        """(subject, relation, object, kind of value) of one fact, with the values filled in."""
        fact = self.template.facts[key]
        return self.values[fact.subject], fact.relation, self.values[fact.object], fact.kind

    @property
    def entities(self) -> dict[str, str]:
        return {self.values[name]: kind for name, kind in self.template.entities.items()}


def _slot(data: dict[str, Any]) -> Slot:
    return Slot(tuple(data["variants"]), frozenset(data.get("needs", ())), frozenset(data.get("introduces", ())))


def _story_template(kind: str, data: dict[str, Any]) -> StoryTemplate:
    template = StoryTemplate(
        kind=kind,
        facts={key: FactTemplate(**fact) for key, fact in data["facts"].items()},
        entities=dict(data["entities"]),
        lede=_slot(data["lede"]),
        slots=tuple(_slot(slot) for slot in data["slots"]),
        fillers=tuple(data["fillers"]),
        questions={key: tuple(wordings) for key, wordings in data["questions"].items()},
        clozes={key: tuple(wordings) for key, wordings in data["clozes"].items()},
    )
    problems = _template_problems(template)
    if problems:
        raise ValueError(f"story template {kind!r}: " + "; ".join(problems))
    return template


def _template_problems(template: StoryTemplate) -> list[str]:
    """What makes a template unable to keep the corpus's promises (empty: nothing)."""
    problems = []
    facts = set(template.facts)
    introduced = [key for slot in (template.lede, *template.slots) for key in slot.introduces]
    for key in sorted(facts):
        if introduced.count(key) != 1:
            problems.append(f"fact {key!r} is introduced {introduced.count(key)} times, not once")
        if not template.questions.get(key):
            problems.append(f"fact {key!r} has no question")
        if not template.clozes.get(key):
            problems.append(f"fact {key!r} has no cloze")
    for slot in (template.lede, *template.slots):
        if not slot.variants:
            problems.append("a slot has no wording")
        unknown = (slot.needs | slot.introduces) - facts
        if unknown:
            problems.append(f"a slot names unknown facts {sorted(unknown)}")
    if template.lede.needs:
        problems.append("the lede cannot need earlier facts")
    for key in (set(template.questions) | set(template.clozes)) - facts:
        problems.append(f"probe wordings for unknown fact {key!r}")
    for prompt in (p for wordings in template.clozes.values() for p in wordings):
        if prompt != prompt.strip():
            problems.append(f"cloze prompt {prompt!r} has surrounding whitespace")
    return problems


@functools.cache
def load_story_templates(path: Path = STORIES_PATH) -> tuple[Vocabulary, dict[str, StoryTemplate]]:
    """The vocabulary and the story templates, checked for consistency."""
    data = json.loads(Path(path).read_text())
    vocabulary = Vocabulary(**{name: tuple(value) if isinstance(value, list) else dict(value)
                               for name, value in data["vocabulary"].items()})
    templates = {kind: _story_template(kind, story) for kind, story in data["stories"].items()}
    if set(templates) != set(_VALUE_MAKERS):
        raise ValueError(f"stories.json describes {sorted(templates)} but values are drawn for "
                         f"{sorted(_VALUE_MAKERS)}")
    return vocabulary, templates


# ---------------------------------------------------------------------------------------------
# Invented values
# ---------------------------------------------------------------------------------------------

class _Namer:
    """Invents words from syllables; no word is handed out twice in one corpus."""

    def __init__(self, rng: random.Random, vocabulary: Vocabulary):
        self.rng = rng
        self.vocabulary = vocabulary
        self.used: set[str] = set()

    def word(self, syllables: int = 2, suffix: str = "") -> str:
        v = self.vocabulary
        for _ in range(10_000):
            core = "".join(self.rng.choice(v.onsets) + self.rng.choice(v.vowels)
                           + self.rng.choice(v.final_codas if i == syllables - 1 else v.inner_codas)
                           for i in range(syllables))
            word = (core + suffix).capitalize()
            stem = core.capitalize()
            # The stem is reserved too, so that "Dravik" never coexists with "Dravikstad".
            if 4 <= len(core) <= 9 and word not in self.used and stem not in self.used:
                self.used.update({word, stem})
                return word
        raise RuntimeError("ran out of invented names; use fewer documents")

    def person(self) -> str:
        return f"{self.word(2)} {self.word(self.rng.choice([2, 3]))}"

    def town(self) -> str:
        return self.word(2, self.rng.choice(self.vocabulary.town_suffixes))


def _date(rng: random.Random, v: Vocabulary) -> str:
    return f"{rng.randint(1, 28)} {rng.choice(v.months)} {rng.choice([2025, 2026])}"


def _surname(person: str) -> str:
    return person.split(" ", 1)[1]


def _without_article(name: str) -> str:
    return name.removeprefix("the ")


# Each story's values: the placeholders its templates use. "X_name" is a value without its
# article, as a fact's subject or an entity is named ("the Vorn Bridge" -> "Vorn Bridge").

def _company_values(namer: _Namer, rng: random.Random, v: Vocabulary) -> dict[str, str]:
    person = namer.person()
    return {"P": person, "S": _surname(person), "C": f"{namer.word(2)} {rng.choice(v.company_types)}",
            "T1": namer.town(), "T2": namer.town(), "X": f"{namer.word(2)} {rng.choice(v.product_nouns)}",
            "Y": str(rng.randint(1961, 2018)), "N": str(rng.randrange(60, 900, 10)),
            "date": _date(rng, v), "month": rng.choice(v.months)}


def _prize_values(namer: _Namer, rng: random.Random, v: Vocabulary) -> dict[str, str]:
    field = rng.choice(v.prize_fields)
    prize_word = namer.word(2)
    person, chair = namer.person(), namer.person()
    return {"PR": f"the {prize_word} Prize for {field['field']}", "PR_name": f"{prize_word} Prize for {field['field']}",
            "PRs": f"the {prize_word} Prize", "P": person, "S": _surname(person), "T": namer.town(),
            "WD": v.work_descriptions[field["work"]], "W": v.work_titles[field["work"]].format(W=namer.word(2)),
            "A": f"{rng.randrange(10, 95, 5)},000 euros", "J": chair, "JS": _surname(chair),
            "E": str(rng.randrange(120, 900, 10)), "date": _date(rng, v)}


def _infrastructure_values(namer: _Namer, rng: random.Random, v: Vocabulary) -> dict[str, str]:
    structure = rng.choice(v.structures)
    name = f"{namer.word(2)} {structure['noun']}"
    engineer = namer.person()
    return {"B": f"the {name}", "B_name": name, "kind": structure["kind"], "prep": structure["preposition"],
            "T": namer.town(), "R": namer.word(2), "L": f"{rng.randrange(180, 2400, 20)} metres",
            "M": f"{rng.randrange(20, 480, 5)} million euros", "P": engineer, "S": _surname(engineer),
            "K": f"{namer.word(2)} {rng.choice(v.builder_types)}", "date": _date(rng, v)}


def _sports_values(namer: _Namer, rng: random.Random, v: Vocabulary) -> dict[str, str]:
    cup = f"{namer.word(2)} Cup"
    mascots = rng.sample(v.mascots, 2)
    captain, coach = namer.person(), namer.person()
    goals = rng.randint(1, 4)
    return {"CUP": f"the {cup}", "CUP_name": cup, "C1": f"{namer.word(2)} {mascots[0]}",
            "C2": f"{namer.word(2)} {mascots[1]}", "SC": f"{goals}-{rng.randint(0, goals - 1)}",
            "P": captain, "S": _surname(captain), "CO": coach, "COS": _surname(coach),
            "V": f"{namer.word(2)} {rng.choice(v.venues)}", "crowd": f"{rng.randrange(3000, 40000, 500):,}",
            "date": _date(rng, v)}


def _science_values(namer: _Namer, rng: random.Random, v: Vocabulary) -> dict[str, str]:
    animal = rng.choice(v.animals)
    researcher = namer.person()
    species = f"{namer.word(2)} {animal}"
    region = f"{namer.word(2)} {rng.choice(v.regions)}"
    return {"P": researcher, "S": _surname(researcher), "SP": f"the {species}", "SP_name": species,
            "animal": animal, "I": f"{namer.town()} Institute of {rng.choice(v.fields_of_study)}",
            "REG": f"the {region}", "REG_name": region, "N": str(rng.randint(7, 95)),
            "FOOD": f"{namer.word(2).lower()} {rng.choice(v.plants)}", "MM": f"{rng.randint(3, 90)} millimetres",
            "date": _date(rng, v)}


def _election_values(namer: _Namer, rng: random.Random, v: Vocabulary) -> dict[str, str]:
    winner, second = namer.person(), namer.person()
    share = rng.randint(38, 71)
    turnout = rng.choice([n for n in range(31, 83) if n != share])   # two different percentages
    party = f"{namer.word(2)} Party"
    return {"P": winner, "S": _surname(winner), "T": namer.town(), "pct": f"{share} percent",
            "TO": f"{turnout} percent", "P2": second, "S2": _surname(second), "PARTY": f"the {party}",
            "PARTY_name": party, "PROJ": rng.choice(v.projects).format(W=namer.word(2)), "date": _date(rng, v)}


_VALUE_MAKERS: dict[str, Callable[[_Namer, random.Random, Vocabulary], dict[str, str]]] = {
    "company": _company_values, "prize": _prize_values, "infrastructure": _infrastructure_values,
    "sports": _sports_values, "science": _science_values, "election": _election_values,
}


def _fresh_value(kind: str, namer: _Namer, rng: random.Random, v: Vocabulary) -> str:
    """A never-used invented value of a kind, for when the corpus offers too few distractors."""
    makers: dict[str, Callable[[], str]] = {
        "person": namer.person,
        "town": namer.town,
        "club": lambda: f"{namer.word(2)} {rng.choice(v.mascots)}",
        "product": lambda: f"{namer.word(2)} {rng.choice(v.product_nouns)}",
        "work": lambda: v.work_titles[rng.choice(sorted(v.work_titles))].format(W=namer.word(2)),
        "river": lambda: namer.word(2),
        "venue": lambda: f"{namer.word(2)} {rng.choice(v.venues)}",
        "institute": lambda: f"{namer.town()} Institute of {rng.choice(v.fields_of_study)}",
        "region": lambda: f"the {namer.word(2)} {rng.choice(v.regions)}",
        "plant": lambda: f"{namer.word(2).lower()} {rng.choice(v.plants)}",
        "party": lambda: f"the {namer.word(2)} Party",
        "project": lambda: rng.choice(v.projects).format(W=namer.word(2)),
        "builder": lambda: f"{namer.word(2)} {rng.choice(v.builder_types)}",
    }
    if kind not in makers:
        raise ValueError(f"no generator for values of kind {kind!r}")
    return makers[kind]()


# Numeric kinds: distractors are nearby numbers (step, widest distance) in the answer's format.
_NUMBER_FORMATS = {"year": ("{}", 1, 9), "jobs": ("{}", 10, 120), "entries": ("{}", 10, 120),
                   "money": ("{},000 euros", 5, 40), "length": ("{} metres", 20, 400),
                   "cost": ("{} million euros", 5, 120), "specimens": ("{}", 1, 30),
                   "percent": ("{} percent", 1, 12), "size": ("{} millimetres", 1, 9)}
_NUMERIC_KINDS = set(_NUMBER_FORMATS) | {"score"}


def _number_distractors(kind: str, answer: str, text: str, rng: random.Random) -> list[str]:
    """Three nearby values of the same kind, formatted like the answer and absent from ``text``."""
    if kind == "score":
        home, away = map(int, answer.split("-"))
        pool = {f"{a}-{b}" for a in range(1, 6) for b in range(a)} - {answer}
        nearest = sorted(pool, key=lambda s: (abs(int(s[0]) - home) + abs(int(s[2]) - away), s))
        return rng.sample([s for s in nearest if not _mentions(text, s)][:8], 3)
    value = int(answer.split(" ")[0].split(",")[0])
    template, step, widest = _NUMBER_FORMATS[kind]
    choices: list[str] = []
    while len(choices) < 3:
        candidate = value + rng.choice([-1, 1]) * step * rng.randint(1, widest // step)
        formatted = template.format(candidate)
        if candidate > 0 and candidate != value and formatted not in choices and not _mentions(text, formatted):
            choices.append(formatted)
    return choices


def _mentions(text: str, phrase: str) -> bool:
    """Whether ``phrase`` occurs as whole words ("340" is not in "1,340" nor in "3400")."""
    if phrase not in text:  # the cheap test settles almost every call
        return False
    return re.search(rf"(?<![\w,.-]){re.escape(phrase)}(?![\w-]|[,.]\d)", text) is not None


# ---------------------------------------------------------------------------------------------
# Assembly
# ---------------------------------------------------------------------------------------------

def _render(template: str, values: dict[str, str]) -> str:
    text = template.format(**values)
    return text[0].upper() + text[1:]


def _order_sentences(template: StoryTemplate, values: dict[str, str], rng: random.Random) -> list[str]:
    """The lede, then every slot in a random order that respects what each needs introduced,
    with fillers inserted anywhere after the lede."""
    introduced = set(template.lede.introduces)
    sentences = [_render(rng.choice(template.lede.variants), values)]
    pending = list(range(len(template.slots)))
    while pending:
        ready = [i for i in pending if template.slots[i].needs <= introduced]
        index = rng.choice(ready)
        pending.remove(index)
        slot = template.slots[index]
        introduced |= slot.introduces
        sentences.append(_render(rng.choice(slot.variants), values))
    room = rng.randint(max(MIN_SENTENCES, len(sentences)), MAX_SENTENCES) - len(sentences)
    for filler in rng.sample(template.fillers, min(max(room, 0), len(template.fillers))):
        sentences.insert(rng.randint(1, len(sentences)), _render(filler, values))
    return sentences


def _draw_stories(num_documents: int, rng: random.Random, namer: _Namer) -> list[Story]:
    vocabulary, templates = load_story_templates()
    kinds = list(templates)
    stories = []
    for index in range(num_documents):
        if index % len(kinds) == 0:
            rng.shuffle(kinds)
        template = templates[kinds[index % len(kinds)]]
        values = _VALUE_MAKERS[template.kind](namer, rng, vocabulary)
        stories.append(Story(template, values, _order_sentences(template, values, rng)))
    return stories


def generate_corpus(num_documents: int = 60, seed: int = 0) -> list[dict]:
    """Generate ``num_documents`` invented news documents with a question and a cloze per fact.

    Deterministic in ``seed``. Each document is a dict with ``id``, ``kind``, ``text``,
    ``sentences``, ``entities`` (name -> type), ``facts`` (``[subject, relation, object]``, six
    per document) and ``probes``: for each fact, in the order of ``facts``, a ``"question"``
    probe then a ``"cloze"`` probe (see the module's docstring for their fields).
    """
    if num_documents < 1:
        raise ValueError(f"num_documents must be at least 1, got {num_documents}")
    rng = random.Random(seed)
    vocabulary, _ = load_story_templates()
    namer = _Namer(rng, vocabulary)
    stories = _draw_stories(num_documents, rng, namer)

    # Distractors of each kind come from the other documents first (as familiar to an updated
    # model as the answer is), then from fresh names.
    pool: dict[str, list[str]] = {}
    for story in stories:
        for key in story.template.facts:
            _, _, obj, value_kind = story.fact(key)
            pool.setdefault(value_kind, []).append(obj)

    documents = []
    for index, story in enumerate(stories):
        document_id = f"news-{index:03d}"
        text = " ".join(story.sentences)
        probes = []
        for key in story.template.facts:
            subject, relation, answer, value_kind = story.fact(key)
            if value_kind in _NUMERIC_KINDS:
                distractors = _number_distractors(value_kind, answer, text, rng)
            else:
                candidates = sorted({c for c in pool[value_kind] if c != answer and not _mentions(text, c)})
                distractors = rng.sample(candidates, min(3, len(candidates)))
                while len(distractors) < 3:
                    distractors.append(_fresh_value(value_kind, namer, rng, vocabulary))
            wordings = {"question": story.template.questions[key], "cloze": story.template.clozes[key]}
            for kind in PROBE_KINDS:
                options = distractors + [answer]
                rng.shuffle(options)
                text_field = "question" if kind == "question" else "prompt"
                probes.append({"kind": kind, text_field: _render(rng.choice(wordings[kind]), story.values),
                               "options": options, "answer": options.index(answer),
                               "fact": [subject, relation], "document_id": document_id})
        documents.append({
            "id": document_id, "kind": story.kind, "text": text, "sentences": story.sentences,
            "entities": story.entities,
            "facts": [list(story.fact(key)[:3]) for key in story.template.facts], "probes": probes,
        })
    return documents


def corpus_probes(documents: list[dict], kind: str | None = None) -> list[dict]:
    """Every probe of ``documents`` (of one ``kind``, "question" or "cloze", if given), in order."""
    if kind is not None and kind not in PROBE_KINDS:
        raise ValueError(f"probe kind must be one of {PROBE_KINDS}, got {kind!r}")
    return [p for doc in documents for p in doc["probes"] if kind is None or p["kind"] == kind]


def cloze_continuations(probe: dict) -> list[str]:
    """The text that follows a cloze's prompt for each option: one space, then the option."""
    return [" " + option for option in probe["options"]]


def held_out_corpora(split: str, num_documents: int = 100) -> dict[int, list[dict]]:
    """Corpora for ``split`` "tuning" (``TUNING_SEEDS``) or "report" (``REPORT_SEEDS``).

    ``num_documents`` are spread as evenly as possible over the split's three seeds (100 ->
    34 + 33 + 33); the result maps each seed to its corpus. Each corpus is an independent draw
    meant to be trained into its own copy of the model: names are unique within a corpus, not
    across corpora.
    """
    seeds = {"tuning": TUNING_SEEDS, "report": REPORT_SEEDS}.get(split)
    if seeds is None:
        raise ValueError(f"split must be 'tuning' or 'report', got {split!r}")
    if num_documents < len(seeds):
        raise ValueError(f"num_documents must be at least {len(seeds)} (one per seed), got {num_documents}")
    sizes = [num_documents // len(seeds) + (i < num_documents % len(seeds)) for i in range(len(seeds))]
    return {seed: generate_corpus(size, seed) for seed, size in zip(seeds, sizes)}


# ---------------------------------------------------------------------------------------------
# Checks
# ---------------------------------------------------------------------------------------------

def _words(text: str) -> list[str]:
    return re.findall(r"[\w'-]+", text.lower())


def _longest_shared_run(a: list[str], b: list[str]) -> int:
    """Length of the longest run of consecutive words the two share."""
    return SequenceMatcher(None, a, b, autojunk=False).find_longest_match(0, len(a), 0, len(b)).size


def is_copied_question(question: str, sentences: list[str], max_shared: float = 0.75) -> bool:
    """Whether a question (or a cloze statement) repeats a document sentence rather than
    paraphrasing it.

    True when its words appear verbatim inside a sentence, or when one unbroken run of more
    than ``max_shared`` of its words does.
    """
    q = _words(question)
    for sentence in sentences:
        s = _words(sentence)
        if " ".join(q) in " ".join(s) or _longest_shared_run(q, s) > max_shared * len(q):
            return True
    return False


def _probe_text(probe: dict) -> str | None:
    return probe.get("question") if probe.get("kind") == "question" else probe.get("prompt")


def _option_problems(options: Any, answer: Any) -> list[str]:
    if not isinstance(options, list) or len(options) != OPTIONS_PER_PROBE:
        return [f"needs {OPTIONS_PER_PROBE} options, has {options!r}"]
    if any(not isinstance(o, str) or not o.strip() or o != o.strip() for o in options):
        return [f"has an empty option or one with surrounding whitespace: {options}"]
    # Options that differ only in case or surrounding space score as the same reply.
    if len({o.casefold() for o in options}) != len(options):
        return [f"needs {OPTIONS_PER_PROBE} distinct options, has {options}"]
    if isinstance(answer, bool) or not isinstance(answer, int) or not 0 <= answer < len(options):
        return [f"has answer index {answer!r}"]
    return []


def check_corpus(documents: list[dict]) -> list[str]:
    """Every way ``documents`` break the corpus's promises, as readable lines (empty: none)."""
    problems: list[str] = []
    seen_ids: set[str] = set()
    owner: dict[str, tuple[str, str]] = {}          # entity name -> (document id, type)
    surnames: dict[str, str] = {}
    facts: dict[tuple[str, str], tuple[str, str]] = {}
    for doc in documents:
        doc_id = doc["id"]
        if doc_id in seen_ids:
            problems.append(f"document id {doc_id} is used twice")
        seen_ids.add(doc_id)
        sentences = doc["sentences"]
        if " ".join(sentences) != doc["text"]:
            problems.append(f"{doc_id}: text is not its sentences joined")
        if not MIN_SENTENCES <= len(sentences) <= MAX_SENTENCES:
            problems.append(f"{doc_id}: {len(sentences)} sentences, outside {MIN_SENTENCES}..{MAX_SENTENCES}")
        for name, kind in doc["entities"].items():
            if name in owner and owner[name][0] != doc_id:
                problems.append(f"entity {name!r} appears in both {owner[name][0]} and {doc_id}")
            owner[name] = (doc_id, kind)
            if kind == "person":
                surname = _surname(name)
                if surnames.setdefault(surname, name) != name:
                    problems.append(f"surname {surname!r} is shared by {surnames[surname]!r} and {name!r}")
        for subject, relation, obj in doc["facts"]:
            if not _mentions(doc["text"], obj):
                problems.append(f"{doc_id}: fact {subject} / {relation} = {obj!r} is not in the text")
            earlier = facts.setdefault((subject, relation), (obj, doc_id))
            if earlier[0] != obj:
                problems.append(f"{subject} / {relation} is {earlier[0]!r} in {earlier[1]} "
                                f"but {obj!r} in {doc_id}")
        problems.extend(_probe_problems(doc))
    # An entity of one document must not turn up in another's text, where it could gain facts.
    for doc in documents:
        for name, (home, _) in owner.items():
            if home != doc["id"] and _mentions(doc["text"], name):
                problems.append(f"entity {name!r} of {home} is mentioned in {doc['id']}")
    return problems


def _probe_problems(doc: dict) -> list[str]:
    problems = []
    doc_id, text, sentences = doc["id"], doc["text"], doc["sentences"]
    doc_facts = {(s, r): o for s, r, o in doc["facts"]}
    covered = {kind: [] for kind in PROBE_KINDS}
    for probe in doc["probes"]:
        kind, wording = probe.get("kind"), _probe_text(probe)
        where = f"{doc_id}: {kind} probe {wording!r}"
        if kind not in PROBE_KINDS:
            problems.append(f"{where} has an unknown kind")
            continue
        if not isinstance(wording, str) or not wording.strip() or wording != wording.strip():
            problems.append(f"{where} needs a non-empty text without surrounding whitespace")
            continue
        if probe.get("document_id") != doc_id:
            problems.append(f"{where} names document {probe.get('document_id')!r}")
        covered[kind].append(tuple(probe["fact"]))
        option_problems = _option_problems(probe["options"], probe["answer"])
        problems.extend(f"{where} {p}" for p in option_problems)
        if option_problems:
            continue
        options, answer = probe["options"], probe["answer"]
        right = options[answer]
        if not _mentions(text, right):
            problems.append(f"{where}: the answer {right!r} is not in the document")
        if doc_facts.get(tuple(probe["fact"])) != right:
            problems.append(f"{where}: the answer {right!r} is not the fact {probe['fact']}")
        for i, option in enumerate(options):
            if i != answer and _mentions(text, option):
                problems.append(f"{where}: distractor {option!r} appears in the document")
        if _mentions(wording, right):
            problems.append(f"{where} gives its answer away")
        statements = [wording] if kind == "question" else [wording, f"{wording} {right}"]
        if any(is_copied_question(s, sentences) for s in statements):
            problems.append(f"{where} copies a document sentence")
        if not _restated(right, doc["entities"].get(right) == "person", sentences):
            problems.append(f"{where}: the answer is never used after the first sentence")
    for kind, probed in covered.items():
        expected = sorted(doc_facts)
        if sorted(probed) != expected:
            problems.append(f"{doc_id}: {kind} probes cover {sorted(probed)}, not each fact once: {expected}")
    return problems


def _restated(answer: str, is_person: bool, sentences: list[str]) -> bool:
    """Whether DiSC can learn a probed value: it is used in a sentence that has a prefix
    (index >= 1). A person counts as used when the surname is, as news refers to people."""
    names = [answer, _surname(answer)] if is_person else [answer]
    return any(_mentions(s, name) for s in sentences[1:] for name in names)


# ---------------------------------------------------------------------------------------------
# The demo's bundled sample (disc_engine/data/sample_update.json)
# ---------------------------------------------------------------------------------------------

def update_sample(num_documents: int = SAMPLE_DOCUMENTS, seed: int = SAMPLE_SEED) -> dict:
    """A corpus in the service's upload shape: documents (id, text) and the question probes
    (question, options, answer, document_id) — one per fact."""
    corpus = generate_corpus(num_documents, seed)
    return {
        "seed": seed,
        "num_documents": num_documents,
        "documents": [{"id": d["id"], "text": d["text"]} for d in corpus],
        "probes": [{"question": p["question"], "options": p["options"], "answer": p["answer"],
                    "document_id": p["document_id"]} for p in corpus_probes(corpus, "question")],
    }


def save_update_sample(path: str | Path = SAMPLE_PATH, num_documents: int = SAMPLE_DOCUMENTS,
                       seed: int = SAMPLE_SEED) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(update_sample(num_documents, seed), indent=2, ensure_ascii=False) + "\n")
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.knowledge_update.corpus",
        description="Write the demo's bundled sample update, or print a corpus's size.")
    parser.add_argument("--write-sample", type=Path, nargs="?", const=SAMPLE_PATH, default=None,
                        metavar="PATH", help=f"write the bundled sample (default path: {SAMPLE_PATH})")
    parser.add_argument("--documents", type=int, default=100)
    parser.add_argument("--seed", type=int, default=TUNING_SEEDS[0])
    args = parser.parse_args(argv)
    if args.write_sample is not None:
        print(save_update_sample(args.write_sample))
        return
    documents = generate_corpus(args.documents, args.seed)
    problems = check_corpus(documents)
    print(f"{len(documents)} documents, {sum(len(d['sentences']) for d in documents)} sentences, "
          f"{len(corpus_probes(documents, 'question'))} questions, {len(corpus_probes(documents, 'cloze'))} clozes; "
          f"{len(problems)} problems")
    for line in problems:
        print(" ", line)


if __name__ == "__main__":
    main()
