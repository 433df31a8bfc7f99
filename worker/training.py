"""Training the new version into its artifact directory, resuming from the job's checkpoints."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from store import storage
from store.settings import Settings
from worker.cancel_watch import CancelWatch
from worker.job_record import JobInput, JobRecord
from worker.outcomes import JobCancelled
from worker.parent import NextVersion
from worker.progress import ProgressReporter


@dataclass
class TrainedVersion:
    relpath: str        # the artifact's path under the artifact root, as registered
    artifact_dir: str
    sha256: str
    result: Any         # disc_engine.trainer.TrainResult


@contextmanager
def discarded_on_failure(artifact_dir: str) -> Iterator[None]:
    """An artifact nobody registered is removed, so no one trusts files nobody vouched for."""
    try:
        yield
    except BaseException:
        storage.remove_tree(artifact_dir)
        raise


def train_version(record: JobRecord, settings: Settings, job: JobInput, config, next_version: NextVersion,
                  stop: CancelWatch, device: str) -> TrainedVersion:
    from disc_engine.trainer import TrainingCancelled, train

    relpath = storage.version_relpath(job.lineage_name, next_version.number, record.job_id)
    out_dir = storage.artifact_root(settings) / relpath
    # Left by an attempt that died between writing and registering: train again (from the
    # checkpoints) rather than trust files nobody vouched for.
    storage.remove_tree(out_dir)
    checkpoints = storage.checkpoint_dir(settings, record.job_id)
    checkpoints.mkdir(parents=True, exist_ok=True)
    reporter = ProgressReporter(record)
    parent_dir = next_version.parent_dir
    try:
        result = train(job.documents, out_dir=str(out_dir), config=config, base_model=job.base_model,
                       parent=str(parent_dir) if parent_dir is not None else None,
                       progress=reporter,
                       checkpoint_dir=str(checkpoints),
                       should_stop=stop, device=device)
    except TrainingCancelled as exc:
        raise JobCancelled() from exc
    record_epoch_selection(record, result.metrics.get("epoch_selection"))
    with discarded_on_failure(result.artifact_dir):
        sha256 = storage.directory_sha256(result.artifact_dir)
        report = result.report
        # What was skipped, altered or repeated is said in the job's events, document by document.
        noted = [f"{len(items)} {what}" for what, items in (
            ("skipped", report.documents_skipped), ("altered", report.documents_altered),
            ("repeated", report.documents_duplicated)) if items]
        record.event("trained", f"{result.steps} steps; {report.documents_trained} of {report.documents_total} "
                                f"documents trained" + (f" ({', '.join(noted)})" if noted else "")
                                + f"; artifact {relpath}",
                     {"steps": result.steps, "artifact_sha256": sha256,
                      "documents_trained": report.documents_trained,
                      "documents_skipped": report.documents_skipped,
                      "documents_altered": report.documents_altered,
                      "documents_duplicated": report.documents_duplicated,
                      "resumed_at_document": reporter.resumed_at})
    return TrainedVersion(relpath=relpath, artifact_dir=result.artifact_dir, sha256=sha256, result=result)


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
