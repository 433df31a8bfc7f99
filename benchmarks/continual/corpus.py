"""A deterministic fact-change corpus: a lineage of daily news batches in which facts change.

The knowledge-update corpus (``benchmarks/knowledge_update/corpus.py``) teaches facts once;
a lineage updated every day also meets facts that *change*: a company gets a new chief
executive, a town's population is recounted, a club moves ground. This module draws such a
chain from a seed, with the same invented names (the knowledge-update corpus's ``_Namer`` and
vocabulary, imported), so that probe accuracy before training sits at chance.

The chain
---------
Subjects are invented companies, towns, clubs and universities; each has one or two facts of
the seven relations that plausibly change (``facts.json`` beside this file holds the
relations, their question and cloze wordings and the sentence templates):

=================  ============  =====================================================
relation key       subject       value
=================  ============  =====================================================
``ceo``            company       chief executive (a person)
``hq``             company       headquarters (a town)
``mayor``          town          mayor (a person)
``population``     town          population (a number, "48,200")
``coach``          club          head coach (a person)
``ground``         club          home ground (a venue)
``president``      university    president (a person)
=================  ============  =====================================================

- Day 0: one *profile* document per initial subject, stating all its facts.
- Days 1..D: profiles of ``new_entities_per_day`` new subjects (their facts are *new*), and one
  *update* document per changed fact, stating the new value in news style with the old one as
  former ("P has replaced A as chief executive of X"). About ``update_fraction`` of the facts
  that existed before the day change (at least one, never all, at most one fact per subject
  per day, different relations first, at most ``MAX_UPDATES_PER_FACT`` times per fact, and not
  the day after an earlier change: ``MIN_DAYS_BETWEEN_CHANGES``); every other fact is untouched
  and not mentioned. A new value is always a fresh value, never an earlier one.

As in the knowledge-update corpus, every document has several sentences and refers back to its
facts after the first sentence (by surname for people), since DiSC learns a fact only from
sentences whose prediction the earlier ones change. Each day's document order is shuffled.

API
---
``generate_chain(seed=0, days=8, initial_entities=12, new_entities_per_day=2,
update_fraction=0.15) -> Chain``, deterministic in its arguments.

- ``chain.days[d]`` (``Day``): ``documents`` (the upload shape: a list of ``{"id", "text"}``),
  ``records`` (the same documents with ``kind`` "profile" or "update", ``subject``, ``facts``
  (fact ids the document states), ``sentences``, ``text``), ``date``, ``new_facts`` and
  ``updated_facts`` (fact ids).
- ``chain.facts``: fact id -> ``Fact`` (``subject``, ``subject_type``, ``key``, ``relation``,
  ``kind``, ``history``: ``[(day, value), ...]``, oldest first, ``sources``: the document that
  stated each value; ``value_at(day)``, ``superseded_at(day)``).
- ``chain.entities``: every invented name in the documents -> ``{"type", "document"}`` (the
  document that first names it).
- ``chain.probes_after(day, kind=None)``: the probes a model trained on days 0..day should
  answer, two per fact known by then (a ``"question"`` and a ``"cloze"``), each a dict:

  ``kind``, ``question`` (chat question) or ``prompt`` (cloze statement, continued by
  ``" " + option``), ``options`` (four values of the fact's kind), ``answer`` (index of the value
  at ``day``), ``stale`` (indices of the fact's superseded values, every one of them: at most
  ``MAX_UPDATES_PER_FACT``, so at least one option is a plain distractor), ``fact`` (fact id),
  ``subject``, ``relation``, ``category`` ("new": introduced that day; "updated": its value
  changed that day; "untouched": neither — it was stated on an earlier day and not mentioned
  since), ``day``, ``introduced_on``, ``changed_on`` (day of the current value), ``version``
  (index into the history) and ``source_document`` (the document that stated the current
  value). Plain distractors are values of the same kind stated in the chain up to the day the
  value was set (familiar to an updated model), fresh names only where too few exist, and
  nearby numbers for a population. The probe of a fact's value is fixed when the value is set,
  so an untouched fact is asked the same question every day after.
- ``score_choices(probes, chosen)``: from the option index a model chose per probe, the
  benchmark's figures: ``new_accuracy``, ``updated_accuracy`` (the latest value of facts
  changed that day), ``stale_rate`` (share of probes with superseded options in which the model
  chose one), ``retention`` (accuracy on untouched facts), with their counts.
- ``chain.to_json()`` / ``python -m benchmarks.continual.corpus --out chain.json``: every day's
  records and probes, the facts with their histories, the entities and the parameters.
- ``check_chain(chain)``: every way the chain breaks its promises, as readable lines (empty:
  none): it regenerates from the same parameters and compares (determinism); no two entities
  share a name (after case folding) nor two people a surname; documents are their sentences
  joined, 5..12 sentences, and mention no value or subject of a fact they do not state; every
  value's document states it after the first sentence, and an update's document also names the
  value it replaces; a fact's history has increasing days, changes at least
  ``MIN_DAYS_BETWEEN_CHANGES`` apart, at most ``MAX_UPDATES_PER_FACT`` of them and no repeated
  value; every day >= 1 has an update and an untouched fact; every probe's answer is the
  fact's value at its day, its stale options are exactly the superseded values, no other
  option is any value the fact ever has, options are distinct after case folding, the wording
  names no option and is not a copy of a sentence of the subject's documents, and the category
  is right.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.knowledge_update.corpus import (
    MAX_SENTENCES,
    MIN_SENTENCES,
    OPTIONS_PER_PROBE,
    PROBE_KINDS,
    StoryTemplate,
    Vocabulary,
    _mentions,
    _Namer,
    _option_problems,
    _order_sentences,
    _render,
    _story_template,
    _surname,
    is_copied_question,
    load_story_templates,
)

__all__ = [
    "CATEGORIES", "DEFAULT_DAYS", "FACTS_PATH", "MAX_UPDATES_PER_FACT", "MIN_DAYS_BETWEEN_CHANGES",
    "Chain", "Day", "Fact", "Relation", "SubjectType",
    "check_chain", "generate_chain", "load_fact_templates", "score_choices",
]

FACTS_PATH = Path(__file__).with_name("facts.json")

DEFAULT_DAYS = 8                 # update days after day 0
MAX_UPDATES_PER_FACT = 2         # so every superseded value fits among the options beside a plain distractor
MIN_DAYS_BETWEEN_CHANGES = 2    # a value changed on day d changes again on day d + 2 at the earliest
CATEGORIES = ("new", "updated", "untouched")
VALUE_KINDS = ("person", "town", "number", "venue")
SUBJECT_TYPES = ("company", "town", "club", "university")
_FIRST_DAY = datetime.date(2026, 1, 5)     # day 0 falls within 300 days of it, drawn from the seed


# ---------------------------------------------------------------------------------------------
# Templates (read from facts.json, checked with the knowledge-update corpus's story rules)
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Relation:
    key: str
    subject_type: str
    relation: str                 # "chief executive"
    kind: str                     # kind of value: person, town, number, venue
    placeholder: str              # the value's placeholder in the templates ("P")
    questions: tuple[str, ...]
    clozes: tuple[str, ...]
    update: StoryTemplate         # the news that the value has changed


@dataclass(frozen=True)
class SubjectType:
    name: str
    relations: tuple[str, ...]
    profile: StoryTemplate        # the document that introduces a subject and all its facts


def _story_data(keys: Sequence[str], relations: dict[str, dict], subject_type: str, story: dict,
                old: bool) -> dict:
    """A story in the knowledge-update corpus's ``stories.json`` shape, for ``_story_template``."""
    facts, entities = {}, {"E": subject_type}
    for key in keys:
        spec = relations[key]
        facts[key] = {"subject": "E", "relation": spec["relation"], "object": spec["value"], "kind": spec["kind"]}
        if spec["kind"] != "number":
            entities[spec["value"]] = spec["kind"]
            if old:
                entities["OLD"] = spec["kind"]
    return {"facts": facts, "entities": entities, "lede": story["lede"], "slots": story["slots"],
            "fillers": story["fillers"], "questions": {k: relations[k]["questions"] for k in keys},
            "clozes": {k: relations[k]["clozes"] for k in keys}}


@functools.cache
def load_fact_templates(path: Path = FACTS_PATH) -> tuple[dict[str, SubjectType], dict[str, Relation]]:
    """The subject types and relations, with their templates checked for consistency."""
    data = json.loads(Path(path).read_text())
    specs = data["relations"]
    relations = {}
    for key, spec in specs.items():
        if spec["kind"] not in VALUE_KINDS:
            raise ValueError(f"relation {key!r}: unknown kind of value {spec['kind']!r}")
        update = _story_template(f"update:{key}", _story_data([key], specs, spec["subject"], spec["update"], True))
        relations[key] = Relation(key, spec["subject"], spec["relation"], spec["kind"], spec["value"],
                                  tuple(spec["questions"]), tuple(spec["clozes"]), update)
    subjects = {}
    for name, spec in data["subjects"].items():
        keys = tuple(spec["relations"])
        for key in keys:
            if key not in relations or relations[key].subject_type != name:
                raise ValueError(f"subject type {name!r} lists relation {key!r} of another subject type")
        placeholders = [relations[k].placeholder for k in keys]
        if len(set(placeholders)) != len(placeholders) or [relations[k].kind for k in keys].count("person") > 1:
            raise ValueError(f"subject type {name!r}: two relations share a placeholder or a person's surname")
        profile = _story_template(f"profile:{name}", _story_data(keys, specs, name, spec["profile"], False))
        subjects[name] = SubjectType(name, keys, profile)
    if set(subjects) != set(SUBJECT_TYPES):
        raise ValueError(f"facts.json describes subjects {sorted(subjects)}, "
                         f"values are drawn for {sorted(SUBJECT_TYPES)}")
    orphans = set(relations) - {k for s in subjects.values() for k in s.relations}
    if orphans:
        raise ValueError(f"relations {sorted(orphans)} belong to no subject type")
    return subjects, relations


# ---------------------------------------------------------------------------------------------
# The chain
# ---------------------------------------------------------------------------------------------

@dataclass
class Fact:
    id: str
    subject: str
    subject_type: str
    key: str
    relation: str
    kind: str
    history: list[tuple[int, str]] = field(default_factory=list)    # (day, value), oldest first
    sources: list[str] = field(default_factory=list)                # the document stating each value

    @property
    def introduced_on(self) -> int:
        return self.history[0][0]

    def version_at(self, day: int) -> int | None:
        """Index into ``history`` of the value at the end of ``day`` (None: not yet stated)."""
        versions = [i for i, (d, _) in enumerate(self.history) if d <= day]
        return versions[-1] if versions else None

    def value_at(self, day: int) -> str | None:
        version = self.version_at(day)
        return None if version is None else self.history[version][1]

    def superseded_at(self, day: int) -> list[str]:
        """The values replaced by the end of ``day``, most recent first."""
        version = self.version_at(day)
        return [] if version is None else [value for _, value in self.history[:version]][::-1]

    def to_json(self) -> dict:
        return {"subject": self.subject, "subject_type": self.subject_type, "key": self.key,
                "relation": self.relation, "kind": self.kind,
                "history": [[day, value] for day, value in self.history], "sources": list(self.sources)}


@dataclass
class Day:
    index: int
    date: str
    records: list[dict] = field(default_factory=list)
    new_facts: list[str] = field(default_factory=list)
    updated_facts: list[str] = field(default_factory=list)

    @property
    def documents(self) -> list[dict]:
        """The day's batch in the service's upload shape."""
        return [{"id": r["id"], "text": r["text"]} for r in self.records]


@dataclass
class Chain:
    seed: int
    params: dict[str, Any]
    days: list[Day]
    facts: dict[str, Fact]
    entities: dict[str, dict[str, str]]                  # name -> {"type", "document"}
    version_probes: dict[tuple[str, int], list[dict]]    # (fact id, version) -> [question, cloze]

    def probes_after(self, day: int, kind: str | None = None) -> list[dict]:
        """Two probes (question, cloze) per fact known at the end of ``day``, in fact order."""
        if not 0 <= day < len(self.days):
            raise ValueError(f"day must be in 0..{len(self.days) - 1}, got {day}")
        if kind is not None and kind not in PROBE_KINDS:
            raise ValueError(f"probe kind must be one of {PROBE_KINDS}, got {kind!r}")
        probes = []
        for fact in self.facts.values():
            version = fact.version_at(day)
            if version is None:
                continue
            changed_on = fact.history[version][0]
            category = ("new" if fact.introduced_on == day else
                        "updated" if changed_on == day else "untouched")
            for probe in self.version_probes[(fact.id, version)]:
                if kind is None or probe["kind"] == kind:
                    probes.append({**probe, "options": list(probe["options"]), "stale": list(probe["stale"]),
                                   "category": category, "day": day})
        return probes

    def to_json(self) -> dict:
        return {
            "seed": self.seed, "params": dict(self.params),
            "days": [{"day": d.index, "date": d.date, "documents": [dict(r) for r in d.records],
                      "new_facts": list(d.new_facts), "updated_facts": list(d.updated_facts),
                      "probes": self.probes_after(d.index)} for d in self.days],
            "facts": {fid: fact.to_json() for fid, fact in self.facts.items()},
            "entities": {name: dict(info) for name, info in self.entities.items()},
        }


# ---------------------------------------------------------------------------------------------
# Invented values
# ---------------------------------------------------------------------------------------------

def _subject_name(subject_type: str, namer: _Namer, rng: random.Random, v: Vocabulary) -> str:
    return {"company": lambda: f"{namer.word(2)} {rng.choice(v.company_types)}",
            "town": namer.town,
            "club": lambda: f"{namer.word(2)} {rng.choice(v.mascots)}",
            "university": lambda: f"{namer.word(2)} University"}[subject_type]()


def _fresh_value(kind: str, namer: _Namer, rng: random.Random, v: Vocabulary) -> str:
    """A never-used invented value of a (non-numeric) kind."""
    return {"person": namer.person, "town": namer.town,
            "venue": lambda: f"{namer.word(2)} {rng.choice(v.venues)}"}[kind]()


def _population(number: int) -> str:
    return f"{number:,}"


def _number(population: str) -> int:
    return int(population.replace(",", ""))


def _new_population(history: list[str], excluded: set[str], rng: random.Random) -> str:
    """A recount: 2..9 percent up or down from the last value, to the hundred, never an earlier
    value nor one in ``excluded`` (the options already offered for the fact)."""
    last = _number(history[-1])
    while True:
        change = rng.choice([-1, 1]) * rng.randint(2, 9) / 100
        value = _population(round(last * (1 + change) / 100) * 100)
        if value not in history and value not in excluded:
            return value


def _population_distractors(current: str, excluded: set[str], count: int, rng: random.Random) -> list[str]:
    """``count`` nearby populations (3..25 percent away, to the hundred), none in ``excluded``."""
    value, chosen = _number(current), []
    while len(chosen) < count:
        candidate = round(value * (1 + rng.choice([-1, 1]) * rng.randint(3, 25) / 100) / 100) * 100
        formatted = _population(candidate)
        if candidate > 0 and formatted != current and formatted not in excluded and formatted not in chosen:
            chosen.append(formatted)
    return chosen


def _story_values(fact_values: dict[str, tuple[Relation, str]], subject: str, date: str) -> dict[str, str]:
    values = {"E": subject, "date": date}
    for relation, value in fact_values.values():
        values[relation.placeholder] = value
        if relation.kind == "person":
            values["S"] = _surname(value)
    return values


# ---------------------------------------------------------------------------------------------
# Generation
# ---------------------------------------------------------------------------------------------

class _Builder:
    def __init__(self, seed: int, params: dict[str, Any]):
        self.rng = random.Random(seed)
        self.vocabulary, _ = load_story_templates()
        self.subject_types, self.relations = load_fact_templates()
        self.namer = _Namer(self.rng, self.vocabulary)
        self.chain = Chain(seed, params, [], {}, {}, {})
        self.pool: dict[str, list[str]] = {kind: [] for kind in VALUE_KINDS}     # values stated so far
        self.subject_facts: dict[str, list[str]] = {}                            # subject -> fact ids
        self.type_cycle: list[str] = []
        self.populations: set[str] = set()          # every population stated: no two towns share one

    def _next_subject_type(self) -> str:
        if not self.type_cycle:
            self.type_cycle = list(SUBJECT_TYPES)
            self.rng.shuffle(self.type_cycle)
        return self.type_cycle.pop()

    def _register(self, name: str, kind: str, document: str) -> None:
        if name in self.chain.entities:        # the namer never hands out a name twice
            earlier = self.chain.entities[name]["document"]
            raise RuntimeError(f"{name!r} of {document} is already an entity of {earlier}")
        self.chain.entities[name] = {"type": kind, "document": document}

    def _remember(self, kind: str, value: str) -> None:
        if value not in self.pool[kind]:
            self.pool[kind].append(value)

    def profile(self, day: int, date: str) -> dict:
        """A new subject with all its facts, and the document that introduces them."""
        subject_type = self.subject_types[self._next_subject_type()]
        subject = _subject_name(subject_type.name, self.namer, self.rng, self.vocabulary)
        fact_values, fact_ids = {}, []
        for key in subject_type.relations:
            relation = self.relations[key]
            if relation.kind == "number":
                value = _population(self.rng.randrange(4_000, 180_000, 100))
                while value in self.populations:
                    value = _population(self.rng.randrange(4_000, 180_000, 100))
                self.populations.add(value)
            else:
                value = _fresh_value(relation.kind, self.namer, self.rng, self.vocabulary)
            fact_id = f"f{len(self.chain.facts):03d}"
            self.chain.facts[fact_id] = Fact(fact_id, subject, subject_type.name, key, relation.relation,
                                             relation.kind, [(day, value)], [])
            fact_values[fact_id] = (relation, value)
            fact_ids.append(fact_id)
        self.subject_facts[subject] = fact_ids
        values = _story_values(fact_values, subject, date)
        sentences = _order_sentences(subject_type.profile, values, self.rng)
        return {"kind": "profile", "subject": subject, "facts": fact_ids, "sentences": sentences,
                "_entities": [(subject, subject_type.name)] + [(value, relation.kind) for relation, value
                                                              in fact_values.values() if relation.kind != "number"]}

    def update(self, fact: Fact, day: int, date: str) -> dict:
        """A fresh value for ``fact`` and the news that states it."""
        relation = self.relations[fact.key]
        values_so_far = [value for _, value in fact.history]
        old = values_so_far[-1]
        if relation.kind == "number":
            # A distractor offered for an earlier value must not become the answer later.
            offered = {option for version in range(len(values_so_far))
                       for probe in self.chain.version_probes[(fact.id, version)] for option in probe["options"]}
            value = _new_population(values_so_far, offered | self.populations, self.rng)
            self.populations.add(value)
        else:
            value = _fresh_value(relation.kind, self.namer, self.rng, self.vocabulary)
        fact.history.append((day, value))
        values = _story_values({fact.id: (relation, value)}, fact.subject, date)
        values["OLD"] = old
        if relation.kind == "person":
            values["OLDS"] = _surname(old)
        if relation.kind == "number":
            rising = _number(value) > _number(old)
            values.update(risen="risen" if rising else "fallen", up="up" if rising else "down",
                          grew="grew" if rising else "shrank")
        sentences = _order_sentences(relation.update, values, self.rng)
        entities = [(value, relation.kind)] if relation.kind != "number" else []
        return {"kind": "update", "subject": fact.subject, "facts": [fact.id], "sentences": sentences,
                "_entities": entities}

    def choose_updates(self, day: int, fraction: float) -> list[Fact]:
        existing = [f for f in self.chain.facts.values() if f.introduced_on < day]
        eligible = [f for f in existing if len(f.history) == 1 or (
            len(f.history) <= MAX_UPDATES_PER_FACT and f.history[-1][0] <= day - MIN_DAYS_BETWEEN_CHANGES)]
        wanted = min(max(1, round(fraction * len(existing))), len(existing) - 1)
        self.rng.shuffle(eligible)
        chosen: list[Fact] = []
        # At most one fact per subject; relations not yet changed that day first, for variety.
        for fresh_relations_only in (True, False):
            for fact in eligible:
                if len(chosen) == wanted:
                    break
                if fact in chosen or fact.subject in {f.subject for f in chosen}:
                    continue
                if fresh_relations_only and fact.key in {f.key for f in chosen}:
                    continue
                chosen.append(fact)
        if wanted < 1 or not chosen:
            raise ValueError(f"day {day}: no fact left to update while leaving one untouched; "
                             "use more entities or fewer days")
        return sorted(chosen, key=lambda f: f.id)

    def version_probes(self, fact: Fact, version: int, day: int) -> list[dict]:
        """The question and cloze of one value of a fact, fixed on the day the value is set."""
        relation = self.relations[fact.key]
        current = fact.history[version][1]
        stale = [value for _, value in fact.history[:version]][::-1]
        excluded = {value for _, value in fact.history}
        plain = OPTIONS_PER_PROBE - 1 - len(stale)
        if fact.kind == "number":
            distractors = _population_distractors(current, excluded, plain, self.rng)
        else:
            candidates = sorted(v for v in self.pool[fact.kind] if v not in excluded)
            distractors = self.rng.sample(candidates, min(plain, len(candidates)))
            while len(distractors) < plain:
                distractors.append(_fresh_value(fact.kind, self.namer, self.rng, self.vocabulary))
        wordings = {"question": relation.questions, "cloze": relation.clozes}
        probes = []
        for kind in PROBE_KINDS:
            options = [current, *stale, *distractors]
            self.rng.shuffle(options)
            text_field = "question" if kind == "question" else "prompt"
            probes.append({
                "kind": kind, text_field: _render(self.rng.choice(wordings[kind]), {"E": fact.subject}),
                "options": options, "answer": options.index(current),
                "stale": sorted(options.index(value) for value in stale),
                "fact": fact.id, "subject": fact.subject, "relation": fact.relation,
                "introduced_on": fact.introduced_on, "changed_on": fact.history[version][0], "version": version,
                "source_document": fact.sources[version],
            })
        return probes

    def day(self, index: int, date: str, new_subjects: int, fraction: float) -> Day:
        day = Day(index, date)
        updates = self.choose_updates(index, fraction) if index > 0 else []
        records = [self.profile(index, date) for _ in range(new_subjects)]
        records += [self.update(fact, index, date) for fact in updates]
        self.rng.shuffle(records)
        for number, record in enumerate(records):
            record["id"] = f"day{index:02d}-{number:02d}"
            record["text"] = " ".join(record["sentences"])
            for name, kind in record.pop("_entities"):
                self._register(name, kind, record["id"])
            for fact_id in record["facts"]:
                fact = self.chain.facts[fact_id]
                fact.sources.append(record["id"])
                self._remember(fact.kind, fact.history[-1][1])
                if fact.subject_type == "town" and record["kind"] == "profile":
                    self._remember("town", fact.subject)     # a town subject is a familiar town too
        day.records = [{key: r[key] for key in ("id", "kind", "subject", "facts", "sentences", "text")}
                       for r in records]
        day.new_facts = sorted(f for r in records if r["kind"] == "profile" for f in r["facts"])
        day.updated_facts = [f.id for f in updates]
        for fact_id in sorted(day.new_facts + day.updated_facts):
            fact = self.chain.facts[fact_id]
            version = len(fact.history) - 1
            self.chain.version_probes[(fact_id, version)] = self.version_probes(fact, version, index)
        return day


def generate_chain(seed: int = 0, days: int = DEFAULT_DAYS, initial_entities: int = 12,
                   new_entities_per_day: int = 2, update_fraction: float = 0.15) -> Chain:
    """Draw a chain of ``days + 1`` daily batches (day 0, then ``days`` update days).

    ``initial_entities`` subjects are introduced on day 0 and ``new_entities_per_day`` on each
    later day (subject types in turn: company, town, club, university, in a seeded order); on
    each later day ``update_fraction`` of the facts that existed before it change (at least one).
    Deterministic in its arguments.
    """
    if days < 0:
        raise ValueError(f"days must be at least 0, got {days}")
    if initial_entities < 2:
        raise ValueError(f"initial_entities must be at least 2, got {initial_entities}")
    if new_entities_per_day < 0:
        raise ValueError(f"new_entities_per_day must be at least 0, got {new_entities_per_day}")
    if not 0 < update_fraction <= 1:
        raise ValueError(f"update_fraction must be in (0, 1], got {update_fraction}")
    params = {"seed": seed, "days": days, "initial_entities": initial_entities,
              "new_entities_per_day": new_entities_per_day, "update_fraction": update_fraction}
    builder = _Builder(seed, params)
    start = _FIRST_DAY + datetime.timedelta(days=builder.rng.randrange(300))
    for index in range(days + 1):
        date = start + datetime.timedelta(days=index)
        date_text = f"{date.day} {builder.vocabulary.months[date.month - 1]} {date.year}"
        subjects = initial_entities if index == 0 else new_entities_per_day
        builder.chain.days.append(builder.day(index, date_text, subjects, update_fraction))
    return builder.chain


# ---------------------------------------------------------------------------------------------
# Scoring
# ---------------------------------------------------------------------------------------------

def _share(hits: list[bool]) -> float | None:
    return sum(hits) / len(hits) if hits else None


def score_choices(probes: Sequence[dict], chosen: Sequence[int]) -> dict[str, Any]:
    """The benchmark's figures from the option a model chose for each probe (same order).

    ``new_accuracy``, ``updated_accuracy`` and ``retention`` are accuracies over the probes of
    category "new", "updated" and "untouched"; ``stale_rate`` is the share of probes with a
    superseded option (of any category) in which a superseded value was chosen. A figure with
    no probes is None; ``counts`` gives the number of probes behind each.
    """
    if len(probes) != len(chosen):
        raise ValueError(f"{len(probes)} probes but {len(chosen)} choices")
    right = {category: [] for category in CATEGORIES}
    stale = []
    for probe, choice in zip(probes, chosen):
        right[probe["category"]].append(choice == probe["answer"])
        if probe["stale"]:
            stale.append(choice in probe["stale"])
    return {"new_accuracy": _share(right["new"]), "updated_accuracy": _share(right["updated"]),
            "stale_rate": _share(stale), "retention": _share(right["untouched"]),
            "counts": {"new": len(right["new"]), "updated": len(right["updated"]),
                       "with_stale": len(stale), "untouched": len(right["untouched"])}}


# ---------------------------------------------------------------------------------------------
# Checks
# ---------------------------------------------------------------------------------------------

def _stated_after_first(value: str, kind: str, sentences: list[str]) -> bool:
    names = [value, _surname(value)] if kind == "person" else [value]
    return any(_mentions(s, name) for s in sentences[1:] for name in names)


def check_chain(chain: Chain) -> list[str]:
    """Every way ``chain`` breaks its promises, as readable lines (empty: none)."""
    problems: list[str] = []
    try:
        if generate_chain(**chain.params).to_json() != chain.to_json():
            problems.append(f"the chain differs from a fresh draw with its parameters {chain.params}")
    except (TypeError, ValueError) as exc:
        problems.append(f"cannot redraw the chain from its parameters: {exc}")
    problems += _entity_problems(chain)
    records = {}
    for day in chain.days:
        for record in day.records:
            if record["id"] in records:
                problems.append(f"document id {record['id']} is used twice")
            records[record["id"]] = (day.index, record)
    problems += _document_problems(chain, records)
    problems += _history_problems(chain, records)
    problems += _day_problems(chain)
    problems += _all_probe_problems(chain, records)
    return problems


def _entity_problems(chain: Chain) -> list[str]:
    problems = []
    folded: dict[str, str] = {}
    surnames: dict[str, str] = {}
    for name, info in chain.entities.items():
        if folded.setdefault(name.casefold(), name) != name:
            problems.append(f"entities {folded[name.casefold()]!r} and {name!r} share a name")
        if info["type"] == "person":
            surname = _surname(name)
            if surnames.setdefault(surname, name) != name:
                problems.append(f"surname {surname!r} is shared by {surnames[surname]!r} and {name!r}")
    # Each fact's values and subject are registered, so no two of them can silently coincide.
    for fact in chain.facts.values():
        for name in [fact.subject] + [v for _, v in fact.history if fact.kind != "number"]:
            if name not in chain.entities:
                problems.append(f"{fact.id}: {name!r} is not among the entities")
    subjects = {f.subject for f in chain.facts.values()}
    values = {v for f in chain.facts.values() if f.kind != "number" for _, v in f.history}
    for name in subjects & values:
        problems.append(f"{name!r} is both a subject and a value")
    return problems


def _document_problems(chain: Chain, records: dict[str, tuple[int, dict]]) -> list[str]:
    problems = []
    for name, info in chain.entities.items():
        if info["document"] not in records or not _mentions(records[info["document"]][1]["text"], name):
            problems.append(f"entity {name!r} is not named in its document {info['document']}")
    for doc_id, (_, record) in records.items():
        if " ".join(record["sentences"]) != record["text"]:
            problems.append(f"{doc_id}: text is not its sentences joined")
        if not MIN_SENTENCES <= len(record["sentences"]) <= MAX_SENTENCES:
            problems.append(f"{doc_id}: {len(record['sentences'])} sentences, outside {MIN_SENTENCES}..{MAX_SENTENCES}")
        stated = set(record["facts"])
        if {chain.facts[f].subject for f in stated} != {record["subject"]}:
            problems.append(f"{doc_id}: states facts of other subjects than {record['subject']!r}")
        # Nothing leaks: a document mentions no value and no subject of a fact it does not state.
        for fact in chain.facts.values():
            if fact.id in stated:
                continue
            leaked = [v for _, v in fact.history if _mentions(record["text"], v)]
            if fact.subject != record["subject"] and _mentions(record["text"], fact.subject):
                leaked.append(fact.subject)
            if leaked:
                problems.append(f"{doc_id}: mentions {leaked} of {fact.id}, a fact it does not state")
    return problems


def _history_problems(chain: Chain, records: dict[str, tuple[int, dict]]) -> list[str]:
    problems = []
    for fact in chain.facts.values():
        days = [d for d, _ in fact.history]
        values = [v for _, v in fact.history]
        if days != sorted(set(days)):
            problems.append(f"{fact.id}: history days {days} do not increase")
        if len(set(values)) != len(values):
            problems.append(f"{fact.id}: a value recurs in its history {values}")
        if any(later - earlier < MIN_DAYS_BETWEEN_CHANGES for earlier, later in zip(days[1:], days[2:])):
            problems.append(f"{fact.id}: changes on days {days}, closer than {MIN_DAYS_BETWEEN_CHANGES} days")
        if len(values) - 1 > MAX_UPDATES_PER_FACT:
            problems.append(f"{fact.id}: updated {len(values) - 1} times, more than {MAX_UPDATES_PER_FACT}")
        if len(fact.sources) != len(fact.history):
            problems.append(f"{fact.id}: {len(fact.sources)} sources for {len(fact.history)} values")
            continue
        for version, ((day, value), doc_id) in enumerate(zip(fact.history, fact.sources)):
            if doc_id not in records:
                problems.append(f"{fact.id}: source {doc_id} does not exist")
                continue
            doc_day, record = records[doc_id]
            where = f"{fact.id} = {value!r} (day {day}, {doc_id})"
            if doc_day != day or fact.id not in record["facts"]:
                problems.append(f"{where}: the source is not that day's document for the fact")
            if record["kind"] != ("profile" if version == 0 else "update"):
                problems.append(f"{where}: a {record['kind']} document states version {version}")
            if not _mentions(record["text"], value):
                problems.append(f"{where}: the document does not state the value")
            elif not _stated_after_first(value, fact.kind, record["sentences"]):
                problems.append(f"{where}: the value is never used after the first sentence")
            if version and not _mentions(record["text"], values[version - 1]):
                problems.append(f"{where}: the update does not name the value it replaces")
    return problems


def _day_problems(chain: Chain) -> list[str]:
    problems = []
    for day in chain.days:
        existing = [f for f in chain.facts.values() if f.introduced_on < day.index]
        changed = [f.id for f in existing if any(d == day.index for d, _ in f.history)]
        introduced = [f.id for f in chain.facts.values() if f.introduced_on == day.index]
        if sorted(changed) != sorted(day.updated_facts) or sorted(introduced) != sorted(day.new_facts):
            problems.append(f"day {day.index}: its lists of new and updated facts disagree with the histories")
        if day.index > 0 and not changed:
            problems.append(f"day {day.index}: no fact is updated")
        if day.index > 0 and len(changed) == len(existing):
            problems.append(f"day {day.index}: no earlier fact is left untouched")
    return problems


def _all_probe_problems(chain: Chain, records: dict[str, tuple[int, dict]]) -> list[str]:
    problems = []
    sentences_of: dict[str, list[str]] = {}
    for _, record in records.values():
        sentences_of.setdefault(record["subject"], []).extend(record["sentences"])
    copied: dict[tuple[str, str], bool] = {}
    for day in chain.days:
        probes = chain.probes_after(day.index)
        known = sorted(f.id for f in chain.facts.values() if f.introduced_on <= day.index)
        for kind in PROBE_KINDS:
            if sorted(p["fact"] for p in probes if p["kind"] == kind) != known:
                problems.append(f"day {day.index}: {kind} probes do not cover each known fact once")
        for probe in probes:
            problems += _probe_problems(chain.facts[probe["fact"]], probe, day.index, sentences_of, copied)
    return problems


def _probe_problems(fact: Fact, probe: dict, day: int, sentences_of: dict[str, list[str]],
                    copied: dict[tuple[str, str], bool]) -> list[str]:
    kind = probe.get("kind")
    wording = probe.get("question") if kind == "question" else probe.get("prompt")
    where = f"day {day}, {fact.id}: {kind} probe {wording!r}"
    if kind not in PROBE_KINDS or not isinstance(wording, str) or not wording or wording != wording.strip():
        return [f"{where} needs a known kind and a non-empty text without surrounding whitespace"]
    problems = [f"{where} {p}" for p in _option_problems(probe.get("options"), probe.get("answer"))]
    if problems:
        return problems
    options, answer, stale = probe["options"], probe["answer"], probe.get("stale", [])
    if options[answer] != fact.value_at(day):
        problems.append(f"{where}: the answer {options[answer]!r} is not the value {fact.value_at(day)!r}")
    superseded = fact.superseded_at(day)
    if sorted(options[i] for i in stale if 0 <= i < len(options)) != sorted(superseded) \
            or len(set(stale)) != len(stale) or answer in stale:
        problems.append(f"{where}: stale options {stale} are not exactly the superseded values {superseded}")
    history = {v for _, v in fact.history}
    for i, option in enumerate(options):
        if i != answer and i not in stale and option in history:
            problems.append(f"{where}: distractor {option!r} is a value of the fact")
        if _mentions(wording, option):
            problems.append(f"{where} names the option {option!r}")
    version = fact.version_at(day)
    changed_on = fact.history[version][0]
    category = "new" if fact.introduced_on == day else "updated" if changed_on == day else "untouched"
    if probe.get("category") != category or probe.get("day") != day:
        problems.append(f"{where}: category {probe.get('category')!r}, expected {category!r}")
    if probe.get("source_document") != fact.sources[version]:
        problems.append(f"{where}: names the source {probe.get('source_document')!r}")
    if kind == "cloze" and wording.endswith((".", "?", ",")):
        problems.append(f"{where}: a cloze prompt must read as an unfinished statement")
    statements = [wording] if kind == "question" else [wording, f"{wording} {options[answer]}"]
    for statement in statements:
        key = (fact.subject, statement)
        if key not in copied:
            copied[key] = is_copied_question(statement, sentences_of.get(fact.subject, []))
        if copied[key]:
            problems.append(f"{where} copies a sentence of the documents about {fact.subject!r}")
    return problems


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.continual.corpus",
        description="Draw a fact-change chain, check it, print its size and optionally write it as JSON.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--days", type=int, default=DEFAULT_DAYS)
    parser.add_argument("--initial-entities", type=int, default=12)
    parser.add_argument("--new-entities-per-day", type=int, default=2)
    parser.add_argument("--update-fraction", type=float, default=0.15)
    parser.add_argument("--out", type=Path, default=None, help="write the chain as JSON here")
    args = parser.parse_args(argv)
    chain = generate_chain(args.seed, args.days, args.initial_entities, args.new_entities_per_day,
                           args.update_fraction)
    problems = check_chain(chain)
    for day in chain.days:
        questions = chain.probes_after(day.index, "question")
        counts = {category: sum(p["category"] == category for p in questions) for category in CATEGORIES}
        with_stale = sum(bool(p["stale"]) for p in questions)
        print(f"day {day.index} ({day.date}): {len(day.records)} documents, {len(day.new_facts)} new facts, "
              f"{len(day.updated_facts)} updated; questions after it: {counts['new']} new, {counts['updated']} "
              f"updated, {counts['untouched']} untouched, {with_stale} with stale options (and as many clozes)")
    print(f"{len(chain.facts)} facts, {len(chain.entities)} entities; {len(problems)} problems")
    for line in problems:
        print(" ", line)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(chain.to_json(), indent=2, ensure_ascii=False) + "\n")
        print(args.out)


if __name__ == "__main__":
    main()
