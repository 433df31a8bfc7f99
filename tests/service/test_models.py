"""Model versions: latest, listing, artifact download (checksum verified), promotion and its history."""

from __future__ import annotations

import io
import json
import tarfile

from store import repo, storage
from store.db import session_scope
from store.models import VersionState


def make_version(settings, lineage_name: str, *, promote: bool, state=VersionState.candidate,
                 scores=None, weights: bytes = b"weights") -> int:
    """A version with a real artifact directory on disk, registered through the repository."""
    with session_scope(settings) as session:
        lineage = repo.get_or_create_lineage(session, lineage_name, "tiny-smollm2")
        number = repo.next_version_number(session, lineage)
        relpath = storage.version_relpath(lineage_name, number, f"job{number}")
        with storage.atomic_directory(storage.resolve_artifact(settings, relpath)) as staging:
            (staging / "adapter.safetensors").write_bytes(weights)
            (staging / "meta.json").write_text(json.dumps({"version": number}))
        sha = storage.directory_sha256(storage.resolve_artifact(settings, relpath))
        parent = repo.latest_version(session, lineage)
        version = repo.create_version(
            session, lineage=lineage, parent=parent, job_id=None, method="disc", base_model="tiny-smollm2",
            artifact_kind="lora", artifact_uri=relpath, artifact_sha256=sha, state=state)
        repo.set_scores(session, version, scores or {"probe_accuracy": 0.5 + number / 10})
        if promote:
            repo.move_alias(session, lineage, version, reason="policy", actor="worker")
        return version.number


def test_latest_without_any_version_is_404_no_promoted_version(api):
    with api.client(api.key()) as client:
        response = client.get("/models/latest")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "no_promoted_version"


def test_latest_returns_the_promoted_version_with_scores(api):
    make_version(api.settings, "news", promote=True)
    make_version(api.settings, "news", promote=True)
    make_version(api.settings, "news", promote=False)  # a candidate does not move latest
    with api.client(api.key()) as client:
        latest = client.get("/models/latest", params={"lineage": "news"}).json()
        versions = client.get("/models/news/versions").json()["data"]
        one = client.get("/models/news/versions/3").json()
        missing = client.get("/models/news/versions/9")
        unknown = client.get("/models/nowhere/versions")
    assert latest["version"] == 2 and latest["parent_version"] == 1 and latest["state"] == "promoted"
    assert latest["scores"] == {"probe_accuracy": 0.7}
    assert latest["artifact_url"] == "http://api.test/models/news/versions/2/artifact"
    assert [(v["version"], v["state"], v["is_latest"]) for v in versions] == [
        (1, "promoted", False), (2, "promoted", True), (3, "candidate", False)]
    assert one["version"] == 3 and one["parent_version"] == 2
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    assert unknown.status_code == 404 and unknown.json()["error"]["param"] == "lineage"


def test_artifact_download_is_the_directory_as_tar_gz(api):
    make_version(api.settings, "news", promote=True, weights=b"\x00\x01" * 5000)
    with api.client(api.key()) as client:
        response = client.get("/models/news/versions/1/artifact")
    assert response.status_code == 200 and response.headers["content-type"] == "application/gzip"
    with tarfile.open(fileobj=io.BytesIO(response.content), mode="r:gz") as archive:
        names = sorted(archive.getnames())
        weights = archive.extractfile("news-v1/adapter.safetensors").read()
        meta = json.load(archive.extractfile("news-v1/meta.json"))
    assert names == ["news-v1", "news-v1/adapter.safetensors", "news-v1/meta.json"]
    assert weights == b"\x00\x01" * 5000 and meta == {"version": 1}


def test_corrupt_or_missing_artifact_is_refused(api):
    make_version(api.settings, "news", promote=True)
    make_version(api.settings, "news", promote=True)
    with session_scope(api.settings) as session:
        first, second = repo.list_versions(session, "news")
        (storage.resolve_artifact(api.settings, first.artifact_uri) / "adapter.safetensors").write_bytes(b"tampered")
        storage.remove_tree(storage.resolve_artifact(api.settings, second.artifact_uri))
    with api.client(api.key()) as client:
        corrupt = client.get("/models/news/versions/1/artifact")
        missing = client.get("/models/news/versions/2/artifact")
        promote_corrupt = client.post("/models/news/versions/1/promote")
        latest = client.get("/models/latest", params={"lineage": "news"}).json()["version"]
    for response in (corrupt, missing, promote_corrupt):
        assert response.status_code == 409
        assert response.json()["error"]["code"] == "artifact_corrupt"
    assert latest == 2


def test_promote_rolls_back_and_forward_and_keeps_history(api):
    for _ in range(3):
        make_version(api.settings, "news", promote=True)
    make_version(api.settings, "news", promote=False, state=VersionState.rejected)
    with api.client(api.key(name="ops")) as client:
        back = client.post("/models/news/versions/1/promote")
        latest_after_back = client.get("/models/latest", params={"lineage": "news"}).json()["version"]
        forward = client.post("/models/news/versions/3/promote")
        rejected = client.post("/models/news/versions/4/promote")
        history = client.get("/models/news/aliases/latest/history").json()["data"]
    assert back.status_code == 200 and back.json()["is_latest"] and latest_after_back == 1
    assert forward.status_code == 200 and forward.json()["version"] == 3
    assert rejected.status_code == 409 and rejected.json()["error"]["code"] == "version_rejected"
    assert [(h["from_version"], h["to_version"], h["reason"], h["actor"]) for h in history] == [
        (None, 1, "policy", "worker"), (1, 2, "policy", "worker"), (2, 3, "policy", "worker"),
        (3, 1, "manual", "ops"), (1, 3, "manual", "ops")]
