"""The update pipeline on a real database with the tiny model: chaining under concurrency,
registration, promotion, cancellation, duplicate delivery and failures."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from store import repo, storage
from store.models import Job, JobStatus, ModelVersion, VersionState, utcnow
from worker.claim import Claim, claim_job
from worker.job_record import JobRecord
from worker.outcomes import ClaimLost, Outcome, classify_failure

from .conftest import DOCUMENTS


def _job(env, job_id: str) -> Job:
    with env.session_factory() as session:
        return session.get(Job, job_id)


def _events(env, job_id: str) -> list[str]:
    with env.session_factory() as session:
        return [e.kind for e in repo.list_job_events(session, job_id)]


def _versions(env, lineage: str = "default") -> list[ModelVersion]:
    with env.session_factory() as session:
        return repo.list_versions(session, lineage)


def test_concurrent_jobs_on_one_lineage_chain_instead_of_forking(env):
    """Two deliveries racing on one lineage: the lock makes one the parent of the other."""
    from disc_engine.artifacts import read_meta
    from disc_engine.evaluation import RESULT_KEYS

    first = env.add_job(promotion={"policy": "always"})
    second = env.add_job(DOCUMENTS[::-1], promotion={"policy": "never"})
    outcomes: dict[str, Outcome] = {}
    threads = [threading.Thread(target=lambda j=j: outcomes.__setitem__(j, env.run(j))) for j in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=900)
    assert outcomes == {first: Outcome.succeeded, second: Outcome.succeeded}

    v1, v2 = _versions(env)
    assert (v1.number, v2.number) == (1, 2)
    assert v1.parent_version_id is None and v2.parent_version_id == v1.id
    assert _job(env, v2.job_id).parent_version_id == v1.id
    for version in (v1, v2):
        job = _job(env, version.job_id)
        assert job.status == JobStatus.succeeded and job.result_version_id == version.id
        assert job.attempts == 1 and job.error is None
        directory = storage.resolve_artifact(env.settings, version.artifact_uri)
        assert directory.name == f"v{version.number}-{version.job_id}"
        storage.verify_artifact(directory, version.artifact_sha256)
        assert version.artifact_kind == "lora"
        assert set(s.name for s in version.scores) == set(RESULT_KEYS)
        scores = {s.name: s.value for s in version.scores}
        assert scores["retention_kl_vs_parent"] >= 0 and scores["knowledge_gap_before"] > 0
        assert scores["probe_count"] == 0 and scores["probe_accuracy_after"] is None
        assert not storage.checkpoint_dir(env.settings, version.job_id).exists()
    # The second version was trained from the first: its artifact names the first as parent.
    parent_dir = storage.resolve_artifact(env.settings, v1.artifact_uri)
    assert Path(read_meta(storage.resolve_artifact(env.settings, v2.artifact_uri))["parent"]) == parent_dir

    # The job with policy "always" moved `latest`; the "never" one stayed a visible candidate.
    by_job = {v.job_id: v for v in (v1, v2)}
    promoted, candidate = by_job[first], by_job[second]
    with env.session_factory() as session:
        latest = repo.latest_version(session, "default")
        history = repo.alias_history(session, "default")
    assert latest.id == promoted.id and promoted.state == VersionState.promoted
    assert candidate.state == VersionState.candidate
    assert [(h.from_version_id, h.to_version_id, h.reason) for h in history] == [(None, promoted.id, "policy")]

    events = _events(env, first)
    for kind in ("created", "started", "parent", "trained", "evaluating", "evaluated", "promoted", "succeeded"):
        assert kind in events
    assert "candidate" in _events(env, second)

    # A duplicate delivery of a finished job does nothing.
    assert env.run(first) == Outcome.skipped
    assert len(_versions(env)) == 2


def test_cancel_during_training_leaves_no_version(sqlite_env):
    env = sqlite_env
    documents = [f"Fact number {i} about Kethia. The river Zorblat has {i} bridges. Each bridge is green."
                 for i in range(60)]
    job_id = env.add_job(documents, promotion={"policy": "always"})
    result: list[Outcome] = []
    runner = threading.Thread(target=lambda: result.append(env.run(job_id)))
    runner.start()
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        job = _job(env, job_id)
        if job.progress and job.progress.get("stage") == "training" and job.progress.get("documents_done", 0) > 0:
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"training never reported progress: {job.status} {job.progress}")
    with env.session_factory() as session:
        repo.request_cancel(session, session.get(Job, job_id), actor="test")
        session.commit()
    runner.join(timeout=300)

    assert result == [Outcome.cancelled]
    job = _job(env, job_id)
    assert job.status == JobStatus.cancelled and job.result_version_id is None and job.finished_at is not None
    assert job.progress["documents_done"] < len(documents)
    assert _versions(env) == []
    assert not list(storage.artifact_root(env.settings).glob(f"*/v*-{job_id}"))
    assert not storage.checkpoint_dir(env.settings, job_id).exists()
    assert _events(env, job_id)[-2:] == ["cancel_requested", "cancelled"]


def test_invalid_hyperparameters_fail_without_training(sqlite_env):
    job_id = sqlite_env.add_job(hyperparameters={"lora_r": 0})
    assert sqlite_env.run(job_id) == Outcome.failed
    job = _job(sqlite_env, job_id)
    assert job.status == JobStatus.failed
    assert job.error["code"] == "invalid_input" and "lora_r" in job.error["message"]
    assert _versions(sqlite_env) == []


@pytest.mark.parametrize("documents, hyperparameters, code, phrase", [
    (["Hello.", "Fine."], {}, "nothing_to_train", "none of the 2 document"),
    (None, {"full_finetune": True, "learning_rate": 1.0, "epochs": 2}, "training_diverged", "learning rate 1"),
])
def test_a_run_that_trains_nothing_or_diverges_fails_with_its_own_code(sqlite_env, documents, hyperparameters,
                                                                      code, phrase):
    job_id = sqlite_env.add_job(documents, hyperparameters=hyperparameters) if documents else \
        sqlite_env.add_job(hyperparameters=hyperparameters)
    assert sqlite_env.run(job_id) == Outcome.failed
    job = _job(sqlite_env, job_id)
    assert job.error["code"] == code and phrase in job.error["message"], job.error
    assert job.attempts == 1 and _versions(sqlite_env) == []



def test_skipped_and_repeated_documents_are_said_in_the_job_s_events(sqlite_env):
    env = sqlite_env
    job_id = env.add_job([DOCUMENTS[0], "Hello.", DOCUMENTS[0]])
    assert env.run(job_id) == Outcome.succeeded
    with env.session_factory() as session:
        trained = next(e for e in repo.list_job_events(session, job_id) if e.kind == "trained")
    assert "2 of 3 documents trained (1 skipped, 1 altered, 1 repeated)" in trained.message
    assert trained.data["documents_duplicated"] == [{"index": 2, "same_as": 0}]
    assert [item["index"] for item in trained.data["documents_skipped"]] == [1]


def test_preparing_documents_is_a_job_stage(sqlite_env):
    from disc_engine.trainer import Progress
    from worker.progress import ProgressReporter

    env = sqlite_env
    job_id = env.add_job()
    claim = claim_job(env.session_factory, env.settings, job_id)
    reporter = ProgressReporter(JobRecord(env.session_factory, job_id, claim.attempt), interval_s=0)
    reporter(Progress(documents_done=2, documents_total=2, step=0, loss=0.0, tokens_per_second=0.0, epoch=0,
                      stage="preparing"))
    assert _job(env, job_id).progress == {"stage": "preparing", "documents_prepared": 2, "documents_to_prepare": 2}
    reporter(Progress(documents_done=1, documents_total=2, step=1, loss=2.5, tokens_per_second=9.0, epoch=0))
    progress = _job(env, job_id).progress
    assert progress["stage"] == "training" and progress["documents_done"] == 1 and progress["step"] == 1

def test_missing_base_model_fails_with_a_message_not_a_traceback(tmp_path, sqlite_env):
    env = sqlite_env
    with env.session_factory() as session:
        repo.get_or_create_lineage(session, "elsewhere", str(tmp_path / "no-such-model"))
        session.commit()
    job_id = env.add_job(lineage="elsewhere")
    assert env.run(job_id) == Outcome.failed
    error = _job(env, job_id).error
    assert error["code"] == "internal_error"
    assert "Traceback" not in error["message"] and "\n" not in error["message"]
    assert "no-such-model" in error["message"]


def test_corrupt_parent_artifact_fails_the_job(sqlite_env):
    env = sqlite_env
    parent_dir = storage.artifact_root(env.settings) / "default" / "v1-previous"
    parent_dir.mkdir(parents=True)
    (parent_dir / "adapter_model.safetensors").write_bytes(b"weights")
    recorded = storage.directory_sha256(parent_dir)
    (parent_dir / "adapter_model.safetensors").write_bytes(b"weightz")
    with env.session_factory() as session:
        lineage = repo.get_or_create_lineage(session, "default", env.settings.base_model)
        repo.create_version(session, lineage=lineage, parent=None, job_id=None, method="disc",
                            base_model=env.settings.base_model, artifact_kind="lora",
                            artifact_uri="default/v1-previous", artifact_sha256=recorded)
        session.commit()
    job_id = env.add_job()
    assert env.run(job_id) == Outcome.failed
    job = _job(env, job_id)
    assert job.error["code"] == "artifact_corrupt"
    assert job.parent_version_id is None  # failed before it chose to train from the damaged parent
    versions = _versions(env)
    assert len(versions) == 1 and versions[0].state == VersionState.rejected

    # The lineage is not stuck: the next update skips the rejected version and trains from the base.
    next_job = env.add_job()
    assert env.run(next_job) == Outcome.succeeded
    assert _job(env, next_job).parent_version_id is None


def test_job_over_the_attempt_limit_fails(sqlite_env):
    env = sqlite_env
    job_id = env.add_job()
    with env.session_factory() as session:
        session.execute(update(Job).where(Job.id == job_id).values(
            status=JobStatus.running, attempts=env.settings.job_max_attempts,
            heartbeat_at=utcnow() - timedelta(hours=1)))
        session.commit()
    assert env.run(job_id) == Outcome.failed
    job = _job(env, job_id)
    assert job.status == JobStatus.failed and job.error["code"] == "too_many_attempts"
    assert job.attempts == env.settings.job_max_attempts


def test_claim_resumes_a_dead_workers_job_and_leaves_a_live_one(env):
    job_id = env.add_job()
    claim = claim_job(env.session_factory, env.settings, job_id)
    assert claim == Claim(attempt=1, resumed=False)
    # The worker is alive (fresh heartbeat): a duplicate message must not start it again.
    assert claim_job(env.session_factory, env.settings, job_id) == Outcome.skipped
    # The worker died: its heartbeat goes stale and the redelivery takes over.
    with env.session_factory() as session:
        session.execute(update(Job).where(Job.id == job_id).values(
            heartbeat_at=utcnow() - timedelta(seconds=env.settings.stale_heartbeat_s + 5)))
        session.commit()
    assert claim_job(env.session_factory, env.settings, job_id) == Claim(attempt=2, resumed=True)
    # The first attempt's writes are fenced off now.
    with pytest.raises(ClaimLost):
        JobRecord(env.session_factory, job_id, attempt=1).update(progress={"stage": "training"})
    assert _job(env, job_id).attempts == 2


def test_claim_skips_finished_and_unknown_jobs(sqlite_env):
    env = sqlite_env
    job_id = env.add_job()
    with env.session_factory() as session:
        repo.request_cancel(session, session.get(Job, job_id))
        session.commit()
    assert env.run(job_id) == Outcome.skipped
    assert _job(env, job_id).status == JobStatus.cancelled and _job(env, job_id).attempts == 0
    assert env.run("0" * 32) == Outcome.skipped
    with env.session_factory() as session:
        assert session.scalar(select(func.count()).select_from(ModelVersion)) == 0


def test_out_of_memory_is_its_own_failure_code():
    import torch

    code, message = classify_failure(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB"))
    assert code == "out_of_memory" and "memory" in message
    assert classify_failure(MemoryError())[0] == "out_of_memory"
    assert classify_failure(RuntimeError("x" * 5000))[1].endswith("…")


def test_a_killed_worker_s_job_resumes_from_its_checkpoint(sqlite_env):
    import os
    import signal
    import subprocess
    import sys

    env = sqlite_env
    # Progress reaches the record every PROGRESS_INTERVAL_S (2 s): the run must outlast that by far,
    # or an idle machine finishes training before the test sees it and kills the worker.
    documents = [f"Kethia has {i} lakes. The largest lake is called Lake {i}. Its water is cold all year."
                 for i in range(300)]
    job_id = env.add_job(documents, hyperparameters={"checkpoint_every": 4}, promotion={"policy": "always"})
    child_env = {**os.environ, "DISC_DATABASE_URL": env.settings.database_url,
                 "DISC_ARTIFACT_DIR": str(env.settings.artifact_dir), "DISC_BASE_MODEL": env.settings.base_model,
                 "DISC_HOME": str(env.settings.home)}
    script = ("import sys; from store.settings import get_settings; from store.db import session_factory; "
              "from worker.pipeline import run_job; s = get_settings(); "
              "run_job(sys.argv[1], session_factory=session_factory(s), settings=s)")
    worker = subprocess.Popen([sys.executable, "-c", script, job_id], env=child_env, start_new_session=True,
                              cwd=Path(__file__).resolve().parents[2])
    try:
        deadline = time.monotonic() + 300
        while (_job(env, job_id).progress or {}).get("documents_done", 0) < 9:
            assert worker.poll() is None, "the worker ended before it could be killed"
            assert time.monotonic() < deadline, "training made no progress"
            time.sleep(0.05)
    finally:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()
    assert _job(env, job_id).status == JobStatus.running
    assert any(storage.checkpoint_dir(env.settings, job_id).iterdir())

    with env.session_factory() as session:  # the dead worker's heartbeat goes stale
        session.execute(update(Job).where(Job.id == job_id).values(
            heartbeat_at=utcnow() - timedelta(seconds=env.settings.stale_heartbeat_s + 1)))
        session.commit()
    assert env.run(job_id) == Outcome.succeeded

    job = _job(env, job_id)
    assert job.status == JobStatus.succeeded and job.attempts == 2
    with env.session_factory() as session:
        events = repo.list_job_events(session, job_id)
    assert [e.kind for e in events].count("resumed") == 1
    trained = next(e for e in events if e.kind == "trained")
    assert trained.data["resumed_at_document"] >= 8 and trained.data["steps"] == len(documents)
    assert not storage.checkpoint_dir(env.settings, job_id).exists()
