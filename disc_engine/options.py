"""The one definition of a training run's options and of a probe's rules. Imports no torch.

Everything that accepts training options derives from ``TrainConfig``: the trainer uses it
directly, the API's ``Hyperparameters`` schema is built from its fields (``api_fields``), the
``disc train`` flags take their choices and help from it, and the benchmarks their method
names. A probe is checked by ``ProbeSpec`` in the API at POST time and again by the engine
before scoring, so a probe the engine would refuse is never accepted for a job.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    ValidationError,
    field_validator,
    model_validator,
)

from disc_engine.objectives import DEFAULT_METHOD, OBJECTIVES

# Defaults of an update, chosen on the tuning corpora only (TUNING_SEEDS; the held-out report on
# REPORT_SEEDS is in docs/results/knowledge_update.md, "Updates that teach: more epochs, recall views").
# Learning rate and budget, from "Calibrating the retention budget" (30 documents, 180 chat
# questions, 110 instruction prompts):
#   python -m benchmarks.knowledge_update.frontier --split tuning --documents 30 --methods disc \
#       --lrs 2e-3,1e-3 --epochs 4 --full-retention --full-retention-every-epoch
# DiSC with LoRA at 1e-3 kept instruction compliance within about 5 points at a KL to the parent of
# 0.19-0.29 (-4.5 / -3.6 / -7.3 / -5.5 points after epochs 1-4; the interval reaches -12.7); at 2e-3
# the first epoch already cost -10.9 [-19.1, -2.7] at KL 0.28. So 1e-3 and a KL budget of 0.3.
# Epochs, from the 6-epoch tuning run (12 documents, 72 chat questions, 72 clozes):
#   python -m benchmarks.knowledge_update.frontier --split tuning --documents 12 --methods disc \
#       --lrs 1e-3 --epochs 6
# the KL rose in the first epoch and then wandered around a plateau (0.25 / 0.20 / 0.30 / 0.26 /
# 0.27 / 0.24) while knowledge kept rising: chat questions +12.5 points after 3 epochs, +19.4
# [+8.3, +30.6] after 6, the closed-book gap closed 0.60 -> 0.78. So up to 6 epochs (was 4), each
# kept only within the budget (``disc_engine.budget``: an epoch just over it is skipped, not fatal).
# Full fine-tuning and larger models need far smaller rates (the paper used 3e-6 for 7B models);
# the budget then keeps the parent if an epoch drifts too far.
# Method and chat replay, from "Chat replay" (12 tuning documents, 72 chat questions, 110 instruction
# prompts measured every second epoch; 30 documents for replay alone):
#   python -m benchmarks.knowledge_update.frontier --split tuning --documents 12 --methods disc_recall \
#       --lrs 1e-3 --epochs 6 --measure-every 2 --full-retention --full-retention-every-epoch --set replay_weight=1
# disc_recall with replay 1: +4.2 / +19.4 / +26.4 [+13.9, +38.9] chat-question points after epochs
# 2 / 4 / 6 at KL 0.08 / 0.07 / 0.06 (without replay: the same knowledge within +-3 points, at KL
# 0.28 / 0.31 / 0.42, so the budget kept epoch 2 and +5.6), compliance -1.8 / +0.9 / -3.6 points
# from the parent's 41.8%. At 2e-3 plain DiSC's compliance fell 11 points [5, 18] more than with
# replay over four epochs on 30 documents. So disc_recall (DEFAULT_METHOD) with replay 1, at 1e-3.
# The method then moved to sft_kl with the same replay, rate and epochs (objectives.DEFAULT_METHOD).
DEFAULT_LEARNING_RATE = 1e-3
DEFAULT_EPOCHS = 6
DEFAULT_RETENTION_BUDGET_KL = 0.3
DEFAULT_REPLAY_WEIGHT = 1.0



def _finite_number(value: Any) -> float:
    # JSON from Python's parser may carry NaN and Infinity; no option accepts them, nor
    # strings or booleans that a lax float would coerce.
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError("must be a finite number")
    return float(value)


def _whole_number(value: Any) -> Any:
    # NaN and Infinity are numbers a lax reader might call "not an integer"; say what is wrong.
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("must be a finite number")
    return value


Number = Annotated[float, BeforeValidator(_finite_number)]
Integer = Annotated[StrictInt, BeforeValidator(_whole_number)]
# Seeds go to torch.manual_seed, which takes a signed 64-bit integer.
MAX_SEED = 2**63 - 1

MethodName = Literal[tuple(OBJECTIVES)]  # type: ignore[valid-type]

# Options a caller of the engine may set but a client of the service may not: the worker chooses
# checkpoint spacing and the context length from its own model.
ENGINE_ONLY_FIELDS = frozenset({"checkpoint_every", "max_context", "teacher_cache_mb", "precision",
                                "documents_per_step"})
# Options that change how fast a run is, never its result: not part of a checkpoint's fingerprint.
RESULT_NEUTRAL_FIELDS = frozenset({"checkpoint_every", "teacher_cache_mb"})


class TrainConfig(BaseModel):
    """Options of one training run. Every field has its bounds and help text here, and only here."""

    model_config = ConfigDict(extra="forbid", frozen=False, validate_assignment=True)

    method: MethodName = Field(DEFAULT_METHOD, description="Training objective: " + "; ".join(
        f"'{o.name}': {o.description}" for o in OBJECTIVES.values()) + ".")
    learning_rate: Number = Field(DEFAULT_LEARNING_RATE, gt=0, le=1,
                                  description="Constant AdamW learning rate, in (0, 1].")
    epochs: Integer = Field(DEFAULT_EPOCHS, ge=1, le=20,
                              description="Passes over the documents (1..20), each in a freshly shuffled "
                                          "(seeded) order.")
    num_splits: Annotated[Integer, Field(ge=1, le=64)] | Literal["all"] = Field(
        5, description="DiSC split points per document (k, 1..64): k-1 random sentences plus the last; "
                       "\"all\" uses every sentence after the first.")
    temperature: Number = Field(2.0, gt=0, le=10,
                                description="DiSC distillation temperature T, in (0, 10] (the loss is scaled by T²).")
    beta: Number = Field(0.1, ge=0, le=10, description="Weight of the KL term for 'sft_kl', in [0, 10].")
    full_finetune: StrictBool = Field(
        False, description="Train every weight instead of a LoRA adapter (the teacher is then a frozen copy).")
    lora_r: Integer = Field(16, ge=1, le=256,
                              description="LoRA rank of a new adapter, 1..256 (a chained version keeps its parent's).")
    lora_alpha: Number = Field(32, gt=0, le=4096, description="LoRA scaling alpha of a new adapter.")
    lora_dropout: Number = Field(0.0, ge=0, lt=1,
                                 description="Dropout on the LoRA path of a new adapter, in [0, 1).")
    seed: Integer = Field(0, ge=0, le=MAX_SEED,
                            description="Seed for adapter initialisation, document order and split points.")
    retention_budget_kl: Number | None = Field(
        DEFAULT_RETENTION_BUDGET_KL, ge=0, le=100,
        description="Retention budget: train epoch by epoch (up to `epochs`), check the KL to the parent on "
                    "the parent's own chat replies after each epoch, stop when it exceeds this bound or the "
                    "documents' closed-book gap stops closing, and keep the best epoch within it (the parent "
                    "itself if none fits). Default 0.3 (calibrated against instruction compliance on the "
                    "tuning corpora). A bound of 100 keeps every epoch's gain; to the engine, None means no "
                    "check at all.")
    retention_budget_format_drop: Number | None = Field(
        None, ge=0, le=1,
        description="Optional second bound of the retention budget: how far the share of the format check's "
                    "instruction prompts (8, each judged by code) whose reply follows its instruction may fall "
                    "below the parent's after an epoch, in [0, 1]; an epoch past it counts as over the budget. "
                    "Off by default: the check generates 8 replies per epoch (on a CPU about one epoch of a "
                    "6-document update) and one prompt moves it 0.125. Needs retention_budget_kl.")
    replay_weight: Number = Field(
        DEFAULT_REPLAY_WEIGHT, ge=0, le=10,
        description="Chat replay, in [0, 10]: every step also distils the parent's own greedy replies to 2 general "
                    "chat prompts (a bundled set that no evaluation scores), adding this weight times their mean "
                    "per-token KL(parent || student) to the loss, so the chat format is trained to stay while the "
                    "documents are learned. Default 1 (chosen on the tuning corpora); 0: off, the objective alone.")
    checkpoint_every: Integer = Field(10, ge=1,
                                        description="Documents between resumable checkpoints (when a "
                                                    "checkpoint directory is given).")
    max_context: Integer | None = Field(
        None, ge=2, description="Longest input in tokens; longer documents are truncated or windowed. "
                                "Default: the model's max_position_embeddings.")
    documents_per_step: Integer = Field(
        1, ge=1, le=64, description="Documents per optimizer step. 1 is the paper's (one document, one step); "
                                    "more read several documents as one padded batch (disc) or average their "
                                    "losses (other methods), for throughput on a GPU.")
    precision: Literal["auto", "bf16", "fp32"] = Field(
        "auto", description="Compute precision of training steps: bf16 autocast (weights and optimizer stay "
                            "fp32), or fp32. auto: bf16 on CUDA, fp32 on CPU.")
    teacher_cache_mb: Integer = Field(
        2048, ge=0, description="Memory for the teacher's logits kept across epochs (method disc, more than "
                                "one epoch): later epochs then run no teacher forward for what fits. 0: off.")

    @model_validator(mode="before")
    @classmethod
    def _an_object(cls, values: Any) -> Any:
        if not isinstance(values, dict):
            raise ValueError(f"hyperparameters must be an object; got {type(values).__name__}")
        return values

    @model_validator(mode="after")
    def _format_bound_needs_the_budget(self) -> TrainConfig:
        if self.retention_budget_format_drop is not None and self.retention_budget_kl is None:
            raise ValueError("retention_budget_format_drop needs retention_budget_kl: the format bound is part "
                             "of the retention budget")
        return self

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Build from user-supplied options; the error names every field that is wrong or unknown."""
        if isinstance(values, dict):
            unknown = sorted(map(str, set(values) - set(cls.model_fields)))
            if unknown:
                raise ValueError(f"unknown hyperparameter(s): {', '.join(unknown)}; "
                                 f"known: {', '.join(cls.model_fields)}")
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            raise ValueError(describe_errors(exc)) from None

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump()

    @property
    def objective(self):
        return OBJECTIVES[self.method]


def api_fields() -> dict[str, tuple[Any, Any]]:
    """``TrainConfig``'s client-settable fields as ``create_model`` arguments, each optional.

    ``None`` (or leaving the field out) means the engine's default, so the API schema carries the
    same types, bounds and help as the engine without restating them.
    """
    fields = {}
    for name, info in TrainConfig.model_fields.items():
        if name in ENGINE_ONLY_FIELDS or name == "method":
            continue
        constrained = Annotated[info.annotation, *info.metadata] if info.metadata else info.annotation
        fields[name] = (constrained | None, Field(None, description=info.description))
    return fields


def describe_errors(exc: ValidationError) -> str:
    """One line per problem, each naming its field: ``learning_rate: must be <= 1``."""
    parts = []
    for error in exc.errors():
        message = error["msg"].removeprefix("Value error, ")
        where = ".".join(str(p) for p in error["loc"] if not str(p).startswith("function-"))
        if error["type"] == "extra_forbidden":
            parts.append(f"unknown field {where!r}")
        else:
            parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)


# --- probes ------------------------------------------------------------------------------------

MAX_PROBE_QUESTION_CHARS = 2_000
MAX_PROBE_OPTION_CHARS = 500
MAX_PROBE_OPTIONS = 10


def storable_text(value: str, what: str) -> str:
    """``value`` if a database can store it and UTF-8 can encode it; else a ValueError naming ``what``.

    PostgreSQL refuses NUL in text and JSON, and a lone surrogate cannot be encoded at all.
    """
    if "\x00" in value:
        raise ValueError(f"{what} must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{what} must not contain unpaired surrogate code points") from None
    return value


class ProbeSpec(BaseModel):
    """A multiple-choice question: a question, 2..10 distinct non-empty options, the right one's index."""

    model_config = ConfigDict(extra="forbid")

    question: str = Field(min_length=1, max_length=MAX_PROBE_QUESTION_CHARS)
    options: list[Annotated[str, Field(min_length=1, max_length=MAX_PROBE_OPTION_CHARS)]] = Field(
        min_length=2, max_length=MAX_PROBE_OPTIONS)
    answer: Integer = Field(ge=0, description="Index into options of the correct one.")
    document_id: str | None = Field(None, max_length=200,
                                    description="id of the batch's document this probe tests.")

    @field_validator("question")
    @classmethod
    def _question_not_blank(cls, question: str) -> str:
        if not question.strip():
            raise ValueError("probe question is empty or only whitespace")
        return storable_text(question, "probe question")

    @field_validator("options")
    @classmethod
    def _options_usable(cls, options: list[str]) -> list[str]:
        for i, option in enumerate(options):
            if not option.strip():
                raise ValueError(f"option {i} is empty or only whitespace")
            storable_text(option, f"option {i}")
        # Options that differ only in surrounding space or case score as the same reply.
        seen: dict[str, int] = {}
        for i, option in enumerate(options):
            key = option.strip().casefold()
            if key in seen:
                raise ValueError(f"options {seen[key]} and {i} are the same answer ({option.strip()!r}); "
                                 "options must be distinct")
            seen[key] = i
        return options

    @model_validator(mode="after")
    def _answer_in_range(self) -> ProbeSpec:
        if self.answer >= len(self.options):
            raise ValueError(f"answer {self.answer} is out of range for the {len(self.options)} options "
                             f"(0..{len(self.options) - 1})")
        return self


def validate_probe(probe: Any) -> None:
    """Raise ``ValueError`` naming what is wrong with one probe (a dict), or return None."""
    if not isinstance(probe, dict):
        raise ValueError(f"a probe must be an object with question, options and answer; "
                         f"got {type(probe).__name__}")
    try:
        # Extra keys (a corpus's bookkeeping such as "kind") are the caller's business here;
        # the API forbids them in its own schema.
        ProbeSpec.model_validate({k: probe[k] for k in ProbeSpec.model_fields if k in probe})
    except ValidationError as exc:
        raise ValueError(f"invalid probe: {describe_errors(exc)}") from None
