"""One update job, start to end: claim → lock the lineage → train → save → evaluate → register → promote.

Plain functions over a ``sessionmaker`` and ``Settings``, so the Celery task is one line and
tests call ``run_job`` directly.

Delivery is at-least-once (late acknowledgement, the reconciler re-sending), so every step is
safe to repeat: the claim is a compare-and-set on (status, attempts) that refuses a job another
worker is visibly running (fresh heartbeat) and accepts one whose worker died (stale heartbeat);
training resumes from the job's checkpoints; every later write is fenced by the attempt number,
so a worker that lost its claim cannot overwrite its successor's work.

Versions of one lineage form a chain: version n is trained from version n−1, its teacher. Jobs of
one lineage are serialised by a lock on the lineage held from choosing the parent until the new
version is committed (a row lock on PostgreSQL, a file lock beside the artifacts on SQLite), so
two jobs never pick the same parent and the lineage never forks.
"""

from __future__ import annotations

import enum
import fcntl
import gc
import logging
import math
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

from sqlalchemy import select, update
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from store import repo, storage
from store.models import Document, Job, JobEvent, JobStatus, Lineage, ModelVersion, VersionState
from store.settings import Settings

log = logging.getLogger("disc.worker")

HEARTBEAT_INTERVAL_S = 10.0
# A running job whose heartbeat is older than this has lost its worker; several missed beats
# are tolerated so that a busy machine is not mistaken for a dead one.
PROGRESS_INTERVAL_S = 2.0
CANCEL_POLL_S = 1.0
LOCK_POLL_S = 1.0
ERROR_MESSAGE_CHARS = 500

_ACTIVE = (JobStatus.running, JobStatus.evaluating)


class Outcome(str, enum.Enum):
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"
    skipped = "skipped"   # nothing to do: unknown, already finished, or running elsewhere


class JobFailed(Exception):
    """Ends the job as failed with a machine-readable code and a message fit for clients."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


class JobCancelled(Exception):
    """The job's cancellation was requested; raised at the next safe point."""


class ClaimLost(Exception):
    """Another worker claimed this job after us (our heartbeat was taken for dead)."""


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _aware(moment: datetime | None) -> datetime | None:
    # SQLite hands timestamps back without a zone; they are stored in UTC.
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment


def heartbeat_is_stale(job: Job, stale_after_s: float, now: datetime | None = None) -> bool:
    beat = _aware(job.heartbeat_at)
    return beat is None or beat < (now or utcnow()) - timedelta(seconds=stale_after_s)


# --- models, loaded once per worker process -----------------------------------------------------

_model_lock = threading.Lock()
_base_models: dict[tuple[str, str], Any] = {}
_tokenizers: dict[str, Any] = {}


def cached_base_model(name: str, device: str):
    """The base model in eval mode, loaded on first use and kept for the process's lifetime.

    Never modified: adapters are applied to separate copies (``load_artifact``).
    """
    from disc_engine.models import load_model

    key = (name, device)
    with _model_lock:
        if key not in _base_models:
            _base_models[key] = load_model(name, device=device).requires_grad_(False)
        return _base_models[key]


def cached_tokenizer(name: str):
    from disc_engine.models import load_tokenizer

    with _model_lock:
        if name not in _tokenizers:
            _tokenizers[name] = load_tokenizer(name)
        return _tokenizers[name]


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


# --- promotion policy ---------------------------------------------------------------------------

POLICIES = ("auto", "always", "never")


@dataclass(frozen=True)
class PromotionDecision:
    promote: bool
    reason: str


def decide_promotion(promotion: dict | None, scores: dict[str, float | None],
                     settings: Settings) -> PromotionDecision:
    """Whether a new version becomes ``latest``.

    ``auto`` (the default) promotes only a version that kept the parent's and the base's
    behaviour within bounds (``retention_kl_vs_parent``/``_vs_base`` at most, format compliance
    at least); the job's ``promotion`` object may tighten or loosen each bound. A score that is
    missing counts as out of bounds: it cannot be shown to be within them.
    """
    promotion = promotion or {}
    policy = promotion.get("policy", "auto")
    if policy not in POLICIES:
        raise JobFailed("invalid_input", f"promotion policy must be one of {', '.join(POLICIES)}; got {policy!r}")
    if policy == "always":
        return PromotionDecision(True, "policy 'always'")
    if policy == "never":
        return PromotionDecision(False, "policy 'never'")

    def bound(key: str, default: float) -> float:
        value = promotion.get(key)
        return default if value is None else float(value)

    bounds = [
        ("retention_kl_vs_parent", "max", bound("max_retention_kl_vs_parent",
                                                settings.promote_max_retention_kl_vs_parent)),
        ("retention_kl_vs_base", "max", bound("max_retention_kl_vs_base", settings.promote_max_retention_kl_vs_base)),
        ("format_compliance", "min", bound("min_format_compliance", settings.promote_min_format_compliance)),
    ]
    misses = []
    for name, kind, bound in bounds:
        value = scores.get(name)
        if value is None:
            misses.append(f"{name} was not measured")
        elif kind == "max" and value > bound:
            misses.append(f"{name} {value:.4g} > {bound:g}")
        elif kind == "min" and value < bound:
            misses.append(f"{name} {value:.4g} < {bound:g}")
    if misses:
        return PromotionDecision(False, "kept as a candidate: " + "; ".join(misses))
    return PromotionDecision(True, "within the retention bounds of policy 'auto'")


def numeric_scores(evaluation: dict[str, Any]) -> dict[str, float | None]:
    """Every score of an evaluation; None (and a non-finite number) records "not measured"."""
    scores: dict[str, float | None] = {}
    for name, value in evaluation.items():
        if value is None:
            scores[name] = None
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            scores[name] = float(value) if math.isfinite(value) else None
    return scores


# --- the job's record, written in short transactions --------------------------------------------

class JobRecord:
    """Writes about one claimed attempt of a job, each fenced by the attempt number."""

    def __init__(self, session_factory: sessionmaker[Session], job_id: str, attempt: int):
        self.session_factory = session_factory
        self.job_id = job_id
        self.attempt = attempt

    def _fenced(self):
        return (Job.id == self.job_id) & (Job.attempts == self.attempt)

    def update(self, *, require_active: bool = True, **values) -> None:
        """Update the job's row; raise ClaimLost if another attempt owns it now."""
        condition = self._fenced()
        if require_active:
            condition = condition & Job.status.in_(_ACTIVE)
        with self.session_factory() as session:
            result = session.execute(update(Job).where(condition).values(**values))
            session.commit()
        if result.rowcount != 1:
            raise ClaimLost(f"job {self.job_id} attempt {self.attempt} no longer owns the job")

    def event(self, kind: str, message: str = "", data: dict | None = None) -> None:
        # A bare INSERT, no read first: on SQLite a transaction that reads and then writes fails
        # at once (no busy wait) when another connection committed in between.
        with self.session_factory() as session:
            session.add(JobEvent(job_id=self.job_id, kind=kind, message=message, data=data))
            session.commit()

    def cancel_requested(self) -> bool:
        with self.session_factory() as session:
            return bool(session.scalar(select(Job.cancel_requested).where(Job.id == self.job_id)))


class Heartbeat:
    """A thread that keeps ``heartbeat_at`` fresh while the job runs (waits, loads and evaluation
    included, which report no progress of their own)."""

    def __init__(self, record: JobRecord, interval_s: float = HEARTBEAT_INTERVAL_S):
        self.record = record
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{record.job_id}", daemon=True)

    def __enter__(self) -> "Heartbeat":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.record.update(heartbeat_at=utcnow())
            except ClaimLost:
                return
            except Exception:  # a missed beat is tolerated; the next one may succeed
                log.warning("heartbeat of job %s failed", self.record.job_id, exc_info=True)


class CancelWatch:
    """``should_stop`` for the trainer: reads the job's cancel flag at most once a second."""

    def __init__(self, record: JobRecord, poll_s: float = CANCEL_POLL_S):
        self.record = record
        self.poll_s = poll_s
        self._checked = -math.inf
        self._requested = False

    def __call__(self) -> bool:
        if not self._requested and time.monotonic() - self._checked >= self.poll_s:
            self._requested = self.record.cancel_requested()
            self._checked = time.monotonic()
        return self._requested

    def check(self) -> None:
        """Raise JobCancelled if cancellation was requested (always reads the database)."""
        self._checked = -math.inf
        if self():
            raise JobCancelled()


class ProgressReporter:
    """Turns the trainer's progress callbacks into at most one database write per interval."""

    def __init__(self, record: JobRecord, interval_s: float = PROGRESS_INTERVAL_S):
        self.record = record
        self.interval_s = interval_s
        self._last_write = -math.inf
        self._started = time.monotonic()
        self._first_done: int | None = None

    @property
    def resumed_at(self) -> int:
        """Documents already done when this attempt's training began (from a checkpoint)."""
        return self._first_done or 0

    def __call__(self, progress) -> None:
        if self._first_done is None:
            # A resumed run starts mid-way: the rate counts only this attempt's documents.
            self._first_done = progress.documents_done - 1
        now = time.monotonic()
        final = progress.documents_done >= progress.documents_total
        if not final and now - self._last_write < self.interval_s:
            return
        self._last_write = now
        done_here = progress.documents_done - self._first_done
        elapsed = now - self._started
        remaining = progress.documents_total - progress.documents_done
        eta = remaining * elapsed / done_here if done_here > 0 else None
        self.record.update(progress={
            "stage": "training",
            "documents_done": progress.documents_done,
            "documents_total": progress.documents_total,
            "step": progress.step,
            "epoch": progress.epoch,
            "loss": progress.loss if math.isfinite(progress.loss) else None,
            "tokens_per_second": round(progress.tokens_per_second, 2),
            "eta_seconds": round(eta, 1) if eta is not None else None,
        }, heartbeat_at=utcnow())


# --- the lineage lock ---------------------------------------------------------------------------

class LineageLock:
    """Exclusive right to add the next version to one lineage, for one job at a time.

    PostgreSQL: ``SELECT … FOR NO KEY UPDATE`` on the lineage row, held by a session of its own
    until the new version is committed in that same transaction. NO KEY UPDATE (not FOR UPDATE)
    because inserting a row that references the lineage (a new job, the new version) takes a
    KEY SHARE lock, which FOR UPDATE would block: the API could not accept updates for a lineage
    that is training, and the registering transaction would wait on itself.
    SQLite: an exclusive ``flock`` on a file beside the artifacts (one machine, many processes);
    a write transaction would lock the whole database for the length of the training.
    Waiting polls, so a cancellation ends the wait.
    """

    def __init__(self, session_factory: sessionmaker[Session], settings: Settings, lineage_id: int,
                 should_stop: Callable[[], bool]):
        self.session_factory = session_factory
        self.settings = settings
        self.lineage_id = lineage_id
        self.should_stop = should_stop
        self.session: Session | None = None
        self._file = None

    @property
    def on_postgresql(self) -> bool:
        return self.session_factory.kw["bind"].dialect.name == "postgresql"

    def acquire(self) -> None:
        while True:
            if self._try_acquire():
                return
            if self.should_stop():
                raise JobCancelled()
            time.sleep(LOCK_POLL_S)

    def _try_acquire(self) -> bool:
        if self.on_postgresql:
            session = self.session_factory()
            try:
                session.execute(select(Lineage.id).where(Lineage.id == self.lineage_id)
                                .with_for_update(key_share=True, nowait=True))
            except OperationalError as exc:
                session.rollback()
                session.close()
                if getattr(exc.orig, "sqlstate", None) == "55P03":  # lock_not_available
                    return False
                raise
            self.session = session
            return True
        path = storage.lock_path(self.settings, f"lineage-{self.lineage_id}")
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(path, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        self._file = handle
        # Registration happens in a session of its own on SQLite; the file lock spans it.
        self.session = self.session_factory()
        return True

    def release(self) -> None:
        if self.session is not None:
            self.session.rollback()
            self.session.close()
            self.session = None
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None


# --- claim --------------------------------------------------------------------------------------

@dataclass
class Claim:
    attempt: int
    resumed: bool


def claim_job(session_factory: sessionmaker[Session], settings: Settings, job_id: str) -> Claim | Outcome:
    """Take the job for this worker, or say why not (an Outcome).

    A queued job is claimed; so is a running one whose heartbeat is stale (its worker died and
    this is the redelivery). A job running with a fresh heartbeat belongs to a live worker.
    """
    with session_factory() as session:
        job = session.get(Job, job_id)
        if job is None:
            log.warning("job %s does not exist; message dropped", job_id)
            return Outcome.skipped
        if job.status.is_terminal:
            log.info("job %s already %s; message dropped", job_id, job.status.value)
            return Outcome.skipped
        if job.status in _ACTIVE and not heartbeat_is_stale(job, settings.stale_heartbeat_s):
            log.info("job %s is running on a live worker; duplicate message dropped", job_id)
            return Outcome.skipped
        observed_status, observed_attempts = job.status, job.attempts

    if observed_attempts >= settings.job_max_attempts:
        _finish_unclaimed(session_factory, settings, job_id, observed_status, observed_attempts,
                          JobStatus.failed, "failed",
                          error={"code": "too_many_attempts",
                                 "message": f"the job was started {observed_attempts} times without finishing "
                                            f"(limit {settings.job_max_attempts})"})
        return Outcome.failed
    now = utcnow()
    with session_factory() as session:
        result = session.execute(
            update(Job)
            .where(Job.id == job_id, Job.status == observed_status, Job.attempts == observed_attempts)
            .values(status=JobStatus.running, attempts=observed_attempts + 1, started_at=now,
                    heartbeat_at=now, error=None))
        session.commit()
    if result.rowcount != 1:
        log.info("job %s was claimed by another worker first", job_id)
        return Outcome.skipped
    return Claim(attempt=observed_attempts + 1, resumed=observed_status in _ACTIVE)


def _finish_unclaimed(session_factory, settings, job_id, observed_status, observed_attempts,
                      status: JobStatus, kind: str, error: dict | None = None) -> None:
    with session_factory() as session:
        result = session.execute(
            update(Job)
            .where(Job.id == job_id, Job.status == observed_status, Job.attempts == observed_attempts)
            .values(status=status, error=error, finished_at=utcnow()))
        if result.rowcount == 1:
            repo.add_job_event(session, session.get(Job, job_id), kind,
                               error["message"] if error else "", error)
        session.commit()
    remove_job_files(settings, job_id)


def remove_job_files(settings: Settings, job_id: str) -> None:
    """Checkpoints and any unregistered artifact a dead attempt of this job left behind."""
    storage.remove_tree(storage.checkpoint_dir(settings, job_id))
    for leftover in storage.artifact_root(settings).glob(f"*/v*-{job_id}"):
        storage.remove_tree(leftover)


# --- the pipeline -------------------------------------------------------------------------------

@dataclass
class JobInput:
    lineage_id: int
    lineage_name: str
    base_model: str
    method: str
    hyperparameters: dict
    probes: list[dict] | None
    promotion: dict | None
    documents: list[str]


def _read_job(session_factory: sessionmaker[Session], job_id: str) -> JobInput:
    with session_factory() as session:
        job = session.get(Job, job_id)
        lineage = session.get(Lineage, job.lineage_id)
        texts = list(session.scalars(select(Document.text).where(Document.batch_id == job.batch_id)
                                     .order_by(Document.position)))
        return JobInput(lineage_id=lineage.id, lineage_name=lineage.name, base_model=lineage.base_model,
                        method=job.method, hyperparameters=dict(job.hyperparameters or {}),
                        probes=job.probes, promotion=job.promotion, documents=texts)


def current_version(session: Session, lineage_id: int) -> ModelVersion | None:
    """The lineage's newest usable version: the parent (and teacher) of the next one."""
    return session.scalar(select(ModelVersion)
                          .where(ModelVersion.lineage_id == lineage_id, ModelVersion.state != VersionState.rejected)
                          .order_by(ModelVersion.number.desc()).limit(1))


def run_job(job_id: str, *, session_factory: sessionmaker[Session], settings: Settings,
            device: str | None = None) -> Outcome:
    """Run one delivery of a job to its end; returns what became of it.

    Never raises for the job's own failures (they are recorded); a database that cannot be
    reached is raised, leaving the job to be re-sent once its heartbeat is stale.
    """
    claim = claim_job(session_factory, settings, job_id)
    if isinstance(claim, Outcome):
        return claim
    record = JobRecord(session_factory, job_id, claim.attempt)
    record.event("resumed" if claim.resumed else "started",
                 f"attempt {claim.attempt} of {settings.job_max_attempts}", {"attempt": claim.attempt})
    log.info("job %s: attempt %d started", job_id, claim.attempt)
    try:
        with Heartbeat(record):
            version_number = _run_claimed(record, session_factory, settings, device)
        log.info("job %s succeeded: version %d", job_id, version_number)
        storage.remove_tree(storage.checkpoint_dir(settings, job_id))
        return Outcome.succeeded
    except ClaimLost:
        log.warning("job %s: attempt %d was superseded by another worker; its work is dropped",
                    job_id, claim.attempt)
        return Outcome.skipped
    except (OperationalError, InterfaceError):
        # The database is unreachable: nothing can be recorded. The job stays running, its
        # heartbeat goes stale and the reconciler sends it again (bounded by job_max_attempts).
        log.exception("job %s: database unreachable; left for redelivery", job_id)
        raise
    except JobCancelled:
        _end(record, settings, JobStatus.cancelled, "cancelled", "cancelled on request")
        log.info("job %s cancelled", job_id)
        return Outcome.cancelled
    except Exception as exc:
        code, message = _classify(exc)
        log.error("job %s failed (%s): %s", job_id, code, message, exc_info=True)
        _end(record, settings, JobStatus.failed, "failed", message, error={"code": code, "message": message})
        return Outcome.failed
    # Anything else (SystemExit, KeyboardInterrupt: the worker is stopping) propagates with the job
    # left running; its heartbeat goes stale and it resumes from its checkpoints on redelivery.


def _classify(exc: BaseException) -> tuple[str, str]:
    """(code, message) for a failure; the message names the problem, never a traceback."""
    import torch

    from disc_engine.artifacts import ArtifactError

    if isinstance(exc, JobFailed):
        return exc.code, exc.message
    if isinstance(exc, (torch.OutOfMemoryError, MemoryError)):
        return ("out_of_memory", "the worker ran out of memory training or evaluating this update; "
                "use fewer or shorter documents, a smaller model or a larger machine")
    if isinstance(exc, storage.ArtifactCorrupt):
        return "artifact_corrupt", _short(str(exc))
    if isinstance(exc, ArtifactError):
        return "artifact_error", _short(str(exc))
    if isinstance(exc, ValueError):
        return "invalid_input", _short(str(exc))
    return "internal_error", _short(f"{type(exc).__name__}: {exc}")


def _short(message: str) -> str:
    message = " ".join(message.split())
    return message if len(message) <= ERROR_MESSAGE_CHARS else message[:ERROR_MESSAGE_CHARS - 1] + "…"


def _end(record: JobRecord, settings: Settings, status: JobStatus, kind: str, message: str,
         error: dict | None = None) -> None:
    try:
        record.update(status=status, error=error, finished_at=utcnow(), heartbeat_at=utcnow())
        record.event(kind, message, error)
    except ClaimLost:
        log.warning("job %s: not recording %s, another attempt owns the job", record.job_id, kind)
        return
    remove_job_files(settings, record.job_id)


def _run_claimed(record: JobRecord, session_factory: sessionmaker[Session], settings: Settings,
                 device: str | None) -> int:
    """Train, evaluate and register; returns the new version's number."""
    from disc_engine.trainer import TrainConfig, TrainingCancelled, train

    job_id = record.job_id
    stop = CancelWatch(record)
    stop.check()
    job = _read_job(session_factory, job_id)
    try:
        config = TrainConfig.from_dict({**job.hyperparameters, "method": job.method})
    except ValueError as exc:
        raise JobFailed("invalid_input", str(exc)) from exc
    if job.promotion and job.promotion.get("policy", "auto") not in POLICIES:
        raise JobFailed("invalid_input", f"promotion policy must be one of {', '.join(POLICIES)}")
    device = device or default_device()

    record.update(progress={"stage": "waiting", "documents_done": 0, "documents_total": len(job.documents)})
    lock = LineageLock(session_factory, settings, job.lineage_id, stop)
    lock.acquire()
    try:
        parent = current_version(lock.session, job.lineage_id)
        # Numbers never repeat, even after a rejected version: its parent is the newest intact one.
        number = repo.next_version_number(lock.session, lock.session.get(Lineage, job.lineage_id))
        parent_dir = None
        if parent is not None:
            parent_dir = storage.resolve_artifact(settings, parent.artifact_uri)
            try:
                storage.verify_artifact(parent_dir, parent.artifact_sha256)
            except storage.ArtifactCorrupt as exc:
                _reject_version(session_factory, parent.id)
                raise JobFailed("artifact_corrupt", _short(
                    f"the parent, version {parent.number}, failed its artifact check ({exc}); it is now "
                    "rejected, and the next update builds on the newest intact version")) from exc
        record.update(parent_version_id=parent.id if parent is not None else None,
                      progress={"stage": "training", "documents_done": 0, "documents_total": len(job.documents)})
        record.event("parent", f"training version {number} from "
                     + (f"version {parent.number}" if parent is not None else f"the base {job.base_model}"),
                     {"version": number, "parent_version": parent.number if parent is not None else None})

        relpath = storage.version_relpath(job.lineage_name, number, job_id)
        out_dir = storage.artifact_root(settings) / relpath
        # Left by an attempt that died between writing and registering: train again (from the
        # checkpoints) rather than trust files nobody vouched for.
        storage.remove_tree(out_dir)
        checkpoints = storage.checkpoint_dir(settings, job_id)
        checkpoints.mkdir(parents=True, exist_ok=True)
        reporter = ProgressReporter(record)
        try:
            result = train(job.documents, out_dir=str(out_dir), config=config, base_model=job.base_model,
                           parent=str(parent_dir) if parent_dir is not None else None,
                           progress=reporter,
                           checkpoint_dir=str(checkpoints),
                           should_stop=stop, device=device)
        except TrainingCancelled as exc:
            raise JobCancelled() from exc
        artifact_dir = result.artifact_dir
        try:
            sha256 = storage.directory_sha256(artifact_dir)
            record.event("trained", f"{result.steps} steps; artifact {relpath}",
                         {"steps": result.steps, "artifact_sha256": sha256,
                          "documents_trained": result.report.documents_trained,
                          "resumed_at_document": reporter.resumed_at})

            stop.check()
            record.update(status=JobStatus.evaluating,
                          progress={"stage": "evaluating", "documents_done": len(job.documents) * config.epochs,
                                    "documents_total": len(job.documents) * config.epochs, "step": result.steps})
            record.event("evaluating", "scoring knowledge gained and behaviour retained")
            try:
                evaluation = _evaluate(settings, job, parent, parent_dir, artifact_dir, sha256, device,
                                       config.seed)
            except ValueError as exc:
                raise JobFailed("evaluation_failed", _short(f"evaluating the new version failed: {exc}")) from exc
            scores = numeric_scores(evaluation)
            record.event("evaluated", "", {"scores": scores})
            stop.check()

            decision = decide_promotion(job.promotion, scores, settings)
            version_id = _register(lock.session, record, job, parent, number, relpath, sha256, config,
                                   result, scores, decision)
        except BaseException:
            storage.remove_tree(artifact_dir)
            raise
    finally:
        lock.release()
    log.info("job %s: version %d (id %d) %s", job_id, number, version_id,
             "promoted" if decision.promote else "kept as a candidate")
    return number


def _reject_version(session_factory: sessionmaker[Session], version_id: int) -> None:
    """Mark a version whose artifact is damaged or gone as rejected, so no update builds on it.

    Its own session: the lineage lock's transaction stays open until the new version commits.
    """
    with session_factory() as session:
        session.execute(update(ModelVersion).where(ModelVersion.id == version_id)
                        .values(state=VersionState.rejected))
        session.commit()


def _evaluate(settings: Settings, job: JobInput, parent: ModelVersion | None, parent_dir, artifact_dir: str,
              sha256: str, device: str, seed: int) -> dict:
    from disc_engine.artifacts import load_artifact, read_meta
    from disc_engine.evaluation import evaluate_update

    base = cached_base_model(job.base_model, device)
    tokenizer = cached_tokenizer(job.base_model)
    recorded = read_meta(artifact_dir).get("base_model_checksum")
    base_key = f"base:{recorded}" if recorded else None
    parent_model = load_artifact(parent_dir, base_model=job.base_model, device=device) \
        if parent_dir is not None else base
    new_model = load_artifact(artifact_dir, base_model=job.base_model, device=device)
    try:
        # Artifact checksums name the models in the evaluation cache, so the base's and the
        # parent's reference answers are computed once per lineage step, not once per job.
        return evaluate_update(new_model=new_model, parent_model=parent_model, base_model=base,
                               tokenizer=tokenizer, documents=job.documents, probes=job.probes or None,
                               cache_dir=str(storage.eval_cache_dir(settings)), seed=seed,
                               new_key=f"artifact:{sha256}",
                               parent_key=f"artifact:{parent.artifact_sha256}" if parent is not None else base_key,
                               base_key=base_key)
    finally:
        del new_model, parent_model
        gc.collect()
        if device.startswith("cuda"):
            import torch

            torch.cuda.empty_cache()


def _register(session: Session, record: JobRecord, job: JobInput, parent: ModelVersion | None, number: int,
              relpath: str, sha256: str, config, result, scores: dict, decision: PromotionDecision) -> int:
    """Version, scores, alias move and the job's success: one transaction (the lineage lock's)."""
    from disc_engine.artifacts import artifact_kind, read_meta

    if session.get_bind().dialect.name == "sqlite":
        # Start from a fresh view: a write on top of an old read snapshot fails in WAL mode.
        session.rollback()
    row = session.scalar(select(Job).where(Job.id == record.job_id).with_for_update())
    if row.attempts != record.attempt or row.status not in _ACTIVE:
        raise ClaimLost(f"job {record.job_id} changed hands before registration")
    if row.cancel_requested:
        raise JobCancelled()
    lineage = session.get(Lineage, job.lineage_id)
    version = repo.create_version(
        session, lineage=lineage, parent=parent, job_id=record.job_id, method=config.method,
        base_model=job.base_model, base_model_checksum=read_meta(result.artifact_dir).get("base_model_checksum"),
        artifact_kind=artifact_kind(result.artifact_dir), artifact_uri=relpath, artifact_sha256=sha256,
        config=config.to_dict(), train_metrics=result.metrics, train_report=result.report.to_dict(),
        number=number)
    repo.set_scores(session, version, scores)
    now = utcnow()
    if decision.promote:
        repo.move_alias(session, lineage, version, reason="policy", actor=f"job {record.job_id}")
        repo.add_job_event(session, row, "promoted", f"version {number} is now latest ({decision.reason})")
    else:
        repo.add_job_event(session, row, "candidate", f"version {number} {decision.reason}")
    row.status = JobStatus.succeeded
    row.result_version_id = version.id
    row.finished_at = now
    row.heartbeat_at = now
    row.progress = {**(row.progress or {}), "stage": "done"}
    repo.add_job_event(session, row, "succeeded", f"version {number} registered",
                       {"version": number, "version_id": version.id, "promoted": decision.promote})
    session.commit()
    return version.id
