"""Request and response bodies, one family per resource: updates, jobs, models, aliases.

Request models forbid unknown fields, so a misspelt option is an error instead of being
silently ignored. Training options and probes are the engine's own torch-free definitions
(``disc_engine.options``), so the API refuses at POST time exactly what the engine would refuse
after training had begun.
"""

from __future__ import annotations

import json
import unicodedata
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator

from disc_engine.options import MethodName as Method
from disc_engine.options import Number, ProbeSpec, TrainConfig, api_fields, storable_text
from store.names import LINEAGE_NAME_PATTERN, LINEAGE_NAME_RULE

LineageName = Annotated[str, Field(pattern=LINEAGE_NAME_PATTERN, description=LINEAGE_NAME_RULE.capitalize() + ".")]


# Letters, digits, punctuation, symbols and marks are visible; separators, controls, format
# characters (zero-width space, joiners, direction marks), unassigned and private-use are not.
_INVISIBLE_CATEGORIES = frozenset({"Zs", "Zl", "Zp", "Cc", "Cf", "Cs", "Co", "Cn"})


def has_visible_text(text: str) -> bool:
    return any(unicodedata.category(ch) not in _INVISIBLE_CATEGORIES for ch in text)


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- updates ----------------------------------------------------------------------------------

def _check_strings(value: Any, what: str) -> None:
    """Every key and string inside ``value`` must be storable (``storable_text``)."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            storable_text(item, what)
        elif isinstance(item, dict):
            for key, inner in item.items():
                storable_text(str(key), what)
                pending.append(inner)
        elif isinstance(item, list):
            pending.extend(item)


class DocumentIn(_Request):
    text: str = Field(description="The new knowledge, as plain text. Must not be empty or only whitespace.")
    id: str | None = Field(None, max_length=200, description="Your identifier for the document.")
    metadata: dict[str, Any] | None = None

    @field_validator("text")
    @classmethod
    def _not_blank(cls, text: str) -> str:
        if not text.strip():
            raise ValueError("document text is empty or only whitespace")
        storable_text(text, "document text")
        if not has_visible_text(text):
            raise ValueError("document text has no visible characters (only spaces, controls or "
                             "zero-width/format characters)")
        return text

    @field_validator("id")
    @classmethod
    def _storable_id(cls, value: str | None) -> str | None:
        return None if value is None else storable_text(value, "document id")

    @field_validator("metadata")
    @classmethod
    def _storable(cls, metadata: dict[str, Any] | None) -> dict[str, Any] | None:
        try:  # the database's JSON type refuses NaN and Infinity
            json.dumps(metadata, allow_nan=False)
        except ValueError as exc:
            raise ValueError("metadata must not contain NaN or Infinity") from exc
        _check_strings(metadata, "metadata")
        return metadata


# Every training option a client may set, with the engine's own bounds and help; left out or
# null means the engine's default.
Hyperparameters = create_model(
    "Hyperparameters", __base__=_Request,
    __doc__="Training options the engine accepts; anything else is refused by name.",
    **api_fields())


class ProbeIn(ProbeSpec):
    """A multiple-choice question the new version should answer correctly."""


class PromotionIn(_Request):
    """When the new version becomes ``latest``; bounds left out come from the server's settings."""

    policy: Literal["auto", "always", "never"] = "auto"
    max_retention_kl_vs_parent: Number | None = Field(None, ge=0)
    max_retention_kl_vs_base: Number | None = Field(None, ge=0)
    min_format_compliance: Number | None = Field(None, ge=0, le=1)


class UpdateCreate(_Request):
    documents: list[DocumentIn] = Field(min_length=1, description="At least one document.")
    lineage: LineageName | None = Field(None, description="Default: the server's default lineage (or the key's).")
    method: Method = TrainConfig.model_fields["method"].default
    hyperparameters: Hyperparameters | None = None
    probes: list[ProbeIn] | None = None
    promotion: PromotionIn | None = None

    def unknown_probe_documents(self) -> list[tuple[int, str]]:
        """(index, document_id) of every probe naming no document of this batch."""
        known = {d.id for d in self.documents if d.id is not None}
        return [(i, p.document_id) for i, p in enumerate(self.probes or [])
                if p.document_id is not None and p.document_id not in known]


# --- jobs -------------------------------------------------------------------------------------

JobStatusName = Literal["queued", "running", "evaluating", "succeeded", "failed", "cancelled"]


class ProgressPublic(BaseModel):
    stage: str | None = Field(None, description=(
        "waiting, preparing (documents being split and tokenized), training, evaluating or done, as the "
        "worker reports it."))
    documents_prepared: int | None = Field(None, description="While preparing: documents split and tokenized.")
    documents_to_prepare: int | None = None
    documents_done: int = Field(0, description="Documents trained so far, over all epochs.")
    documents_total: int = Field(0, description="Documents times epochs.")
    epoch: int | None = None
    step: int | None = None
    loss: float | None = None
    tokens_per_second: float | None = None
    eta_seconds: float | None = None


class JobErrorPublic(BaseModel):
    code: str
    message: str


class VersionPublic(BaseModel):
    lineage: str
    version: int
    parent_version: int | None
    base_model: str
    method: str
    state: Literal["candidate", "promoted", "rejected"]
    is_latest: bool
    created_at: datetime
    scores: dict[str, float | None]
    artifact_kind: str
    artifact_url: str
    artifact_sha256: str
    job_id: str | None


class VersionsPublic(BaseModel):
    data: list[VersionPublic]


# The scores a worker records for every version (``disc_engine.evaluation.RESULT_KEYS``, listed here
# because that module imports torch; tests/service/test_scores.py keeps the two equal).
KNOWN_METRICS = (
    "knowledge_gap_before", "knowledge_gap_after", "knowledge_gap_closed_fraction",
    "suffix_nll_before", "suffix_nll_after",
    "probe_accuracy_before", "probe_accuracy_after", "probe_count",
    "retention_kl_vs_parent", "retention_kl_vs_base",
    "general_mc_accuracy", "general_mc_accuracy_parent",
    "format_compliance", "format_compliance_parent",
    "eval_seconds",
)
MetricName = Annotated[str, Field(min_length=1, max_length=64, description=(
    "A score's name, e.g. `probe_accuracy_after` or `retention_kl_vs_base`."))]


class VersionScoresPublic(BaseModel):
    version: int
    created_at: datetime
    state: Literal["candidate", "promoted", "rejected"] = Field(
        description="`promoted`: the version has been `latest` at some point.")
    is_latest: bool
    scores: dict[str, float | None] = Field(description=(
        "Every metric of `metrics`, by name; null where this version has no value for it."))


class ScoreHistoryPublic(BaseModel):
    """A lineage's scores over its versions, oldest first: one series per metric, for a chart."""

    lineage: str
    base_model: str
    latest_version: int | None = Field(description="The version `latest` points at; null before the first promotion.")
    metrics: list[str] = Field(description=(
        "The metrics in each version's `scores`: the ones asked for, in that order; without `metric`, "
        "every metric some version has, by name."))
    data: list[VersionScoresPublic]


class JobPublic(BaseModel):
    id: str
    status: JobStatusName
    lineage: str
    method: str
    progress: ProgressPublic
    cancel_requested: bool
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    error: JobErrorPublic | None
    attempts: int
    parent_version: int | None
    result_version: VersionPublic | None


class JobsPublic(BaseModel):
    data: list[JobPublic]
    next_cursor: str | None


class JobEventPublic(BaseModel):
    id: int
    kind: str
    message: str
    data: dict[str, Any] | None
    created_at: datetime


class JobEventsPublic(BaseModel):
    data: list[JobEventPublic]


class LineagePublic(BaseModel):
    name: str
    base_model: str
    created_at: datetime
    version_count: int
    latest_version: int | None = Field(description="The version `latest` points at; null before the first promotion.")


class LineagesPublic(BaseModel):
    data: list[LineagePublic]


# --- aliases ----------------------------------------------------------------------------------

class AliasMovePublic(BaseModel):
    alias: str
    from_version: int | None
    to_version: int
    reason: str
    actor: str | None
    created_at: datetime


class AliasHistoryPublic(BaseModel):
    data: list[AliasMovePublic]


# --- health -----------------------------------------------------------------------------------

class HealthPublic(BaseModel):
    status: Literal["ok", "unavailable"]
    checks: dict[str, str] = {}
