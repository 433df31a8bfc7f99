"""Worker faults: a killed worker's job resumes from its checkpoint, repeated failures end,
cancellation stops training, concurrent updates to one lineage chain, and `latest` only ever
names a complete, evaluated version whose artifact is checked on every download.

Every job runs in real `disc worker` processes, submitted through a real `disc serve`.
"""

from __future__ import annotations

import io
import tarfile
import threading
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from sqlalchemy import select

from store import repo, storage
from store.models import Job, JobStatus, ModelVersion

from .conftest import RECONCILE_AFTER_S, RECONCILE_EVERY_S, documents, wait_for

ALWAYS = {"policy": "always"}
ADAPTER_FILE = "adapter_model.safetensors"


def _versions(deployment, lineage: str) -> list[ModelVersion]:
    with deployment.session() as session:
        return repo.list_versions(session, lineage)


def _artifact_dir(deployment, version: ModelVersion) -> Path:
    return storage.resolve_artifact(deployment.settings, version.artifact_uri)


def test_a_killed_worker_leaves_its_job_to_resume_from_the_checkpoint_to_the_same_version(deployment):
    deployment.serve()
    texts = documents(30, topic="Resume")   # checkpoints after documents 10 and 20
    options = {"hyperparameters": {"seed": 3}, "promotion": ALWAYS}
    first = deployment.worker()
    job_id = deployment.submit(texts, lineage="resumed", **options)["id"]
    checkpoints = storage.checkpoint_dir(deployment.settings, job_id)

    wait_for(lambda: sorted(checkpoints.glob("ckpt-*/state.pt")), 120, "a first checkpoint")
    first.kill()   # SIGKILL to the worker's process group: no clean-up, no acknowledgement
    saved = sorted(checkpoints.glob("ckpt-*/state.pt"))
    resume_position = int(saved[-1].parent.name.removeprefix("ckpt-"))
    killed = deployment.job(job_id)
    assert killed["status"] == "running" and killed["attempts"] == 1, killed
    assert resume_position < len(texts), "the worker finished before it could be killed"

    # The dead worker's heartbeat ages out after DISC_STALE_HEARTBEAT_S (120 s by default); age it at once.
    deployment.backdate_heartbeat(job_id, seconds=3600)
    deployment.worker()
    trace: list[tuple[int, int]] = []   # (attempt, documents done) as the record shows them

    def second_attempt_trained() -> bool:
        with deployment.session() as session:
            row = session.get(Job, job_id)
            trace.append((row.attempts, (row.progress or {}).get("documents_done", 0)))
            return row.status not in (JobStatus.queued, JobStatus.running)

    wait_for(second_attempt_trained, 180, "the second attempt to train", poll_s=0.05)
    job = deployment.wait_terminal(job_id, timeout_s=180)
    assert job["status"] == "succeeded", job
    assert job["attempts"] == 2 and job["result_version"]["version"] == 1
    assert "resumed" in [e["kind"] for e in deployment.events(job_id)]
    # The second attempt resets progress to 0, then reports from where it stands: a restart
    # from scratch would report document 1 first, a resumed run the first one past the checkpoint.
    second = [done for attempt, done in trace if attempt == 2]
    assert 0 in second, f"the second attempt's start was not observed: {trace}"
    after_reset = [done for done in second[second.index(0):] if done > 0]
    assert after_reset and min(after_reset) > resume_position, (after_reset, resume_position)
    assert not checkpoints.exists(), "checkpoints of a finished job are removed"

    control = deployment.submit(texts, lineage="uninterrupted", **options)["id"]
    assert deployment.wait_terminal(control, timeout_s=180)["status"] == "succeeded"
    [resumed_version] = _versions(deployment, "resumed")
    [control_version] = _versions(deployment, "uninterrupted")
    resumed_weights = load_file(_artifact_dir(deployment, resumed_version) / ADAPTER_FILE)
    control_weights = load_file(_artifact_dir(deployment, control_version) / ADAPTER_FILE)
    assert resumed_weights.keys() == control_weights.keys()
    for name in control_weights:
        assert torch.allclose(resumed_weights[name], control_weights[name], rtol=1e-5, atol=1e-7), name
    assert resumed_version.train_metrics["final_loss"] == \
        pytest.approx(control_version.train_metrics["final_loss"], rel=1e-5)


def test_a_job_that_keeps_failing_ends_failed_with_its_error_instead_of_looping(deployment):
    deployment.serve()
    with deployment.session() as session:
        repo.get_or_create_lineage(session, "broken-base", "/nonexistent/models/no-such-base")
    doomed = deployment.submit(documents(2), lineage="broken-base")["id"]
    # A job whose workers died mid-run as often as allowed: running, attempts exhausted, heartbeat old.
    exhausted = deployment.submit(documents(2), lineage="exhausted")["id"]
    with deployment.session() as session:
        job = session.get(Job, exhausted)
        job.status = JobStatus.running
        job.attempts = deployment.settings.job_max_attempts
    deployment.backdate_heartbeat(exhausted, seconds=3600)

    deployment.worker()

    failed = deployment.wait_terminal(doomed, timeout_s=180)
    assert failed["status"] == "failed", failed
    assert failed["error"]["code"] and "no-such-base" in failed["error"]["message"], failed["error"]
    assert failed["attempts"] <= deployment.settings.job_max_attempts
    gave_up = deployment.wait_terminal(exhausted, timeout_s=60)
    assert gave_up["status"] == "failed" and gave_up["error"]["code"] == "too_many_attempts", gave_up
    assert gave_up["attempts"] == deployment.settings.job_max_attempts

    # Several reconciler passes later nothing has been tried again.
    time.sleep(3 * RECONCILE_EVERY_S + RECONCILE_AFTER_S)
    for job_id, attempts in ((doomed, failed["attempts"]), (exhausted, gave_up["attempts"])):
        again = deployment.job(job_id)
        assert again["status"] == "failed" and again["attempts"] == attempts, again
        assert [e["kind"] for e in deployment.events(job_id)].count("started") <= attempts
    assert _versions(deployment, "broken-base") == [] and _versions(deployment, "exhausted") == []


def test_cancel_stops_a_running_job_within_seconds_and_leaves_no_version(deployment):
    deployment.serve()
    deployment.worker()
    job_id = deployment.submit(documents(60, topic="Cancel"), lineage="cancelled",
                               hyperparameters={"epochs": 3})["id"]
    deployment.wait_job(job_id, lambda j: j["status"] == "running" and j["progress"]["documents_done"] > 0,
                        timeout_s=180, what="training progress")

    with deployment.client() as client:
        asked = time.monotonic()
        response = client.post(f"/jobs/{job_id}/cancel")
    assert response.status_code == 200 and response.json()["cancel_requested"], response.text
    job = deployment.wait_terminal(job_id, timeout_s=30)
    took = time.monotonic() - asked

    assert job["status"] == "cancelled", job
    assert took < 10, f"cancellation took {took:.1f} s"
    assert job["progress"]["documents_done"] < 180, "training ran to its end instead of stopping"
    assert job["result_version"] is None and _versions(deployment, "cancelled") == []
    artifacts = deployment.settings.artifact_dir
    assert not list(artifacts.glob(f"*/v*-{job_id}")), "a cancelled job left an artifact directory"
    assert not storage.checkpoint_dir(deployment.settings, job_id).exists()
    with deployment.client() as client:
        assert client.get("/models/latest", params={"lineage": "cancelled"}).status_code == 404


def test_concurrent_updates_to_one_lineage_are_serialized_into_a_chain(deployment):
    deployment.serve()
    workers = [deployment.worker(wait=False) for _ in range(2)]
    for process in workers:
        process.wait_for_log(" ready.", timeout_s=120)

    barrier = threading.Barrier(2)
    job_ids: list[str] = []

    def submit(i: int) -> None:
        barrier.wait()
        job_ids.append(deployment.submit(documents(4, topic=f"Chain{i}"), lineage="chain", promotion=ALWAYS)["id"])

    threads = [threading.Thread(target=submit, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(job_ids) == 2
    jobs = [deployment.wait_terminal(job_id, timeout_s=240) for job_id in job_ids]
    assert [j["status"] for j in jobs] == ["succeeded", "succeeded"], jobs

    by_version = {j["result_version"]["version"]: j for j in jobs}
    assert sorted(by_version) == [1, 2]
    assert by_version[1]["parent_version"] is None and by_version[2]["parent_version"] == 1
    v1, v2 = _versions(deployment, "chain")
    assert (v1.number, v2.number) == (1, 2) and v2.parent_version_id == v1.id and v1.parent_version_id is None
    with deployment.client() as client:
        latest = client.get("/models/latest", params={"lineage": "chain"}).json()
    assert latest["version"] == 2 and latest["parent_version"] == 1
    # Both jobs were taken at once by the two workers: the lock, not the queue, ordered them.
    with deployment.session() as session:
        rows = list(session.scalars(select(Job).where(Job.id.in_(job_ids)).order_by(Job.finished_at)))
    assert rows[1].started_at < rows[0].finished_at, "the jobs did not run concurrently"


def test_latest_only_names_an_evaluated_complete_version_and_corruption_is_detected(deployment):
    deployment.serve()
    deployment.worker()
    job_id = deployment.submit(documents(6, topic="Latest"), lineage="watched", promotion=ALWAYS)["id"]

    observations = []
    with deployment.client() as client:
        while True:
            latest = client.get("/models/latest", params={"lineage": "watched"})
            job = client.get(f"/jobs/{job_id}").json()
            observations.append((latest.status_code, job["status"]))
            if latest.status_code == 200:
                found = latest.json()
                # Version, scores, alias move and the job's success are one transaction.
                assert job["status"] == "succeeded", (found, job)
                assert found["scores"], found
                break
            assert latest.status_code == 404 and latest.json()["error"]["code"] == "no_promoted_version"
            assert job["status"] not in ("failed", "cancelled"), job
            time.sleep(0.1)
    assert any(status != "succeeded" for _, status in observations), "the job ended before it was observed"

    [version] = _versions(deployment, "watched")
    artifact = _artifact_dir(deployment, version)
    storage.verify_artifact(artifact, version.artifact_sha256)
    with deployment.client() as client:
        download = client.get("/models/watched/versions/1/artifact")
    assert download.status_code == 200
    assert download.headers["X-Artifact-SHA256"] == version.artifact_sha256
    with tarfile.open(fileobj=io.BytesIO(download.content), mode="r:gz") as archive:
        assert f"watched-v1/{ADAPTER_FILE}" in archive.getnames()

    weights = artifact / ADAPTER_FILE
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))

    with deployment.client() as client:
        refused = client.get("/models/watched/versions/1/artifact")
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "artifact_corrupt", refused.text
    # The worker checks the parent before training on it: the next update fails, latest stays.
    next_job = deployment.submit(documents(2, topic="After"), lineage="watched", promotion=ALWAYS)["id"]
    failed = deployment.wait_terminal(next_job, timeout_s=180)
    assert failed["status"] == "failed" and failed["error"]["code"] == "artifact_corrupt", failed
    assert [v.number for v in _versions(deployment, "watched")] == [1]
    with deployment.client() as client:
        assert client.get("/models/latest", params={"lineage": "watched"}).json()["version"] == 1
