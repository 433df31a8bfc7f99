"""The fact-change chain: deterministic, histories that match the documents, probes that know
which option is current and which are stale, and a check that catches broken promises."""

from __future__ import annotations

import copy
import json
import random

import pytest

from benchmarks.continual import corpus
from benchmarks.continual.corpus import (
    CATEGORIES,
    MAX_UPDATES_PER_FACT,
    MIN_DAYS_BETWEEN_CHANGES,
    check_chain,
    generate_chain,
    load_fact_templates,
    score_choices,
)
from benchmarks.knowledge_update.corpus import _mentions, _Namer, _render, is_copied_question, load_story_templates
from disc_engine.options import validate_probe


@pytest.fixture(scope="module")
def chain() -> corpus.Chain:
    return generate_chain(seed=0)


def _question_shape(probe: dict) -> dict:
    return {"question": probe.get("question") or probe["prompt"], "options": probe["options"],
            "answer": probe["answer"]}


def test_same_seed_same_chain_other_seed_other_chain(chain):
    assert generate_chain(seed=0).to_json() == chain.to_json()
    other = generate_chain(seed=1)
    texts = {r["text"] for day in chain.days for r in day.records}
    assert not texts & {r["text"] for day in other.days for r in day.records}


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 11, 12345])
def test_chain_keeps_its_promises(seed):
    assert check_chain(generate_chain(seed=seed)) == []


@pytest.mark.parametrize("params", [
    {"days": 20},
    {"days": 12, "initial_entities": 3, "new_entities_per_day": 1},
    {"days": 10, "initial_entities": 30, "new_entities_per_day": 5, "update_fraction": 0.4},
    {"days": 0},
])
def test_other_shapes_keep_their_promises(params):
    assert check_chain(generate_chain(seed=5, **params)) == []


def test_default_shape(chain):
    assert len(chain.days) == corpus.DEFAULT_DAYS + 1 >= 9
    assert [d.index for d in chain.days] == list(range(len(chain.days)))
    assert len(chain.days[0].records) == 12
    assert all(r["kind"] == "profile" for r in chain.days[0].records)
    assert {f.key for f in chain.facts.values()} == set(load_fact_templates()[1])
    for day in chain.days:
        assert all(set(doc) == {"id", "text"} for doc in day.documents)
        assert [doc["id"] for doc in day.documents] == [r["id"] for r in day.records]
    assert len({day.date for day in chain.days}) == len(chain.days)


def test_updates_every_day_and_some_facts_stay_untouched(chain):
    for day in chain.days[1:]:
        assert day.updated_facts, day.index
        assert len(day.new_facts) >= 1
        probes = chain.probes_after(day.index)
        assert {p["category"] for p in probes} == set(CATEGORIES), day.index
        # At most one fact per subject changes on a day.
        subjects = [chain.facts[f].subject for f in day.updated_facts]
        assert len(subjects) == len(set(subjects))
    never_updated = [f for f in chain.facts.values() if len(f.history) == 1 and f.introduced_on == 0]
    assert len(never_updated) >= 3
    updated_twice = [f for f in chain.facts.values() if len(f.history) == 1 + MAX_UPDATES_PER_FACT]
    assert updated_twice, "some fact should change more than once over the chain"
    assert max(len(f.history) for f in chain.facts.values()) <= 1 + MAX_UPDATES_PER_FACT
    kinds_updated = {f.key for f in chain.facts.values() if len(f.history) > 1}
    assert len(kinds_updated) >= 5


def test_histories_match_the_documents(chain):
    records = {r["id"]: (day.index, r) for day in chain.days for r in day.records}
    for fact in chain.facts.values():
        days = [d for d, _ in fact.history]
        assert days == sorted(set(days))
        assert all(later - earlier >= MIN_DAYS_BETWEEN_CHANGES for earlier, later in zip(days[1:], days[2:]))
        assert len({v for _, v in fact.history}) == len(fact.history)
        for version, ((day, value), source) in enumerate(zip(fact.history, fact.sources)):
            doc_day, record = records[source]
            assert doc_day == day and fact.id in record["facts"]
            assert _mentions(record["text"], value)
            if version == 0:
                assert record["kind"] == "profile" and fact.id in chain.days[day].new_facts
            else:
                assert record["kind"] == "update" and fact.id in chain.days[day].updated_facts
                assert _mentions(record["text"], fact.history[version - 1][1]), "names the old value"
                assert record["facts"] == [fact.id]
        for day in range(len(chain.days)):
            stated = [v for d, v in fact.history if d <= day]
            assert fact.value_at(day) == (stated[-1] if stated else None)
            assert fact.superseded_at(day) == stated[:-1][::-1]


def test_untouched_facts_are_not_mentioned_on_the_day(chain):
    for day in chain.days[1:]:
        text = " ".join(r["text"] for r in day.records)
        stated = set(day.new_facts) | set(day.updated_facts)
        for fact in chain.facts.values():
            if fact.id not in stated and fact.introduced_on < day.index:
                assert not any(_mentions(text, v) for _, v in fact.history), (day.index, fact.id)
                assert not _mentions(text, fact.subject) or any(
                    chain.facts[f].subject == fact.subject for f in stated), (day.index, fact.id)


def test_probes_know_the_current_and_the_stale_values(chain):
    for day in chain.days:
        probes = chain.probes_after(day.index)
        known = [f for f in chain.facts.values() if f.introduced_on <= day.index]
        assert len(probes) == 2 * len(known)
        for probe in probes:
            fact = chain.facts[probe["fact"]]
            options = probe["options"]
            validate_probe(_question_shape(probe))
            assert len(options) == 4 and len({o.casefold() for o in options}) == 4
            assert options[probe["answer"]] == fact.value_at(day.index)
            assert sorted(options[i] for i in probe["stale"]) == sorted(fact.superseded_at(day.index))
            assert probe["answer"] not in probe["stale"]
            plain = [o for i, o in enumerate(options) if i != probe["answer"] and i not in probe["stale"]]
            assert plain and not {v for _, v in fact.history} & set(plain)
            assert probe["subject"] == fact.subject and probe["relation"] == fact.relation
            expected = ("new" if fact.introduced_on == day.index else
                        "updated" if probe["changed_on"] == day.index else "untouched")
            assert probe["category"] == expected and probe["day"] == day.index
            if probe["kind"] == "cloze":
                assert not probe["prompt"].endswith((" ", ".", "?")) and "question" not in probe
            else:
                assert probe["question"].endswith("?") and "prompt" not in probe
        assert sum(p["category"] == "new" for p in probes) == 2 * len(day.new_facts)
        assert sum(p["category"] == "updated" for p in probes) == 2 * len(day.updated_facts)
        assert all(p["stale"] for p in probes if p["category"] == "updated")
    with pytest.raises(ValueError, match="day must be"):
        chain.probes_after(len(chain.days))
    with pytest.raises(ValueError, match="probe kind"):
        chain.probes_after(0, "essay")


def test_question_and_cloze_share_options_and_a_fact_keeps_its_probe_until_it_changes(chain):
    last = len(chain.days) - 1
    for fact in chain.facts.values():
        for version, (day, _) in enumerate(fact.history):
            question, cloze = (p for p in chain.probes_after(day) if p["fact"] == fact.id)
            assert sorted(question["options"]) == sorted(cloze["options"])
            assert question["version"] == cloze["version"] == version
            until = fact.history[version + 1][0] - 1 if version + 1 < len(fact.history) else last
            later = [p for p in chain.probes_after(until) if p["fact"] == fact.id]
            strip = ("category", "day")
            assert [{k: v for k, v in p.items() if k not in strip} for p in later] == \
                   [{k: v for k, v in p.items() if k not in strip} for p in (question, cloze)]


def test_answers_and_stale_options_are_spread_over_positions():
    probes = [p for seed in (0, 1, 2) for p in generate_chain(seed=seed).probes_after(corpus.DEFAULT_DAYS)]
    answers = [p["answer"] for p in probes]
    assert all(answers.count(i) > len(answers) / 8 for i in range(4))
    stale = [i for p in probes for i in p["stale"]]
    assert all(stale.count(i) > len(stale) / 8 for i in range(4))


def test_every_template_wording_renders_and_no_probe_wording_copies_a_sentence():
    # Exhaustive over facts.json, so a bad wording fails here rather than in some rare draw.
    subjects, relations = load_fact_templates()
    vocabulary, _ = load_story_templates()
    rng = random.Random(0)
    namer = _Namer(rng, vocabulary)
    for subject_type in subjects.values():
        subject = corpus._subject_name(subject_type.name, namer, rng, vocabulary)
        values = {"E": subject, "date": "3 March 2026", "OLD": "", "OLDS": "",
                  "risen": "risen", "up": "up", "grew": "grew"}
        olds = {}
        for key in subject_type.relations:
            relation = relations[key]
            if relation.kind == "number":
                value, olds[key] = "48,200", "47,100"
            else:
                value, olds[key] = (corpus._fresh_value(relation.kind, namer, rng, vocabulary) for _ in range(2))
            values[relation.placeholder] = value
            if relation.kind == "person":
                values["S"] = value.split(" ", 1)[1]
        sentences = []
        for key in subject_type.relations:
            relation = relations[key]
            update_values = dict(values, OLD=olds[key], OLDS=olds[key].split(" ", 1)[-1])
            templates = [(subject_type.profile, values), (relation.update, update_values)]
            for template, story_values in templates:
                wordings = [w for slot in (template.lede, *template.slots) for w in slot.variants]
                sentences += [_render(w, story_values) for w in (*wordings, *template.fillers)]
        for key in subject_type.relations:
            relation = relations[key]
            answer = values[relation.placeholder]
            for wording in relation.questions:
                question = _render(wording, {"E": subject})
                assert not is_copied_question(question, sentences), question
            for wording in relation.clozes:
                prompt = _render(wording, {"E": subject})
                assert prompt == prompt.strip() and not prompt.endswith((".", "?", ","))
                for statement in (prompt, f"{prompt} {answer}"):
                    assert not is_copied_question(statement, sentences), statement


def test_score_choices(chain):
    probes = chain.probes_after(5)
    perfect = score_choices(probes, [p["answer"] for p in probes])
    assert perfect["new_accuracy"] == perfect["updated_accuracy"] == perfect["retention"] == 1.0
    assert perfect["stale_rate"] == 0.0
    assert perfect["counts"]["new"] + perfect["counts"]["updated"] + perfect["counts"]["untouched"] == len(probes)
    stuck = score_choices(probes, [p["stale"][0] if p["stale"] else p["answer"] for p in probes])
    assert stuck["stale_rate"] == 1.0 and stuck["updated_accuracy"] == 0.0 and stuck["new_accuracy"] == 1.0
    assert score_choices(chain.probes_after(0), [0] * len(chain.probes_after(0)))["stale_rate"] is None
    with pytest.raises(ValueError, match="choices"):
        score_choices(probes, [0])


def test_json_export_from_the_command_line(tmp_path, capsys):
    out = tmp_path / "chain.json"
    corpus.main(["--seed", "3", "--days", "9", "--out", str(out)])
    printed = capsys.readouterr().out
    assert "0 problems" in printed and "day 9" in printed
    data = json.loads(out.read_text())
    assert data == json.loads(json.dumps(generate_chain(seed=3, days=9).to_json()))
    assert data["params"] == {"seed": 3, "days": 9, "initial_entities": 12, "new_entities_per_day": 2,
                              "update_fraction": 0.15}
    assert len(data["days"]) == 10
    fact_id, fact = next((k, f) for k, f in data["facts"].items() if len(f["history"]) > 1)
    assert all(isinstance(day, int) and isinstance(value, str) for day, value in fact["history"])
    day, value = fact["history"][1]
    probe = next(p for p in data["days"][day]["probes"] if p["fact"] == fact_id)
    assert probe["options"][probe["answer"]] == value and probe["category"] == "updated"


def test_bad_parameters_are_refused():
    for params, message in [({"days": -1}, "days"), ({"initial_entities": 1}, "initial_entities"),
                            ({"update_fraction": 0}, "update_fraction"), ({"update_fraction": 1.5}, "update_fraction"),
                            ({"new_entities_per_day": -1}, "new_entities_per_day")]:
        with pytest.raises(ValueError, match=message):
            generate_chain(**params)
    # Two subjects and nothing new: the facts run out of updates long before 40 days.
    with pytest.raises(ValueError, match="no fact left to update"):
        generate_chain(days=40, initial_entities=2, new_entities_per_day=0)


# --- the check finds what it promises to find --------------------------------------------------

def _broken(chain: corpus.Chain) -> corpus.Chain:
    return copy.deepcopy(chain)


def _updated_fact(chain: corpus.Chain) -> corpus.Fact:
    return next(f for f in chain.facts.values() if len(f.history) > 1)


def test_check_finds_a_wrong_answer(chain):
    broken = _broken(chain)
    fact = _updated_fact(broken)
    version = len(fact.history) - 1
    for probe in broken.version_probes[(fact.id, version)]:
        probe["answer"] = probe["stale"][0]
        probe["stale"] = [i for i in range(4) if i != probe["answer"]][:len(probe["stale"])]
    problems = check_chain(broken)
    assert any(fact.id in p and "is not the value" in p for p in problems)


def test_check_finds_stale_options_that_are_not_the_superseded_values(chain):
    broken = _broken(chain)
    fact = _updated_fact(broken)
    probe = broken.version_probes[(fact.id, 1)][0]
    probe["stale"] = []
    problems = check_chain(broken)
    assert any(fact.id in p and "not exactly the superseded values" in p for p in problems)
    broken = _broken(chain)
    probe = broken.version_probes[(fact.id, 0)][0]
    probe["options"][(probe["answer"] + 1) % 4] = fact.history[1][1]      # a future value as a distractor
    assert any(fact.id in p and "is a value of the fact" in p for p in check_chain(broken))


def test_check_finds_an_update_that_does_not_state_its_value(chain):
    broken = _broken(chain)
    fact = _updated_fact(broken)
    source = fact.sources[1]
    record = next(r for d in broken.days for r in d.records if r["id"] == source)
    new = fact.history[1][1]
    names = [new, new.split(" ", 1)[1]] if fact.kind == "person" else [new]
    record["sentences"] = [s for s in record["sentences"] if not any(_mentions(s, n) for n in names)] or ["Nothing."]
    record["text"] = " ".join(record["sentences"])
    assert any(fact.id in p and "does not state the value" in p for p in check_chain(broken))


def test_check_finds_shared_names_and_leaks(chain):
    broken = _broken(chain)
    people = [n for n, info in broken.entities.items() if info["type"] == "person"]
    first, second = people[0], people[1]
    broken.entities[first.upper()] = dict(broken.entities[second])
    assert any("share a name" in p for p in check_chain(broken))
    broken = _broken(chain)
    untouched = next(f for f in broken.facts.values() if len(f.history) == 1 and f.introduced_on == 0)
    record = broken.days[1].records[0]
    record["sentences"].append(f"Later it emerged that {untouched.history[0][1]} had been present.")
    record["text"] = " ".join(record["sentences"])
    problems = check_chain(broken)
    assert any(record["id"] in p and untouched.id in p and "does not state" in p for p in problems)


def test_check_finds_copied_questions_and_wrong_categories(chain):
    broken = _broken(chain)
    fact = next(iter(broken.facts.values()))
    source = next(r for d in broken.days for r in d.records if r["id"] == fact.sources[0])
    question = broken.version_probes[(fact.id, 0)][0]
    question["question"] = source["sentences"][0]
    assert any(fact.id in p and "copies a sentence" in p for p in check_chain(broken))
    broken = _broken(chain)
    broken.days[2].updated_facts = []
    assert any("day 2" in p and "disagree" in p for p in check_chain(broken))


def test_check_finds_a_chain_that_is_not_its_seeds(chain):
    broken = _broken(chain)
    broken.days[4].records[0]["text"] += " An extra sentence."
    broken.days[4].records[0]["sentences"].append("An extra sentence.")
    assert any("differs from a fresh draw" in p for p in check_chain(broken))
