"""Scoring the new version: knowledge gained and behaviour retained against parent and base."""

from __future__ import annotations

import gc
import math
from typing import Any

from store.models import JobStatus
from store.settings import Settings
from worker.artifacts import evaluation_cache
from worker.cancel_watch import CancelWatch
from worker.job_record import JobInput, JobRecord
from worker.model_cache import cached_base_model, cached_tokenizer
from worker.outcomes import JobFailed, short_message
from worker.parent import NextVersion
from worker.training import TrainedVersion


def evaluate_version(record: JobRecord, settings: Settings, job: JobInput, config, next_version: NextVersion,
                     trained: TrainedVersion, stop: CancelWatch, device: str) -> dict[str, float | None]:
    """The new version's scores, recorded as the job's ``evaluated`` event."""
    stop.check()
    documents_total = len(job.documents) * config.epochs
    record.update(status=JobStatus.evaluating,
                  progress={"stage": "evaluating", "documents_done": documents_total,
                            "documents_total": documents_total, "step": trained.result.steps})
    record.event("evaluating", "scoring knowledge gained and behaviour retained")
    try:
        evaluation = _evaluate(settings, job, next_version, trained, device, config.seed)
    except ValueError as exc:
        raise JobFailed("evaluation_failed", short_message(f"evaluating the new version failed: {exc}")) from exc
    scores = numeric_scores(evaluation)
    record.event("evaluated", "", {"scores": scores})
    stop.check()
    return scores


def numeric_scores(evaluation: dict[str, Any]) -> dict[str, float | None]:
    """Every score of an evaluation; None (and a non-finite number) records "not measured"."""
    scores: dict[str, float | None] = {}
    for name, value in evaluation.items():
        if value is None:
            scores[name] = None
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            scores[name] = float(value) if math.isfinite(value) else None
    return scores


def _evaluate(settings: Settings, job: JobInput, next_version: NextVersion, trained: TrainedVersion,
              device: str, seed: int) -> dict:
    from disc_engine.artifacts import load_artifact, read_meta
    from disc_engine.evaluation import evaluate_update

    parent, parent_dir = next_version.parent, next_version.parent_dir
    base = cached_base_model(job.base_model, device)
    tokenizer = cached_tokenizer(job.base_model)
    recorded = read_meta(trained.artifact_dir).get("base_model_checksum")
    base_key = f"base:{recorded}" if recorded else None
    # Adapters merged into private copies of the base: the same functions, scored at the speed
    # of a plain model.
    parent_model = load_artifact(parent_dir, base_model=job.base_model, device=device, merged=True) \
        if parent_dir is not None else base
    new_model = load_artifact(trained.artifact_dir, base_model=job.base_model, device=device, merged=True)
    try:
        # Artifact checksums name the models in the evaluation cache, so the base's and the
        # parent's reference answers are computed once per lineage step, not once per job.
        return evaluate_update(new_model=new_model, parent_model=parent_model, base_model=base,
                               tokenizer=tokenizer, documents=job.documents, probes=job.probes or None,
                               cache_dir=evaluation_cache(settings), seed=seed,
                               new_key=f"artifact:{trained.sha256}",
                               parent_key=f"artifact:{parent.artifact_sha256}" if parent is not None else base_key,
                               base_key=base_key)
    finally:
        del new_model, parent_model
        gc.collect()
        if device.startswith("cuda"):
            import torch

            torch.cuda.empty_cache()
