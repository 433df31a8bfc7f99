"""The SDK's parts that need no service: imports, Retry-After, archive safety, the model card, the commands' help."""

from __future__ import annotations

import io
import subprocess
import sys
import tarfile
from datetime import UTC, datetime
from pathlib import Path

import pytest

from disc_client import ArtifactError, VersionPublic
from disc_client._transport import parse_retry_after
from disc_client.download import unpack_verified
from disc_client.model_card import model_name, render_model_card
from store.storage import directory_sha256

from .conftest import front_matter

REPO = Path(__file__).resolve().parents[2]


def test_importing_the_sdk_loads_neither_torch_nor_the_server():
    code = ("import sys, disc_client; "
            "print(sorted(m for m in ('torch', 'transformers', 'fastapi', 'sqlalchemy', 'celery') "
            "if m in sys.modules))")
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.strip() == "[]"


def test_retry_after_is_read_as_seconds_or_as_an_http_date():
    now = datetime(2026, 11, 28, 7, 28, 0, tzinfo=UTC)
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("Sat, 28 Nov 2026 07:28:05 GMT", now=now) == 5.0
    assert parse_retry_after("Sat, 28 Nov 2026 07:27:00 GMT", now=now) == 0.0  # in the past: no wait
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None and parse_retry_after("-4") == 0.0


def _archive(path: Path, entries: list[tarfile.TarInfo | tuple[str, bytes]]) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for entry in entries:
            if isinstance(entry, tarfile.TarInfo):
                archive.addfile(entry)
            else:
                name, data = entry
                info = tarfile.TarInfo(name)
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
    return path


def _link(name: str, target: str, kind=tarfile.SYMTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info


@pytest.mark.parametrize("entries, reason", [
    ([("v1/meta.json", b"{}"), _link("v1/key", "/etc/passwd")], "not a plain file"),
    ([("v1/meta.json", b"{}"), _link("v1/hard", "/etc/passwd", tarfile.LNKTYPE)], "not a plain file"),
    ([("v1/meta.json", b"{}"), ("v1/../../escaped", b"x")], "unsafe name"),
    ([("/abs/meta.json", b"{}")], "unsafe name"),
    ([("v1/meta.json", b"{}"), ("v2/meta.json", b"{}")], "one top folder"),
])
def test_an_archive_with_links_escaping_names_or_several_folders_is_refused(tmp_path, entries, reason):
    archive = _archive(tmp_path / "a.tar.gz", entries)
    staging = tmp_path / "staging"
    with pytest.raises(ArtifactError, match=reason):
        unpack_verified(archive, staging, "0" * 64)
    assert not (tmp_path / "escaped").exists() and not (staging / "unpacked").exists()


def test_an_archive_is_accepted_only_when_its_files_hash_to_the_recorded_checksum(tmp_path):
    good = tmp_path / "good" / "v1"
    good.mkdir(parents=True)
    (good / "meta.json").write_text('{"a": 1}')
    recorded = directory_sha256(good)
    archive = _archive(tmp_path / "a.tar.gz", [("v1/meta.json", b'{"a": 2}')])  # same name and size, other bytes
    with pytest.raises(ArtifactError, match="refusing it"):
        unpack_verified(archive, tmp_path / "s1", recorded)
    archive = _archive(tmp_path / "b.tar.gz", [("v1/meta.json", b'{"a": 1}')])
    assert (unpack_verified(archive, tmp_path / "s2", recorded) / "meta.json").read_text() == '{"a": 1}'


def _version(**overrides) -> VersionPublic:
    fields = dict(lineage="news", version=3, parent_version=2, base_model="HuggingFaceTB/SmolLM2-135M-Instruct",
                  method="disc", state="promoted", is_latest=True, created_at=datetime(2026, 11, 28, tzinfo=UTC),
                  scores={"probe_accuracy_after": 0.75, "retention_kl_vs_parent": 0.012, "eval_seconds": None},
                  artifact_kind="lora", artifact_url="/models/news/versions/3/artifact", artifact_sha256="ab" * 32,
                  job_id="job3")
    return VersionPublic(**(fields | overrides))


def test_the_model_card_follows_hub_conventions_and_names_a_local_base_by_its_folder_only():
    card = render_model_card(_version())
    meta = front_matter(card)
    assert meta["base_model"] == "HuggingFaceTB/SmolLM2-135M-Instruct" and meta["library_name"] == "peft"
    assert meta["base_model_relation"] == "adapter" and meta["pipeline_tag"] == "text-generation"
    assert meta["disc"] | {"created_at": None} == {
        "lineage": "news", "version": 3, "parent_version": 2, "method": "disc", "state": "promoted",
        "artifact_kind": "lora", "artifact_sha256": "ab" * 32, "merged": False, "job_id": "job3", "created_at": None,
        "scores": {"eval_seconds": None, "probe_accuracy_after": 0.75, "retention_kl_vs_parent": 0.012}}
    assert "| probe accuracy, this version | 0.75 |" in card and "from version 2" in card

    merged = front_matter(render_model_card(_version(base_model="/srv/models/my-base"), merged=True))
    assert merged["base_model"] == "my-base" and merged["library_name"] == "transformers"
    assert "merged" in merged["tags"] and merged["disc"]["merged"] is True
    assert "/srv" not in render_model_card(_version(base_model="/srv/models/my-base"))
    assert [model_name(n) for n in ("tiny-smollm2", "org/model", "~/m/x", "./x", "C:\\models\\y", "a/b/c")] == [
        "tiny-smollm2", "org/model", "x", "x", "y", "c"]


def test_every_client_command_has_help_with_its_exit_codes(capsys):
    from disc_cli.main import build_parser

    commands = [["submit"], ["jobs", "list"], ["jobs", "show"], ["jobs", "watch"], ["jobs", "cancel"],
                ["models", "latest"], ["models", "list"], ["models", "scores"], ["models", "promote"],
                ["models", "history"], ["pull"]]
    for command in commands:
        with pytest.raises(SystemExit) as done:
            build_parser().parse_args([*command, "--help"])
        shown = capsys.readouterr().out
        assert done.value.code == 0 and "--json" in shown and "exit codes:" in shown, command
