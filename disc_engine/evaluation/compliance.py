"""Chat-format compliance: does the model still close its turn and follow simple, verifiable
instructions ("answer in one word", "answer with a number only", ...)?

Each instruction prompt (``data/instructions.json``) names a checker from ``CHECKERS`` and its
arguments. A reply passes when the model ended its turn (emitted its end-of-turn token) within
``max_new_tokens`` AND the checker accepts the reply's text. Checkers judge form, not truth:
"42" and "41" both pass "a number only".
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ._common import DiskCache, chat_prompt_ids, greedy_generate, load_json

DEFAULT_MAX_NEW_TOKENS = 64

_TRAILING_PUNCTUATION = ".!?;:,"
_WORD = re.compile(r"[^\W_]+(?:['’-][^\W_]+)*")


def _core(text: str) -> str:
    """The reply without surrounding whitespace, quotes and final punctuation."""
    return text.strip().strip("\"'`*").rstrip(_TRAILING_PUNCTUATION).strip()


def one_word(text: str) -> bool:
    core = _core(text)
    return bool(core) and len(core.split()) == 1 and len(_WORD.findall(core)) == 1


def number_only(text: str) -> bool:
    return re.fullmatch(r"[-+]?\d[\d,]*(\.\d+)?", _core(text)) is not None


def yes_or_no(text: str) -> bool:
    return _core(text).lower() in {"yes", "no"}


def uppercase(text: str) -> bool:
    return any(c.isalpha() for c in text) and text == text.upper()


def lowercase(text: str) -> bool:
    return any(c.isalpha() for c in text) and text == text.lower()


def comma_list(text: str, count: int) -> bool:
    items = [item.strip() for item in _core(text).split(",")]
    # "and" before the last item is still a list of that many things.
    items = [re.sub(r"^and\s+", "", item) for item in items]
    return len(items) == count and all(items) and all(len(item.split()) <= 3 for item in items)


def max_words(text: str, limit: int) -> bool:
    words = _WORD.findall(text)
    return 0 < len(words) <= limit


def starts_with(text: str, prefix: str) -> bool:
    return text.strip().strip("\"'*").lower().startswith(prefix.lower())


def ends_with(text: str, suffix: str) -> bool:
    return text.rstrip().rstrip("\"'*").endswith(suffix)


def starts_with_any(text: str, prefixes: list[str]) -> bool:
    return any(starts_with(text, prefix) for prefix in prefixes)


def avoids(text: str, forbidden: str) -> bool:
    return bool(text.strip()) and forbidden.lower() not in text.lower()


def contains_all(text: str, words: list[str]) -> bool:
    return all(re.search(rf"\b{re.escape(word)}\b", text, flags=re.IGNORECASE) for word in words)


def numbered_list(text: str, count: int) -> bool:
    items = re.findall(r"^\s*\d+[.)]\s+\S", text, flags=re.MULTILINE)
    return len(items) == count


def bullet_list(text: str, count: int) -> bool:
    items = re.findall(r"^\s*[-*•]\s+\S", text, flags=re.MULTILINE)
    return len(items) == count


def json_with_key(text: str, key: str) -> bool:
    body = text.strip()
    fenced = re.fullmatch(r"```(?:json)?\s*(.*?)\s*```", body, flags=re.DOTALL)
    if fenced:
        body = fenced.group(1)
    try:
        value = json.loads(body)
    except json.JSONDecodeError:
        return False
    return isinstance(value, dict) and key in value


CHECKERS: dict[str, Callable[..., bool]] = {
    "one_word": one_word,
    "number_only": number_only,
    "yes_or_no": yes_or_no,
    "uppercase": uppercase,
    "lowercase": lowercase,
    "comma_list": comma_list,
    "max_words": max_words,
    "starts_with": starts_with,
    "ends_with": ends_with,
    "starts_with_any": starts_with_any,
    "avoids": avoids,
    "contains_all": contains_all,
    "numbered_list": numbered_list,
    "bullet_list": bullet_list,
    "json_with_key": json_with_key,
}


def load_instructions() -> list[dict]:
    instructions = load_json("instructions.json")
    for item in instructions:
        validate_instruction(item)
    return instructions


def validate_instruction(item: dict) -> None:
    if not isinstance(item.get("prompt"), str) or not item["prompt"].strip():
        raise ValueError(f"instruction needs a non-empty prompt: {item!r}")
    if item.get("check") not in CHECKERS:
        raise ValueError(f"instruction check {item.get('check')!r} is not one of {sorted(CHECKERS)}")


def check_reply(item: dict, text: str) -> bool:
    return CHECKERS[item["check"]](text, **item.get("args", {}))


@dataclass(frozen=True)
class ComplianceResult:
    prompt: str
    reply: str
    ended: bool      # closed its turn within the token budget
    followed: bool   # the checker accepts the reply's text
    passed: bool     # both


def compliance_results(model, tokenizer, *, instructions: Sequence[dict] | None = None,
                       max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS) -> list[ComplianceResult]:
    """Greedy replies to the instruction prompts, each judged."""
    instructions = load_instructions() if instructions is None else list(instructions)
    for item in instructions:
        validate_instruction(item)
    prompts = [chat_prompt_ids(tokenizer, item["prompt"]) for item in instructions]
    generations = greedy_generate(model, tokenizer, prompts, max_new_tokens)
    results = []
    for item, generation in zip(instructions, generations):
        reply = tokenizer.decode(generation.tokens, skip_special_tokens=True).strip()
        followed = check_reply(item, reply)
        results.append(ComplianceResult(prompt=item["prompt"], reply=reply, ended=generation.ended,
                                        followed=followed, passed=generation.ended and followed))
    return results


def format_compliance(model, tokenizer, *, instructions: Sequence[dict] | None = None,
                      max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS, cache_dir: str | None = None,
                      model_key: str | None = None) -> float:
    """Fraction of instruction prompts whose greedy reply ends its turn and follows the instruction.

    With ``cache_dir`` the result is stored under the model's identity (``model_key``, or its
    fingerprint), so a version's score is computed once: when it is the new version, and read
    back when it is the parent of the next.
    """
    instructions = load_instructions() if instructions is None else list(instructions)
    if not instructions:
        raise ValueError("format_compliance needs at least one instruction prompt")

    def score() -> float:
        results = compliance_results(model, tokenizer, instructions=instructions, max_new_tokens=max_new_tokens)
        return sum(r.passed for r in results) / len(results)

    return DiskCache(cache_dir).memoize("format-compliance", model, tokenizer, model_key,
                                        (instructions, max_new_tokens), score)
