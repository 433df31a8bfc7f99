"""The invented-news corpus: deterministic, self-consistent, a question and a cloze for every fact."""

from __future__ import annotations

import copy
import json

import pytest

from benchmarks.knowledge_update import corpus
from benchmarks.knowledge_update.corpus import (
    REPORT_SEEDS,
    SAMPLE_SEED,
    TUNING_SEEDS,
    check_corpus,
    cloze_continuations,
    corpus_probes,
    generate_corpus,
    held_out_corpora,
    is_copied_question,
    load_story_templates,
    save_update_sample,
    update_sample,
)
from disc_engine.data import SAMPLE_PATH, load_update_sample
from disc_engine.options import validate_probe


def _as_question(probe: dict) -> dict:
    """A cloze's options and answer in the shape ``validate_probe`` checks."""
    return {"question": probe.get("question") or probe["prompt"], "options": probe["options"],
            "answer": probe["answer"]}


@pytest.fixture(scope="module")
def documents() -> list[dict]:
    return generate_corpus(60, seed=0)


def test_same_seed_same_corpus_other_seed_other_corpus(documents):
    assert generate_corpus(60, seed=0) == documents
    other = generate_corpus(60, seed=1)
    assert [d["text"] for d in other] != [d["text"] for d in documents]
    assert not {d["text"] for d in other} & {d["text"] for d in documents}


def test_size_and_shape(documents):
    assert len(documents) == 60
    assert len({d["id"] for d in documents}) == 60
    for doc in documents:
        assert corpus.MIN_SENTENCES <= len(doc["sentences"]) <= corpus.MAX_SENTENCES
        assert len(doc["facts"]) == 6
        assert len(doc["probes"]) == 12
        for probe in doc["probes"]:
            assert probe["document_id"] == doc["id"]
            assert len(probe["options"]) == 4
            validate_probe(_as_question(probe))
            # Distinct after case folding too, as the service's probe rules require.
            assert len({o.strip().casefold() for o in probe["options"]}) == 4


def test_every_fact_has_one_question_and_one_cloze(documents):
    for doc in documents:
        facts = sorted((s, r) for s, r, _ in doc["facts"])
        for kind, text_field in (("question", "question"), ("cloze", "prompt")):
            probes = [p for p in doc["probes"] if p["kind"] == kind]
            assert sorted(tuple(p["fact"]) for p in probes) == facts
            assert all(p[text_field].strip() == p[text_field] for p in probes)
    assert len(corpus_probes(documents, "question")) == len(corpus_probes(documents, "cloze")) == 360
    assert len(corpus_probes(documents)) == 720


def test_cloze_prompts_read_as_statements_the_answer_completes(documents):
    for probe in corpus_probes(documents, "cloze"):
        prompt = probe["prompt"]
        assert not prompt.endswith(("?", ".", " "))
        assert "question" not in probe
        continuations = cloze_continuations(probe)
        assert all(c.startswith(" ") and not c.startswith("  ") for c in continuations)
        assert continuations[probe["answer"]] == " " + probe["options"][probe["answer"]]
    # The statement the right option completes is worded differently from the document.
    for doc in documents:
        for probe in (p for p in doc["probes"] if p["kind"] == "cloze"):
            statement = f"{probe['prompt']} {probe['options'][probe['answer']]}"
            assert not is_copied_question(statement, doc["sentences"]), statement
            assert statement not in doc["text"]


def test_question_and_cloze_of_a_fact_share_their_options(documents):
    for doc in documents:
        by_fact: dict[tuple, list[dict]] = {}
        for probe in doc["probes"]:
            by_fact.setdefault(tuple(probe["fact"]), []).append(probe)
        for question, cloze in by_fact.values():
            assert sorted(question["options"]) == sorted(cloze["options"])
            assert question["options"][question["answer"]] == cloze["options"][cloze["answer"]]


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 11, 12345, *TUNING_SEEDS, *REPORT_SEEDS])
def test_corpus_keeps_its_promises(seed):
    problems = check_corpus(generate_corpus(60, seed=seed))
    assert problems == []


def test_larger_corpora_stay_consistent():
    assert check_corpus(generate_corpus(240, seed=5)) == []


def test_every_kind_of_story_is_present(documents):
    _, templates = load_story_templates()
    assert {d["kind"] for d in documents} == set(templates) == set(corpus._VALUE_MAKERS)


def test_every_template_wording_renders_with_its_story_values():
    # Each wording in stories.json is rendered at least once over many draws, so a placeholder
    # its story does not provide fails here rather than in some rare draw.
    vocabulary, templates = load_story_templates()
    import random

    rng = random.Random(0)
    namer = corpus._Namer(rng, vocabulary)
    for kind, template in templates.items():
        values = corpus._VALUE_MAKERS[kind](namer, rng, vocabulary)
        wordings = [w for slot in (template.lede, *template.slots) for w in slot.variants]
        wordings += list(template.fillers)
        wordings += [w for ws in (*template.questions.values(), *template.clozes.values()) for w in ws]
        for wording in wordings:
            corpus._render(wording, values)
        for fact in template.facts.values():
            assert fact.subject in values and fact.object in values, (kind, fact)
        assert set(template.entities) <= set(values)


def test_templates_that_break_a_promise_are_refused():
    data = json.loads(corpus.STORIES_PATH.read_text())
    story = copy.deepcopy(data["stories"]["company"])
    del story["clozes"]["hq"]
    with pytest.raises(ValueError, match="'hq' has no cloze"):
        corpus._story_template("company", story)
    story = copy.deepcopy(data["stories"]["company"])
    story["slots"][0]["introduces"].append("founder")   # the lede introduces it already
    with pytest.raises(ValueError, match="introduced 2 times"):
        corpus._story_template("company", story)


def test_surface_forms_vary(documents):
    # The same kind of story must not read the same way every time: first sentences and
    # sentence counts differ, and the probes use more than one wording.
    openings = {doc["sentences"][0].split(" ")[0] for doc in documents}
    assert len(openings) > 20
    assert len({len(doc["sentences"]) for doc in documents}) >= 3
    for kind, field in (("question", "question"), ("cloze", "prompt")):
        starts = {p[field].split(" ")[0] for p in corpus_probes(documents, kind)}
        assert len(starts) >= 6, (kind, starts)


def test_answers_are_spread_over_the_options(documents):
    for kind in corpus.PROBE_KINDS:
        positions = [p["answer"] for p in corpus_probes(documents, kind)]
        assert all(positions.count(i) > len(positions) / 8 for i in range(4))


def test_probed_facts_are_used_again_after_the_first_sentence(documents):
    # DiSC learns a fact only from sentences with a prefix; the first sentence has none.
    for doc in documents:
        for probe in doc["probes"]:
            answer = probe["options"][probe["answer"]]
            surname = answer.split(" ", 1)[-1]
            later = doc["sentences"][1:]
            assert any(answer in s or (doc["entities"].get(answer) == "person" and surname in s)
                       for s in later), (doc["id"], answer)


def test_checker_finds_contradictions(documents):
    broken = copy.deepcopy(documents[:12])
    subject, relation, _ = broken[3]["facts"][0]
    broken[7]["facts"].append([subject, relation, "Somewhere Else"])
    problems = check_corpus(broken)
    assert any(subject in p and "but" in p for p in problems)


def test_checker_finds_shared_names(documents):
    broken = copy.deepcopy(documents[:12])
    name = next(n for n, kind in broken[0]["entities"].items() if kind == "person")
    broken[5]["entities"][name] = "person"
    assert any(name in p for p in check_corpus(broken))


def test_checker_finds_an_entity_leaking_into_another_document(documents):
    broken = copy.deepcopy(documents[:12])
    home = next(doc for doc in broken if "town" in doc["entities"].values())
    town = next(n for n, kind in home["entities"].items() if kind == "town")
    elsewhere = next(doc for doc in broken if doc is not home)
    elsewhere["sentences"].append(f"Visitors came from {town}.")
    elsewhere["text"] = " ".join(elsewhere["sentences"])
    assert any(f"entity {town!r}" in p for p in check_corpus(broken))


def test_checker_finds_bad_questions(documents):
    broken = copy.deepcopy(documents[:6])
    doc = broken[2]
    questions = [p for p in doc["probes"] if p["kind"] == "question"]
    probe = questions[0]
    right = probe["options"][probe["answer"]]
    probe["answer"] = (probe["answer"] + 1) % 4                          # answer not the document's fact
    questions[1]["options"][1] = questions[1]["options"][0].upper()      # same option up to case
    doc["probes"].append({**questions[2], "question": doc["sentences"][3]})   # copied; the fact twice
    problems = check_corpus(broken)
    assert any("not the fact" in p for p in problems)
    assert any("distinct options" in p for p in problems)
    assert any("copies a document sentence" in p for p in problems)
    assert any("not each fact once" in p for p in problems)
    assert right in doc["text"]


def test_checker_finds_bad_clozes(documents):
    broken = copy.deepcopy(documents[:6])
    doc = broken[1]
    clozes = [p for p in doc["probes"] if p["kind"] == "cloze"]
    # A cloze whose statement is a document sentence, cut before its last word.
    sentence = doc["sentences"][2].rstrip(".")
    clozes[0]["prompt"] = sentence.rsplit(" ", 1)[0]
    # A distractor that the document does mention.
    other_fact_value = next(o for s, r, o in doc["facts"] if o != clozes[1]["options"][clozes[1]["answer"]])
    wrong = (clozes[1]["answer"] + 1) % 4
    clozes[1]["options"][wrong] = other_fact_value
    # A cloze that lost its fact: the doc's facts are then not all covered.
    doc["probes"].remove(clozes[2])
    clozes[3]["prompt"] += " "
    problems = check_corpus(broken)
    assert any("cloze probe" in p and "copies a document sentence" in p for p in problems)
    assert any(f"distractor {other_fact_value!r} appears in the document" in p for p in problems)
    assert any("cloze probes cover" in p for p in problems)
    assert any("surrounding whitespace" in p for p in problems)


def test_distractors_are_plausible_and_absent(documents):
    for doc in documents:
        for probe in doc["probes"]:
            answer = probe["options"][probe["answer"]]
            for i, option in enumerate(probe["options"]):
                if i == probe["answer"]:
                    assert corpus._mentions(doc["text"], option)
                    continue
                assert not corpus._mentions(doc["text"], option)
                # Same kind of value: numbers for numbers, capitalised names for names.
                assert option[:1].isdigit() == answer[:1].isdigit(), (option, answer)


def test_distractor_names_come_from_other_documents(documents):
    # An updated model has seen every corpus name; distractors taken from other documents are
    # as familiar as the answer, so familiarity alone does not answer a probe.
    texts = " ".join(d["text"] for d in documents)
    names = [o for p in corpus_probes(documents) for i, o in enumerate(p["options"])
             if i != p["answer"] and not o[:1].isdigit()]
    assert sum(corpus._mentions(texts, n) for n in names) / len(names) > 0.9


def test_questions_paraphrase(documents):
    for doc in documents:
        for probe in (p for p in doc["probes"] if p["kind"] == "question"):
            assert not is_copied_question(probe["question"], doc["sentences"])
            assert probe["question"].rstrip("?") not in doc["text"]
    assert is_copied_question("Tenkel founded Blissem Labs in 2011?", ["Tenkel founded Blissem Labs in 2011."])
    # One unbroken run of more than three quarters of the words is a copy; shorter runs are not.
    assert is_copied_question("so Tenkel founded Blissem Labs in Orvik",
                              ["Tenkel founded Blissem Labs in Orvik today."])
    assert not is_copied_question("Who started the firm Blissem Labs?", ["Tenkel founded Blissem Labs in Orvik."])


def test_small_corpora_still_have_four_options():
    for seed in range(5):
        docs = generate_corpus(2, seed=seed)
        assert check_corpus(docs) == []


def test_rejects_empty_corpus():
    with pytest.raises(ValueError, match="at least 1"):
        generate_corpus(0)


def test_tuning_and_report_corpora_are_held_apart():
    assert not set(TUNING_SEEDS) & set(REPORT_SEEDS)
    assert SAMPLE_SEED not in TUNING_SEEDS + REPORT_SEEDS
    tuning, report = held_out_corpora("tuning", 100), held_out_corpora("report", 100)
    assert tuple(tuning) == TUNING_SEEDS and tuple(report) == REPORT_SEEDS
    assert [len(c) for c in tuning.values()] == [34, 33, 33]
    assert sum(len(corpus_probes(c, "question")) for c in report.values()) == 600
    assert sum(len(corpus_probes(c, "cloze")) for c in report.values()) == 600
    tuning_texts = {d["text"] for c in tuning.values() for d in c}
    assert not tuning_texts & {d["text"] for c in report.values() for d in c}
    assert held_out_corpora("tuning", 100) == tuning
    with pytest.raises(ValueError, match="'tuning' or 'report'"):
        held_out_corpora("test")


def test_bundled_sample_is_the_generator_output():
    bundled = load_update_sample()
    assert bundled == update_sample(bundled["num_documents"], bundled["seed"])
    assert bundled == json.loads(json.dumps(update_sample()))
    assert len(bundled["documents"]) >= 6
    ids = {d["id"] for d in bundled["documents"]}
    assert {p["document_id"] for p in bundled["probes"]} == ids
    assert len(bundled["probes"]) == 6 * len(bundled["documents"])   # a question per fact
    for probe in bundled["probes"]:
        validate_probe(probe)
        assert set(probe) == {"question", "options", "answer", "document_id"}


def test_save_update_sample_round_trips(tmp_path):
    path = save_update_sample(tmp_path / "sample.json", num_documents=3, seed=4)
    assert load_update_sample(path) == update_sample(3, 4)
    assert SAMPLE_PATH.name == "sample_update.json" and SAMPLE_PATH.is_file()
