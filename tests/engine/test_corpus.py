"""The synthetic update corpus: deterministic, self-consistent, probes that test knowledge."""

from __future__ import annotations

import copy
import json

import pytest

from disc_engine import corpus
from disc_engine.corpus import (SAMPLE_PATH, check_corpus, generate_corpus, is_copied_question,
                                load_update_sample, save_update_sample, update_sample)
from disc_engine.evaluation import validate_probe


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
        assert 5 <= len(doc["sentences"]) <= 10
        assert len(doc["probes"]) >= 2
        for probe in doc["probes"]:
            validate_probe(probe)
            assert len(probe["options"]) == 4


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 11, 12345])
def test_corpus_keeps_its_promises(seed):
    problems = check_corpus(generate_corpus(60, seed=seed))
    assert problems == []


def test_larger_corpora_stay_consistent():
    assert check_corpus(generate_corpus(240, seed=5)) == []


def test_every_kind_of_story_is_present(documents):
    assert {d["kind"] for d in documents} == set(corpus._STORIES)


def test_surface_forms_vary(documents):
    # The same kind of story must not read the same way every time: first sentences and
    # sentence counts differ, and the probed questions use more than one wording.
    openings = {doc["sentences"][0].split(" ")[0] for doc in documents}
    assert len(openings) > 20
    assert len({len(doc["sentences"]) for doc in documents}) >= 3
    templates = {p["question"].split(" ")[0] for doc in documents for p in doc["probes"]}
    assert len(templates) >= 6


def test_answers_are_spread_over_the_options(documents):
    positions = [p["answer"] for doc in documents for p in doc["probes"]]
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


def test_checker_finds_bad_probes(documents):
    broken = copy.deepcopy(documents[:6])
    doc = broken[2]
    probe = doc["probes"][0]
    right = probe["options"][probe["answer"]]
    wrong_index = (probe["answer"] + 1) % 4
    probe["answer"] = wrong_index                                  # answer not the document's fact
    doc["probes"][1]["options"][1] = doc["probes"][1]["options"][0]   # duplicate options
    doc["probes"].append({"question": doc["sentences"][3], "options": probe["options"],
                          "answer": probe["options"].index(right), "fact": probe["fact"]})  # copied
    problems = check_corpus(broken)
    assert any("not the fact" in p for p in problems)
    assert any("distinct options" in p for p in problems)
    assert any("copies a document sentence" in p for p in problems)


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
    names = [o for doc in documents for p in doc["probes"] for i, o in enumerate(p["options"])
             if i != p["answer"] and not o[:1].isdigit()]
    assert sum(corpus._mentions(texts, n) for n in names) / len(names) > 0.9


def test_questions_paraphrase(documents):
    for doc in documents:
        for probe in doc["probes"]:
            assert not is_copied_question(probe["question"], doc["sentences"])
            assert probe["question"].rstrip("?") not in doc["text"]
    assert is_copied_question("Tenkel founded Blissem Labs in 2011?", ["Tenkel founded Blissem Labs in 2011."])


def test_small_corpora_still_have_four_options():
    for seed in range(5):
        docs = generate_corpus(2, seed=seed)
        assert check_corpus(docs) == []


def test_rejects_empty_corpus():
    with pytest.raises(ValueError, match="at least 1"):
        generate_corpus(0)


def test_bundled_sample_is_the_generator_output():
    bundled = load_update_sample()
    assert bundled == update_sample(bundled["num_documents"], bundled["seed"])
    assert bundled == json.loads(json.dumps(update_sample()))
    assert len(bundled["documents"]) >= 6
    ids = {d["id"] for d in bundled["documents"]}
    assert {p["document_id"] for p in bundled["probes"]} == ids
    for probe in bundled["probes"]:
        validate_probe(probe)
        assert set(probe) == {"question", "options", "answer", "document_id"}


def test_save_update_sample_round_trips(tmp_path):
    path = save_update_sample(tmp_path / "sample.json", num_documents=3, seed=4)
    assert load_update_sample(path) == update_sample(3, 4)
    assert SAMPLE_PATH.name == "sample_update.json"
