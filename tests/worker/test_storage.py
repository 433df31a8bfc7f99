"""Artifact storage: checksums that notice every change, atomic writes, a streamed tar.gz."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from store import storage


@pytest.fixture
def artifact(tmp_path) -> Path:
    root = tmp_path / "v1-job"
    (root / "nested").mkdir(parents=True)
    (root / "adapter_model.safetensors").write_bytes(bytes(range(256)) * 9000)  # > one read chunk
    (root / "meta.json").write_text('{"kind": "lora"}')
    (root / "nested" / "empty").write_bytes(b"")
    return root


def test_checksum_is_stable_and_notices_bytes_names_and_boundaries(artifact):
    recorded = storage.directory_sha256(artifact)
    assert recorded == storage.directory_sha256(artifact)
    storage.verify_artifact(artifact, recorded)

    (artifact / "meta.json").write_text('{"kind": "full"}')
    with pytest.raises(storage.ArtifactCorrupt, match="sha256"):
        storage.verify_artifact(artifact, recorded)
    (artifact / "meta.json").write_text('{"kind": "lora"}')
    assert storage.directory_sha256(artifact) == recorded

    (artifact / "meta.json").rename(artifact / "meta2.json")
    assert storage.directory_sha256(artifact) != recorded
    (artifact / "meta2.json").rename(artifact / "meta.json")

    # Moving a byte from one file to the next keeps the concatenation but not the digest.
    (artifact / "nested" / "empty").write_bytes(b"{")
    (artifact / "meta.json").write_text('"kind": "lora"}')
    assert storage.directory_sha256(artifact) != recorded


def test_missing_artifact_is_reported_as_missing(tmp_path):
    with pytest.raises(storage.ArtifactMissing, match="does not exist"):
        storage.verify_artifact(tmp_path / "gone", "0" * 64)


def test_tar_gz_stream_round_trips(artifact, tmp_path):
    chunks = list(storage.iter_tar_gz(artifact))
    assert len(chunks) > 1  # streamed, not built in one piece
    with tarfile.open(fileobj=io.BytesIO(b"".join(chunks)), mode="r:gz") as archive:
        names = archive.getnames()
        archive.extractall(tmp_path / "out", filter="data")
    assert names == ["v1-job", "v1-job/adapter_model.safetensors", "v1-job/meta.json", "v1-job/nested/empty"]
    assert storage.directory_sha256(tmp_path / "out" / "v1-job") == storage.directory_sha256(artifact)


def test_atomic_directory_publishes_all_or_nothing(tmp_path):
    target = tmp_path / "lineage" / "v2-job"
    with pytest.raises(RuntimeError):
        with storage.atomic_directory(target) as staging:
            (staging / "half").write_text("written")
            raise RuntimeError("crash while writing")
    assert not target.exists() and list((tmp_path / "lineage").iterdir()) == []

    with storage.atomic_directory(target) as staging:
        (staging / "weights").write_text("complete")
    assert (target / "weights").read_text() == "complete"
    with pytest.raises(FileExistsError):
        with storage.atomic_directory(target):
            pass


def test_atomic_file_write_replaces_whole_file(tmp_path):
    path = tmp_path / "deep" / "meta.json"
    storage.write_text_atomically(path, "first")
    storage.write_bytes_atomically(path, b"second")
    assert path.read_text() == "second" and [p.name for p in path.parent.iterdir()] == ["meta.json"]


def test_uris_resolve_inside_the_artifact_folder(tmp_path):
    from store.settings import Settings

    settings = Settings(home=tmp_path, artifact_dir=tmp_path / "artifacts")
    relpath = storage.version_relpath("../team/a b", 3, "abc")
    assert relpath == "_team_a_b/v3-abc"
    assert storage.resolve_artifact(settings, relpath) == tmp_path / "artifacts" / "_team_a_b" / "v3-abc"
    with pytest.raises(storage.ArtifactMissing):
        storage.resolve_artifact(settings, "../elsewhere")
