"""Item sets for measuring what an update keeps, each large enough (>= 100 items) to tell.

- ``load_chat_prompts()``: everyday instructions and questions that expect short replies, for
  the KL to the parent on the parent's own (greedy) replies.
- ``load_instruction_items()``: prompts that carry IFEval's verifiable instructions, in IFEval's
  row shape (``key``, ``prompt``, ``instruction_id_list``, ``kwargs``), checked by
  ``check_instruction`` with the IFEval verifier code from the PyPI package ``if-verifiable``.
  IFEval's own prompts are a data set on a hub and are not reachable here; these prompts are
  ours, use all 25 of its instruction types, and state every parameter their checker uses.
- ``load_general_questions()``: four-option general-knowledge, arithmetic and common-sense
  questions (``question``, ``options``, ``answer``), valid under the engine's probe rules.

The service's own evaluation (``disc_engine/evaluation/data``) keeps smaller sets for speed.

Offline: ``if-verifiable`` imports ``datasets`` (only to download IFEval, which we never call),
and two of its checkers (``length_constraints:number_sentences`` and
``change_case:capital_word_frequency``) need NLTK's ``punkt_tab`` sentence model, which NLTK
downloads at run time. We ship a parameter set of our own in its format
(``data/nltk_data/tokenizers/punkt_tab/english``: a short list of English abbreviations, no
learned collocations or sentence starters) and put it first on NLTK's data path, so sentence
counts are the same on every machine and nothing is downloaded. Counts can differ from the
official English model only around abbreviations it knows and ours does not. Language
detection (``langdetect``) ships its profiles; it is seeded here because it samples. As in
IFEval, the all-capitals and all-lowercase checks also detect the language, which misreads some
short capitalised English as another language; the measure inherits that quirk.
"""

from __future__ import annotations

import functools
import inspect
import json
from pathlib import Path
from typing import Any

DATA_DIR = Path(__file__).with_name("data")
CHAT_PROMPTS_PATH = DATA_DIR / "chat_prompts.json"
INSTRUCTIONS_PATH = DATA_DIR / "instructions.json"
GENERAL_QUESTIONS_PATH = DATA_DIR / "general_mc.json"
NLTK_DATA_DIR = DATA_DIR / "nltk_data"

MIN_ITEMS = 100

__all__ = [
    "CHAT_PROMPTS_PATH", "GENERAL_QUESTIONS_PATH", "INSTRUCTIONS_PATH", "MIN_ITEMS",
    "check_instruction", "instruction_results", "instruction_types", "load_chat_prompts",
    "load_general_questions", "load_instruction_items", "validate_instruction_item",
]


# --- loading -----------------------------------------------------------------------------------

def load_chat_prompts(path: Path = CHAT_PROMPTS_PATH) -> list[str]:
    """The chat prompts (strings), checked: non-empty, distinct."""
    prompts = json.loads(Path(path).read_text())
    if not isinstance(prompts, list) or not all(isinstance(p, str) and p.strip() for p in prompts):
        raise ValueError(f"{path}: expected a list of non-empty strings")
    if len(set(prompts)) != len(prompts):
        raise ValueError(f"{path}: prompts repeat")
    return prompts


def load_instruction_items(path: Path = INSTRUCTIONS_PATH) -> list[dict]:
    """The instruction-following items in IFEval's row shape, each checked by
    ``validate_instruction_item``."""
    items = json.loads(Path(path).read_text())
    for index, item in enumerate(items):
        try:
            validate_instruction_item(item)
        except ValueError as exc:
            raise ValueError(f"{path}: item {index}: {exc}") from None
    if len({item["key"] for item in items}) != len(items):
        raise ValueError(f"{path}: keys repeat")
    return items


def load_general_questions(path: Path = GENERAL_QUESTIONS_PATH) -> list[dict]:
    """The general multiple-choice questions, each valid under ``disc_engine.options.validate_probe``
    with four options."""
    from disc_engine.options import validate_probe

    questions = json.loads(Path(path).read_text())
    for index, question in enumerate(questions):
        try:
            validate_probe(question)
        except ValueError as exc:
            raise ValueError(f"{path}: question {index}: {exc}") from None
        if len(question["options"]) != 4:
            raise ValueError(f"{path}: question {index} has {len(question['options'])} options, not 4")
    return questions


# --- the IFEval verifier -----------------------------------------------------------------------

@functools.cache
def _registry() -> dict[str, Any]:
    """IFEval's instruction id -> checker class, with NLTK and langdetect made offline and
    deterministic (see the module's docstring)."""
    import langdetect
    import nltk

    if str(NLTK_DATA_DIR) not in nltk.data.path:
        nltk.data.path.insert(0, str(NLTK_DATA_DIR))
    langdetect.DetectorFactory.seed = 0
    from if_verifiable.ifeval.instructions_registry import INSTRUCTION_DICT

    return dict(INSTRUCTION_DICT)


def instruction_types() -> tuple[str, ...]:
    """IFEval's instruction ids, sorted ("punctuation:no_comma", ...)."""
    return tuple(sorted(_registry()))


def _argument_names(checker_class) -> set[str]:
    parameters = inspect.signature(checker_class.build_description).parameters
    return {name for name in parameters if name != "self"}


def validate_instruction_item(item: Any) -> None:
    """Raise ``ValueError`` naming what is wrong with one item, or return None.

    Every instruction id must be IFEval's, and its kwargs must give every argument its checker
    takes: a checker left without one draws it at random, and the check would not be repeatable.
    """
    if not isinstance(item, dict):
        raise ValueError(f"an item must be an object; got {type(item).__name__}")
    missing = {"key", "prompt", "instruction_id_list", "kwargs"} - set(item)
    if missing:
        raise ValueError(f"item is missing {', '.join(sorted(missing))}")
    if not isinstance(item["prompt"], str) or not item["prompt"].strip():
        raise ValueError("item prompt must be a non-empty string")
    ids, kwargs_list = item["instruction_id_list"], item["kwargs"]
    if not isinstance(ids, list) or not ids or not isinstance(kwargs_list, list) or len(kwargs_list) != len(ids):
        raise ValueError("instruction_id_list must be a non-empty list with one kwargs object per instruction")
    if len(set(ids)) != len(ids):
        raise ValueError(f"instruction ids repeat: {ids}")
    registry = _registry()
    for instruction_id, kwargs in zip(ids, kwargs_list):
        if instruction_id not in registry:
            raise ValueError(f"unknown instruction id {instruction_id!r}")
        if not isinstance(kwargs, dict):
            raise ValueError(f"{instruction_id}: kwargs must be an object")
        expected = _argument_names(registry[instruction_id])
        given = {name for name, value in kwargs.items() if value is not None}
        if given != expected:
            raise ValueError(f"{instruction_id}: kwargs give {sorted(given)}, the checker takes {sorted(expected)}")
        registry[instruction_id](instruction_id).build_description(**kwargs)


def instruction_results(item: dict, reply: str, *, loose: bool = False) -> dict[str, bool]:
    """Whether ``reply`` follows each of the item's instructions: instruction id -> bool.

    ``loose`` is IFEval's loose reading (a first or last line, or markdown asterisks,
    removed); the default is its strict reading of the reply as it is. An empty reply
    follows nothing.
    """
    from if_verifiable.common import evaluate_instructions

    validate_instruction_item(item)
    results, _ = evaluate_instructions(reply, item["instruction_id_list"], item["kwargs"], item["prompt"],
                                       _registry())
    by_id = {r.instruction_id: r.loose_pass if loose else r.strict_pass for r in results}
    return {instruction_id: bool(by_id.get(instruction_id, False)) for instruction_id in item["instruction_id_list"]}


def check_instruction(item: dict, reply: str, *, loose: bool = False) -> bool:
    """Whether ``reply`` follows every instruction of ``item`` (IFEval's strict reading unless
    ``loose``)."""
    return all(instruction_results(item, reply, loose=loose).values())


# --- what a model does on these sets --------------------------------------------------------------

def main(argv: list[str] | None = None) -> None:
    """Print one model's scores on the three sets (the base model's, to see how many items each
    measure can use): general accuracy, instruction compliance by type, chat reply lengths."""
    import argparse
    import collections
    import time

    parser = argparse.ArgumentParser(prog="python -m benchmarks.knowledge_update.retention_items",
                                     description=main.__doc__)
    parser.add_argument("--model", default=None, help="model name or path (default: the engine's default model)")
    parser.add_argument("--max-new-tokens", type=int, default=192, help="reply budget for instruction prompts")
    parser.add_argument("--chat-max-new-tokens", type=int, default=96, help="reply budget for chat prompts")
    args = parser.parse_args(argv)

    from disc_engine.evaluation._common import chat_prompt_ids, greedy_generate
    from disc_engine.evaluation.probes import probe_predictions
    from disc_engine.models import load_model, load_tokenizer, resolve_model_path

    started = time.perf_counter()
    resolve_model_path(args.model)
    tokenizer, model = load_tokenizer(args.model), load_model(args.model)
    questions = load_general_questions()
    predictions = probe_predictions(model, tokenizer, questions)
    right = sum(p == q["answer"] for p, q in zip(predictions, questions))
    print(f"general multiple choice: {right}/{len(questions)} answered correctly")

    items = load_instruction_items()
    generations = greedy_generate(model, tokenizer, [chat_prompt_ids(tokenizer, i["prompt"]) for i in items],
                                  args.max_new_tokens)
    strict = loose = ended = 0
    by_type: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0])
    for item, generation in zip(items, generations):
        reply = tokenizer.decode(generation.tokens, skip_special_tokens=True)
        results = instruction_results(item, reply)
        strict += all(results.values())
        loose += check_instruction(item, reply, loose=True)
        ended += generation.ended
        for instruction_id, passed in results.items():
            by_type[instruction_id][0] += passed
            by_type[instruction_id][1] += 1
    print(f"instruction items followed: {strict}/{len(items)} strict, {loose}/{len(items)} loose; "
          f"{ended}/{len(items)} replies ended within {args.max_new_tokens} tokens")
    for instruction_id, (passed, total) in sorted(by_type.items()):
        print(f"  {instruction_id:45s} {passed}/{total}")

    prompts = load_chat_prompts()
    chats = greedy_generate(model, tokenizer, [chat_prompt_ids(tokenizer, p) for p in prompts],
                            args.chat_max_new_tokens)
    lengths = sorted(len(g.tokens) for g in chats)
    print(f"chat prompts: {len(prompts)}; reply tokens median {lengths[len(lengths) // 2]}, "
          f"max {lengths[-1]}; {sum(g.ended for g in chats)} ended within {args.chat_max_new_tokens} tokens")
    print(f"wall time {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
