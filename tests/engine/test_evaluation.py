"""Evaluation: knowledge gap, probes, retention KL, general MC, format compliance, the suite."""

from __future__ import annotations

import copy
import json
import random

import pytest
import torch

from disc_engine import evaluation
from disc_engine.evaluation import (
    CHECKERS,
    METRICS,
    RESULT_KEYS,
    RETENTION_KEYS,
    check_reply,
    closed_book_gap,
    evaluate_update,
    format_compliance,
    general_mc_accuracy,
    probe_accuracy,
    reference_responses,
    retention_kl,
    validate_probe,
)
from disc_engine.evaluation._common import chat_prompt_ids, greedy_generate, load_json
from disc_engine.loss import disc_loss
from disc_engine.models import DEFAULT_MODEL, load_model, load_tokenizer
from disc_engine.splitting import choose_split_indices, prepare_document

DOCUMENTS = [
    "The Zorbat Institute opened a new campus in Lake Vellmar in March 2031. The campus is led by "
    "Dr. Anika Fenwright, a marine biologist. Dr. Fenwright said the campus will study freshwater "
    "jellyfish. The first students at Lake Vellmar arrive in September.",
    "Quillon is a small island nation in the Kessary Sea. Its capital, Port Amberlee, has a famous "
    "glass lighthouse. The lighthouse of Port Amberlee was built by the engineer Tomas Reyk. Quillon "
    "exports sea salt and blue pottery.",
]


def _perturbed(model, scale=0.02, seed=1):
    other = copy.deepcopy(model)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in other.parameters():
            parameter.add_(torch.randn(parameter.shape, generator=generator) * scale)
    return other.eval()


def _lora(model, seed=0):
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(seed)
    config = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules="all-linear",
                        bias="none", task_type="CAUSAL_LM")
    return get_peft_model(copy.deepcopy(model), config)


# --- format checkers ----------------------------------------------------------------------------

@pytest.mark.parametrize("check, args, text, expected", [
    ("one_word", {}, "Tokyo", True),
    ("one_word", {}, "Tokyo.", True),
    ("one_word", {}, "**Tokyo**", True),
    ("one_word", {}, "The capital is Tokyo.", False),
    ("one_word", {}, "", False),
    ("number_only", {}, "42", True),
    ("number_only", {}, "1,024.", True),
    ("number_only", {}, "The answer is 42.", False),
    ("number_only", {}, "seven", False),
    ("yes_or_no", {}, "Yes.", True),
    ("yes_or_no", {}, "no", True),
    ("yes_or_no", {}, "Yes, fire is hot.", False),
    ("uppercase", {}, "HELLO!", True),
    ("uppercase", {}, "Hello", False),
    ("uppercase", {}, "123", False),
    ("lowercase", {}, "dogs are loyal friends.", True),
    ("lowercase", {}, "Dogs are loyal.", False),
    ("comma_list", {"count": 3}, "apple, banana, cherry", True),
    ("comma_list", {"count": 3}, "Apple, banana, and cherry.", True),
    ("comma_list", {"count": 3}, "apple, banana", False),
    ("comma_list", {"count": 3}, "Here are three fruits: I like apples, but bananas are the best fruit, ok", False),
    ("max_words", {"limit": 9}, "A star at the centre of our system.", True),
    ("max_words", {"limit": 9}, "The Sun is the star at the centre of our solar system.", False),
    ("starts_with", {"prefix": "yes"}, "Yes, birds can fly.", True),
    ("starts_with", {"prefix": "yes"}, "Birds can fly, yes.", False),
    ("ends_with", {"suffix": "!"}, "Summer is lovely!", True),
    ("ends_with", {"suffix": "!"}, "Summer is lovely.", False),
    ("avoids", {"forbidden": "e"}, "Banana", True),
    ("avoids", {"forbidden": "e"}, "Apple", False),
    ("avoids", {"forbidden": ","}, "   ", False),
    ("starts_with_any", {"prefixes": ["yes", "no"]}, "No. Fire is cold.", True),
    ("starts_with_any", {"prefixes": ["yes", "no"]}, "Fire is hot.", False),
    ("contains_all", {"words": ["dog", "cat"]}, "My Dog likes the cat.", True),
    ("contains_all", {"words": ["dog", "cat"]}, "My dog likes cats.", False),
    ("contains_all", {"words": ["The cat sat on the mat"]}, "The cat sat on the mat.", True),
    ("numbered_list", {"count": 3}, "1. Lion\n2. Tiger\n3) Bear", True),
    ("numbered_list", {"count": 3}, "1. Lion\n2. Tiger", False),
    ("bullet_list", {"count": 2}, "- Red\n* Blue", True),
    ("bullet_list", {"count": 2}, "Red, Blue", False),
    ("json_with_key", {"key": "animal"}, '{"animal": "cat"}', True),
    ("json_with_key", {"key": "animal"}, '```json\n{"animal": "owl"}\n```', True),
    ("json_with_key", {"key": "animal"}, '{"pet": "cat"}', False),
    ("json_with_key", {"key": "animal"}, "animal: cat", False),
])
def test_format_checkers(check, args, text, expected):
    assert check_reply({"check": check, "args": args}, text) is expected


def test_shipped_data_is_well_formed():
    instructions = load_json("instructions.json")
    assert 10 <= len(instructions) <= 16
    assert {item["check"] for item in instructions} <= set(CHECKERS)
    questions = load_json("general_mc.json")
    assert len(questions) >= 40
    for question in questions:
        validate_probe(question)
    # The right answer is not always in the same place, or position alone would score.
    assert len({q["answer"] for q in questions}) == 4
    prompts = load_json("chat_prompts.json")
    assert 20 <= len(prompts) <= 30 and len(set(prompts)) == len(prompts)


@pytest.mark.parametrize("probe, message", [
    ({"question": "Q?", "options": ["a"], "answer": 0}, "at least 2"),
    ({"question": "Q?", "options": ["a", "b"], "answer": 2}, "out of range"),
    ({"question": "Q?", "options": ["a", "b"], "answer": -1}, "answer: .*greater than or equal to 0"),
    ({"question": "  ", "options": ["a", "b"], "answer": 0}, "question"),
    ({"question": "Q?", "options": ["a", ""], "answer": 0}, "options.1"),
    ({"question": "Q?", "options": ["Paris", "paris "], "answer": 0}, "same answer"),
    ({"question": "Q?", "options": ["a", "a"], "answer": 0}, "distinct"),
    ({"question": "Q?", "options": ["a", "b"], "answer": True}, "integer"),
    ({"question": "Q?", "options": ["a", "b"]}, "answer: Field required"),
])
def test_validate_probe_names_the_problem(probe, message):
    with pytest.raises(ValueError, match=message):
        validate_probe(probe)


def test_metrics_describe_every_result_key():
    assert set(METRICS) == set(RESULT_KEYS)
    assert set(RETENTION_KEYS) <= set(RESULT_KEYS)
    for name in ("closed_book_gap", "probe_accuracy", "retention_kl", "general_mc_accuracy",
                 "format_compliance", "reference_responses", "evaluate_update", "validate_probe"):
        assert callable(getattr(evaluation, name))


# --- decoding -----------------------------------------------------------------------------------

def test_batched_greedy_decoding_matches_one_prompt_at_a_time_and_generate(base, tokenizer):
    prompts = [chat_prompt_ids(tokenizer, text) for text in
               ("Hi", "What is the capital of France? Answer in one word.", "Tell me a story about a dragon.")]
    assert len({len(p) for p in prompts}) == 3  # different lengths: left padding is exercised
    batched = greedy_generate(base, tokenizer, prompts, max_new_tokens=12)
    single = [greedy_generate(base, tokenizer, [p], max_new_tokens=12)[0] for p in prompts]
    assert batched == single
    with torch.no_grad():
        reference = base.generate(torch.tensor([prompts[1]]), max_new_tokens=12, do_sample=False,
                                  eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    expected = reference[0, len(prompts[1]):].tolist()
    assert batched[1].tokens == expected[:len(batched[1].tokens)]


# --- knowledge gap ------------------------------------------------------------------------------

def test_closed_book_gap_is_the_disc_objective_at_temperature_one(base, tokenizer):
    student = _perturbed(base)
    score = closed_book_gap(student, base, tokenizer, DOCUMENTS[:1], max_splits_per_document=100)
    sentence_ids = prepare_document(DOCUMENTS[0], tokenizer).sentence_ids
    indices = choose_split_indices(sentence_ids, "all", random.Random(0))
    with torch.no_grad():
        expected = disc_loss(student, base, sentence_ids, indices, temperature=1.0).item()
    assert score.splits == len(indices) == 3
    assert score.kl == pytest.approx(expected, rel=1e-4)
    assert score.suffix_nll > 0 and score.open_book_nll > 0


def test_closed_book_gap_caps_splits_with_a_seeded_sample(base, tokenizer):
    long_document = " ".join(f"Sentence number {i} talks about topic {i * 7}." for i in range(30))
    first = closed_book_gap(base, base, tokenizer, [long_document], max_splits_per_document=5, seed=3)
    again = closed_book_gap(base, base, tokenizer, [long_document], max_splits_per_document=5, seed=3)
    assert first.splits == 5 and first == again


def test_documents_without_a_split_give_no_gap(base, tokenizer):
    score = closed_book_gap(base, base, tokenizer, ["Hi.", "   "])
    assert score.kl is None and score.splits == 0


def test_identical_models_change_nothing(base, tokenizer):
    probes = [{"question": "Where is Port Amberlee?", "options": ["Quillon", "Norway", "Peru"], "answer": 0}]
    result = evaluate_update(new_model=base, parent_model=base, base_model=base, tokenizer=tokenizer,
                             documents=DOCUMENTS, probes=probes)
    assert list(result) == list(RESULT_KEYS)
    assert result["knowledge_gap_before"] > 0
    assert result["knowledge_gap_after"] == result["knowledge_gap_before"]
    assert result["knowledge_gap_closed_fraction"] == 0
    assert result["suffix_nll_after"] == result["suffix_nll_before"]
    assert result["probe_accuracy_after"] == result["probe_accuracy_before"]
    assert result["probe_count"] == 1
    assert result["retention_kl_vs_parent"] == pytest.approx(0, abs=1e-6)
    assert result["retention_kl_vs_base"] == pytest.approx(0, abs=1e-6)
    assert result["general_mc_accuracy"] in (1.0, None)
    assert result["general_mc_accuracy_parent"] == result["general_mc_accuracy"]
    assert result["format_compliance"] == result["format_compliance_parent"]
    assert result["eval_seconds"] > 0


def test_a_chained_version_is_compared_with_its_parent_and_the_base(base, tokenizer, tmp_path):
    parent = _perturbed(base, seed=1)
    new = _perturbed(parent, seed=2)
    result = evaluate_update(new_model=new, parent_model=parent, base_model=base, tokenizer=tokenizer,
                             documents=DOCUMENTS, cache_dir=tmp_path)
    # The reference replies come from the cache the evaluation filled (keyed by each model).
    assert result["retention_kl_vs_parent"] == pytest.approx(
        retention_kl(new, parent, tokenizer, cache_dir=tmp_path), rel=1e-4)
    assert result["retention_kl_vs_base"] == pytest.approx(
        retention_kl(new, base, tokenizer, cache_dir=tmp_path), rel=1e-4)
    assert result["retention_kl_vs_base"] > result["retention_kl_vs_parent"] > 0
    assert result["general_mc_accuracy_parent"] == general_mc_accuracy(parent, base, tokenizer)
    assert result["knowledge_gap_before"] == pytest.approx(
        closed_book_gap(parent, parent, tokenizer, DOCUMENTS).kl, abs=1e-9)
    assert result["knowledge_gap_after"] == pytest.approx(closed_book_gap(new, parent, tokenizer, DOCUMENTS).kl)
    # Replies of parent and base; capability scores of parent and new (the next version's parent).
    entries = tmp_path / "evaluation"
    assert len(list(entries.glob("reference-responses-*.json"))) == 2
    assert len(list(entries.glob("format-compliance-*.json"))) == 2
    assert len(list(entries.glob("general-mc-base-*.json"))) == 1


def test_retention_kl_of_a_copy_is_zero_and_of_another_model_positive(base, tokenizer):
    prompts = ["Hello!", "What is the capital of France?", "Write a haiku about rain."]
    assert retention_kl(copy.deepcopy(base), base, tokenizer, prompts=prompts) == pytest.approx(0, abs=1e-6)
    assert retention_kl(_perturbed(base), base, tokenizer, prompts=prompts) > 1e-4


def test_disc_training_closes_part_of_the_gap(base, tokenizer):
    """A LoRA student trained with the DiSC loss on the documents (adapter off = the teacher)."""
    student = _lora(base)
    optimizer = torch.optim.AdamW([p for p in student.parameters() if p.requires_grad], lr=1e-2)
    prepared = [prepare_document(text, tokenizer).sentence_ids for text in DOCUMENTS]
    student.train()
    for _ in range(8):
        for sentence_ids in prepared:
            indices = choose_split_indices(sentence_ids, "all", random.Random(0))
            loss = disc_loss(student, None, sentence_ids, indices, temperature=1.0)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    student.eval()
    # The LoRA model was built on its own copy of the base; evaluating it against that very
    # module exercises the adapters-off view of parent and base.
    inner = student.get_base_model()
    result = evaluate_update(new_model=student, parent_model=inner, base_model=inner, tokenizer=tokenizer,
                             documents=DOCUMENTS)
    assert result["knowledge_gap_after"] < result["knowledge_gap_before"]
    assert result["knowledge_gap_closed_fraction"] > 0.2
    with torch.no_grad():
        assert result["knowledge_gap_before"] == pytest.approx(
            closed_book_gap(base, base, tokenizer, DOCUMENTS).kl, rel=1e-4)
    assert result["retention_kl_vs_parent"] > 0
    assert result["retention_kl_vs_base"] == pytest.approx(result["retention_kl_vs_parent"])


# --- probes -------------------------------------------------------------------------------------

def test_options_share_the_question_cache_without_changing_scores(base, tokenizer):
    from disc_engine.evaluation.probes import _option_log_likelihoods

    probes = [  # questions of different lengths (left padding) and option counts
        {"question": "Which city has a glass lighthouse?", "answer": 1,
         "options": ["Lake Vellmar", "Port Amberlee", "Esk", "the capital of Quillon"]},
        {"question": "Who?", "answer": 0, "options": ["Dr. Anika Fenwright", "4"]},
        {"question": "What does the Zorbat Institute's new campus at Lake Vellmar study, according to its head?",
         "answer": 2, "options": ["salt", "pottery", "freshwater jellyfish"]},
    ]
    model = _perturbed(base)
    with torch.no_grad():
        shared = _option_log_likelihoods(model, tokenizer, probes)
        separate = _option_log_likelihoods(model, tokenizer, probes, share_prompt=False)
        one_by_one = [_option_log_likelihoods(model, tokenizer, [probe], share_prompt=False)[0] for probe in probes]
    assert [len(row) for row in shared] == [4, 2, 3]
    for rows in (separate, one_by_one):
        for mine, theirs in zip(shared, rows):
            assert [count for _, count in mine] == [count for _, count in theirs]
            assert [total for total, _ in mine] == pytest.approx([total for total, _ in theirs], abs=1e-3)


def test_a_probe_the_model_was_fitted_to_scores_correct(base, tokenizer):
    probes = [
        {"question": "Who leads the Lake Vellmar campus?", "answer": 2,
         "options": ["Tomas Reyk", "Port Amberlee", "Dr. Anika Fenwright", "Quillon"]},
        {"question": "What does Quillon export?", "answer": 0,
         "options": ["sea salt and blue pottery", "freshwater jellyfish", "glass lighthouses", "wool"]},
    ]
    # Full fine-tuning: LoRA on the tiny random model moves its logits too slowly to memorise.
    model = copy.deepcopy(base)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(15):
        for probe in probes:
            prompt = chat_prompt_ids(tokenizer, probe["question"])
            answer = tokenizer(probe["options"][probe["answer"]], add_special_tokens=False)["input_ids"]
            ids = torch.tensor([prompt + answer])
            labels = ids.clone()
            labels[0, :len(prompt)] = -100
            loss = model(input_ids=ids, labels=labels).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    model.eval()
    assert probe_accuracy(model, tokenizer, probes) == 1.0
    assert probe_accuracy(base, tokenizer, probes) < 1.0
    assert probe_accuracy(base, tokenizer, []) is None


# --- caching ------------------------------------------------------------------------------------

def test_reference_responses_are_cached_by_model(base, tokenizer, tmp_path, monkeypatch):
    prompts = ["Hello!", "Name a colour."]
    first = reference_responses(base, tokenizer, prompts=prompts, max_new_tokens=8, cache_dir=tmp_path)
    assert len(list((tmp_path / "evaluation").glob("reference-responses-*.json"))) == 1

    def no_generation(*args, **kwargs):
        raise AssertionError("the cached replies should have been read")

    monkeypatch.setattr(evaluation.retention, "greedy_generate", no_generation)
    assert reference_responses(base, tokenizer, prompts=prompts, max_new_tokens=8, cache_dir=tmp_path) == first
    with pytest.raises(AssertionError, match="cached"):  # another model is another cache entry
        reference_responses(_perturbed(base), tokenizer, prompts=prompts, max_new_tokens=8, cache_dir=tmp_path)
    monkeypatch.undo()
    assert reference_responses(base, tokenizer, prompts=prompts, max_new_tokens=8) == first


def test_capability_scores_are_cached_per_model(base, tokenizer, tmp_path):
    first = format_compliance(base, tokenizer, max_new_tokens=4, cache_dir=tmp_path)
    entry, = (tmp_path / "evaluation").glob("format-compliance-*.json")
    record = json.loads(entry.read_text())
    record["value"] = 0.123  # a planted value proves the second call reads the file
    entry.write_text(json.dumps(record))
    assert format_compliance(base, tokenizer, max_new_tokens=4, cache_dir=tmp_path) == 0.123
    assert format_compliance(base, tokenizer, max_new_tokens=4) == first

    assert general_mc_accuracy(base, base, tokenizer, cache_dir=tmp_path) in (1.0, None)
    assert len(list((tmp_path / "evaluation").glob("general-mc-base-*.json"))) == 1


def test_evaluate_update_rejects_a_bad_probe(base, tokenizer):
    with pytest.raises(ValueError, match="probe 1: invalid probe: answer 5 is out of range"):
        evaluate_update(new_model=base, parent_model=base, base_model=base, tokenizer=tokenizer,
                        documents=DOCUMENTS, probes=[
                            {"question": "Q?", "options": ["a", "b"], "answer": 0},
                            {"question": "Q?", "options": ["a", "b"], "answer": 5},
                        ])


# --- the real default model ---------------------------------------------------------------------

@pytest.mark.slow
def test_evaluate_update_on_the_default_model(tmp_path):
    tokenizer = load_tokenizer(DEFAULT_MODEL)
    model = load_model(DEFAULT_MODEL)
    documents = [
        "The Zorbat Institute opened a campus in Lake Vellmar in 2031. It is led by Dr. Anika Fenwright. "
        "The campus studies freshwater jellyfish.",
        "Quillon is an island nation in the Kessary Sea. Its capital is Port Amberlee. Quillon exports sea salt.",
        "The Brightwater Bridge opened in 2029. It links the towns of Esk and Marrow. The bridge is two miles long.",
    ]
    probes = [
        {"question": "What is the capital of Quillon?", "options": ["Port Amberlee", "Lake Vellmar", "Esk"],
         "answer": 0},
        {"question": "Who leads the Lake Vellmar campus?", "options": ["Tomas Reyk", "Dr. Anika Fenwright"],
         "answer": 1},
    ]
    kwargs = dict(new_model=model, parent_model=model, base_model=model, tokenizer=tokenizer,
                  documents=documents, probes=probes, cache_dir=str(tmp_path))
    cold = evaluate_update(**kwargs)
    warm = evaluate_update(**kwargs)
    print(f"\nevaluate_update on {DEFAULT_MODEL}: cold cache {cold['eval_seconds']:.1f} s, "
          f"warm cache {warm['eval_seconds']:.1f} s\n{json.dumps(warm, indent=1)}")
    for result in (cold, warm):
        assert result["format_compliance"] > 0.5
        assert result["general_mc_accuracy"] == 1.0
        assert result["retention_kl_vs_parent"] == pytest.approx(0, abs=1e-6)
        assert result["retention_kl_vs_base"] == pytest.approx(0, abs=1e-6)
        assert result["knowledge_gap_before"] > 0
        assert result["knowledge_gap_closed_fraction"] == 0
        assert result["probe_count"] == 2
    assert {k: v for k, v in warm.items() if k != "eval_seconds"} == \
        {k: v for k, v in cold.items() if k != "eval_seconds"}
