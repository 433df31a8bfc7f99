"""The artifact store seam, on both backends: the local folder and a real S3 HTTP server."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import httpx
import pytest

from store import storage
from store.artifact_store import (
    MANIFEST_NAME,
    ArtifactCorrupt,
    ArtifactMissing,
    LocalArtifactStore,
    StoreError,
    StoreUnavailable,
    open_store,
)
from store.settings import Settings


def _artifact(root: Path, seed: int = 0) -> Path:
    (root / "nested").mkdir(parents=True)
    (root / "adapter_model.safetensors").write_bytes(bytes((i * 7 + seed) % 256 for i in range(300_000)))
    (root / "meta.json").write_text(f'{{"kind": "lora", "seed": {seed}}}')
    (root / "nested" / "empty").write_bytes(b"")
    return root


def _s3_store(tmp_path, bucket, **overrides):
    settings = Settings(home=tmp_path / "home", artifact_url=f"s3://{bucket}/team-a",
                        cache_dir=tmp_path / "cache", **overrides)
    from store.s3_store import S3ArtifactStore

    return S3ArtifactStore(bucket=bucket, prefix="team-a", settings=settings)


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path):
    if request.param == "local":
        return LocalArtifactStore(tmp_path / "artifacts")
    return _s3_store(tmp_path, request.getfixturevalue("s3_bucket"))


def test_a_published_directory_fetches_back_byte_for_byte(store, tmp_path):
    source = _artifact(tmp_path / "out")
    manifest = store.publish(source, "support-bot/v1-job", download_name="support-bot-v1")
    assert manifest.directory_sha256 == storage.directory_sha256(source)
    assert {f.path: f.sha256 for f in manifest.files}["meta.json"] == \
        hashlib.sha256((source / "meta.json").read_bytes()).hexdigest()
    assert store.list_keys("support-bot/") == {"support-bot/v1-job": True}

    with store.fetch("support-bot/v1-job", expected_sha256=manifest.directory_sha256) as fetched:
        assert storage.directory_sha256(fetched.path) == manifest.directory_sha256
        assert (fetched.path / "nested" / "empty").read_bytes() == b""
    copy = store.fetch("support-bot/v1-job", into=tmp_path / "copy")
    assert storage.directory_sha256(copy.path) == manifest.directory_sha256
    store.verify("support-bot/v1-job", manifest.directory_sha256)

    with pytest.raises(ArtifactCorrupt, match="recorded"):
        store.verify("support-bot/v1-job", "0" * 64)
    with pytest.raises(ArtifactMissing):
        store.fetch("support-bot/v2-other")


def test_publishing_again_replaces_the_key_whole(store, tmp_path):
    store.publish(_artifact(tmp_path / "a", seed=1), ".checkpoints/job/ckpt-000000010")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "state.pt").write_bytes(b"second")
    manifest = store.publish(tmp_path / "b", ".checkpoints/job/ckpt-000000010")
    fetched = store.fetch(".checkpoints/job/ckpt-000000010", into=tmp_path / "back")
    assert [f.path for f in manifest.files] == ["state.pt"]
    assert sorted(p.name for p in fetched.path.iterdir() if p.name != MANIFEST_NAME) == ["state.pt"]
    store.delete(".checkpoints/job/ckpt-000000010")
    assert store.read_manifest(".checkpoints/job/ckpt-000000010") is None
    assert store.list_keys(".checkpoints/job/") == {}


def test_small_values_round_trip(store):
    store.put_bytes(".eval-cache/evaluation/a.json", b'{"v": 1}')
    store.put_bytes(".eval-cache/evaluation/b.json", b'{"v": 2}')
    assert store.get_bytes(".eval-cache/evaluation/a.json") == b'{"v": 1}'
    assert store.get_bytes(".eval-cache/evaluation/missing.json") is None
    assert store.list_names(".eval-cache/evaluation/") == [".eval-cache/evaluation/a.json",
                                                           ".eval-cache/evaluation/b.json"]


def test_keys_that_escape_the_store_are_refused(store, tmp_path):
    with pytest.raises(ArtifactMissing):
        store.publish(_artifact(tmp_path / "x"), "../outside")
    with pytest.raises(ArtifactMissing):
        store.fetch("/etc")


def test_local_downloads_stream_a_verified_archive(tmp_path):
    store = LocalArtifactStore(tmp_path / "artifacts")
    manifest = store.publish(_artifact(tmp_path / "out"), "bot/v1-job")
    download = store.open_download("bot/v1-job", manifest.directory_sha256, filename="bot-v1")
    assert download.redirect_url is None
    with tarfile.open(fileobj=io.BytesIO(b"".join(download.chunks)), mode="r:gz") as archive:
        assert archive.getnames() == ["bot-v1", "bot-v1/adapter_model.safetensors", "bot-v1/meta.json",
                                      "bot-v1/nested/empty"]
    (tmp_path / "artifacts" / "bot" / "v1-job" / "meta.json").write_text("tampered")
    with pytest.raises(ArtifactCorrupt):
        store.open_download("bot/v1-job", manifest.directory_sha256, filename="bot-v1")


# --- S3 only ---------------------------------------------------------------------------------

def test_s3_download_is_a_presigned_url_to_a_verified_archive(tmp_path, s3_bucket):
    store = _s3_store(tmp_path, s3_bucket)
    source = _artifact(tmp_path / "out")
    manifest = store.publish(source, "bot/v1-job", download_name="bot-v1")
    download = store.open_download("bot/v1-job", manifest.directory_sha256, filename="bot-v1")
    assert download.chunks is None and download.redirect_url.startswith(store.client.meta.endpoint_url)
    body = httpx.get(download.redirect_url).raise_for_status().content
    assert hashlib.sha256(body).hexdigest() == download.archive_sha256 == manifest.archive.sha256
    with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as archive:
        archive.extractall(tmp_path / "unpacked", filter="data")
    assert storage.directory_sha256(tmp_path / "unpacked" / "bot-v1") == manifest.directory_sha256


def test_s3_a_half_uploaded_version_is_invisible_and_cleaned_up(tmp_path, s3_bucket, s3_server):
    store = _s3_store(tmp_path, s3_bucket)
    manifest = store.publish(_artifact(tmp_path / "out"), "bot/v2-job", download_name="bot-v2")
    # A writer that died before its last request: every object but the manifest.
    s3_server.client().delete_object(Bucket=s3_bucket, Key=f"team-a/bot/v2-job/{MANIFEST_NAME}")
    assert store.read_manifest("bot/v2-job") is None
    with pytest.raises(ArtifactMissing, match="never committed"):
        store.fetch("bot/v2-job", expected_sha256=manifest.directory_sha256)
    with pytest.raises(ArtifactMissing):
        store.open_download("bot/v2-job", manifest.directory_sha256, filename="bot-v2")
    assert store.list_keys("bot/") == {"bot/v2-job": False}
    assert store.delete_uncommitted("bot/") == ["bot/v2-job"]
    listed = s3_server.client().list_objects_v2(Bucket=s3_bucket, Prefix="team-a/bot/")
    assert listed.get("KeyCount", 0) == 0


def test_s3_damaged_objects_are_caught_by_verify_and_fetch(tmp_path, s3_bucket, s3_server):
    store = _s3_store(tmp_path, s3_bucket)
    manifest = store.publish(_artifact(tmp_path / "out"), "bot/v3-job", download_name="bot-v3")
    name = "team-a/bot/v3-job/meta.json"
    s3_server.client().put_object(Bucket=s3_bucket, Key=name, Body=b'{"kind": "full", "seed": 0}')
    reader = _s3_store(tmp_path / "another-host", s3_bucket)  # the publisher's cache holds a good copy
    with pytest.raises(ArtifactCorrupt, match="sha256"):  # same size: only the bytes tell
        reader.fetch("bot/v3-job", expected_sha256=manifest.directory_sha256)
    assert reader.cache.size_bytes() == 0  # nothing unverified is kept
    s3_server.client().put_object(Bucket=s3_bucket, Key=name, Body=b"short")
    with pytest.raises(ArtifactCorrupt, match="size"):
        store.verify("bot/v3-job", manifest.directory_sha256)


def test_s3_fetches_come_from_the_local_cache_after_the_first(tmp_path, s3_bucket):
    store = _s3_store(tmp_path, s3_bucket)
    manifest = store.publish(_artifact(tmp_path / "out"), "bot/v1-job")
    first = store.fetch("bot/v1-job", expected_sha256=manifest.directory_sha256)
    second = store.fetch("bot/v1-job", expected_sha256=manifest.directory_sha256)
    assert (first.hit, second.hit) == (False, True) and first.path == second.path
    assert first.path == tmp_path / "cache" / "entries" / manifest.directory_sha256
    first.release(), second.release()
    assert store.cache.stats.hit_rate == 0.5


def test_open_store_picks_the_backend_from_the_url(tmp_path, s3_bucket):
    local = open_store(Settings(home=tmp_path, artifact_dir=tmp_path / "folder"))
    assert isinstance(local, LocalArtifactStore) and local.root == tmp_path / "folder"
    remote = open_store(Settings(home=tmp_path, artifact_url=f"s3://{s3_bucket}/p/q"))
    assert (remote.bucket, remote.prefix) == (s3_bucket, "p/q/")
    with pytest.raises(StoreError, match="must start with"):
        open_store(Settings(home=tmp_path, artifact_url="ftp://host/x"))
    with pytest.raises(StoreError, match="bucket"):
        open_store(Settings(home=tmp_path, artifact_url="s3:///nobucket"))


def test_s3_an_unreachable_store_is_reported_as_unavailable_and_a_restart_keeps_objects(tmp_path, monkeypatch):
    from tests.s3server import S3TestServer

    server = S3TestServer(tmp_path / "server")
    server.start()
    try:
        for name, value in server.environment().items():
            monkeypatch.setenv(name, value)
        server.client().create_bucket(Bucket="disc-outage")
        store = _s3_store(tmp_path, "disc-outage")
        manifest = store.publish(_artifact(tmp_path / "out"), "bot/v1-job")
        server.stop()
        with pytest.raises(StoreUnavailable, match="unreachable"):
            store.publish(_artifact(tmp_path / "out2", seed=2), "bot/v2-job")
        server.start()
        assert store.list_keys("bot/") == {"bot/v1-job": True}  # the failed publish wrote nothing visible
        store.fetch("bot/v1-job", expected_sha256=manifest.directory_sha256).release()
    finally:
        server.destroy()


def test_s3_a_published_version_seeds_the_publishers_cache_but_not_another_hosts(tmp_path, s3_bucket):
    publisher = _s3_store(tmp_path / "host-a", s3_bucket)
    manifest = publisher.publish(_artifact(tmp_path / "out"), "bot/v1-job", download_name="bot-v1")
    with publisher.fetch("bot/v1-job", expected_sha256=manifest.directory_sha256) as here:
        assert here.hit and publisher.cache.stats.hit_rate == 1.0
    other = _s3_store(tmp_path / "host-b", s3_bucket)
    with other.fetch("bot/v1-job", expected_sha256=manifest.directory_sha256) as there:
        assert not there.hit and there.path != here.path
        assert (there.path / "adapter_model.safetensors").read_bytes() == \
            (here.path / "adapter_model.safetensors").read_bytes()
