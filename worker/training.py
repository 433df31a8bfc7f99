"""Training the new version in the job's scratch folder, resuming from the job's checkpoints in
the artifact store (wherever the attempt that wrote them ran)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from worker.artifacts import JobArtifacts
from worker.cancel_watch import CancelWatch
from worker.job_record import JobInput, JobRecord
from worker.outcomes import ClaimLost, JobCancelled
from worker.parent import NextVersion
from worker.progress import ProgressReporter


@dataclass
class TrainedVersion:
    key: str            # the artifact's key in the store, as registered (``artifact_uri``)
    artifact_dir: str   # the local copy in the job's scratch folder, which evaluation reads
    sha256: str         # the store manifest's directory checksum, as registered
    result: Any         # disc_engine.trainer.TrainResult


@contextmanager
def discarded_on_failure(artifacts: JobArtifacts, trained: TrainedVersion) -> Iterator[None]:
    """A published version nobody registered is removed, so no one trusts files nobody vouched for.

    Not when the claim was lost: the attempt that took the job over publishes under the same key,
    and its version may already be registered there.
    """
    try:
        yield
    except ClaimLost:
        raise
    except BaseException:
        artifacts.discard_version(trained.key)
        raise


def train_version(record: JobRecord, job: JobInput, config, next_version: NextVersion, stop: CancelWatch,
                  device: str, artifacts: JobArtifacts) -> TrainedVersion:
    """Train (resuming from the store's newest checkpoint of this job) and publish the version."""
    from disc_engine.trainer import TrainingCancelled, train

    resumed_from = artifacts.restore_checkpoint()
    if resumed_from is not None:
        record.event("checkpoint_restored", f"resuming from {resumed_from} in the artifact store",
                     {"checkpoint": resumed_from})
    out_dir = artifacts.output_dir()
    reporter = ProgressReporter(record)
    parent_dir = next_version.parent_dir
    try:
        result = train(job.documents, out_dir=str(out_dir), config=config, base_model=job.base_model,
                       parent=str(parent_dir) if parent_dir is not None else None,
                       progress=reporter,
                       checkpoint_dir=str(artifacts.checkpoint_dir),
                       on_checkpoint=artifacts.share_checkpoint,
                       should_stop=stop, device=device)
    except TrainingCancelled as exc:
        raise JobCancelled() from exc
    record_epoch_selection(record, result.metrics.get("epoch_selection"))
    key, manifest = artifacts.publish_version(result.artifact_dir, job.lineage_name, next_version.number)
    trained = TrainedVersion(key=key, artifact_dir=result.artifact_dir, sha256=manifest.directory_sha256,
                             result=result)
    with discarded_on_failure(artifacts, trained):
        sha256 = trained.sha256
        report = result.report
        # What was skipped, altered or repeated is said in the job's events, document by document.
        noted = [f"{len(items)} {what}" for what, items in (
            ("skipped", report.documents_skipped), ("altered", report.documents_altered),
            ("repeated", report.documents_duplicated)) if items]
        record.event("trained", f"{result.steps} steps; {report.documents_trained} of {report.documents_total} "
                                f"documents trained" + (f" ({', '.join(noted)})" if noted else "")
                                + f"; artifact {key}",
                     {"steps": result.steps, "artifact_sha256": sha256,
                      "documents_trained": report.documents_trained,
                      "documents_skipped": report.documents_skipped,
                      "documents_altered": report.documents_altered,
                      "documents_duplicated": report.documents_duplicated,
                      "artifact_bytes": manifest.total_bytes,
                      "resumed_at_document": reporter.resumed_at})
    return trained


def record_epoch_selection(record: JobRecord, selection: dict | None) -> None:
    """One ``epoch`` event per checked epoch (0: the parent) and the choice, for the API and the demo."""
    if not selection:
        return
    for point in selection["trajectory"]:
        verdict = "kept as best so far" if point["kept"] else (
            "over the retention budget" if not point["within_budget"] else "no knowledge gain")
        record.event("epoch", f"epoch {point['epoch']}: KL to parent {point['retention_kl_vs_parent']:.4f}, "
                              f"documents' closed-book gap closed {point['knowledge']:.2f}; {verdict}", point)
    best = selection["best_epoch"]
    record.event("epoch_selected", f"kept epoch {best}" + (" (the parent unchanged)" if best == 0 else "")
                 + (f"; stopped: {selection['stopped_because']}" if selection.get("stopped_because") else ""),
                 {"best_epoch": best, "budget": selection["budget"],
                  "stopped_because": selection.get("stopped_because")})
