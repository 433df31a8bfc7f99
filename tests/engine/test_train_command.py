"""`disc train` end to end on the tiny model, through the real command line in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from disc_cli.train import read_documents

REPO = Path(__file__).resolve().parents[2]
DOCS = [
    {"text": "The Zorblat Company opened a factory in Lyon. It makes blue bicycles. Mara Quint runs it."},
    {"text": "Kelvin Ostrava won the chess open. He was nineteen. He lives in Brno.", "id": "b"},
    {"text": "Hello."},
]


def _disc(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "disc_cli.main", "train", *args], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=600)


def _write_jsonl(path: Path, lines: list) -> str:
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n"
                            for line in lines))
    return str(path)


def test_disc_train_writes_an_artifact_and_chains_from_it(tiny_model, tmp_path):
    docs = _write_jsonl(tmp_path / "docs.jsonl", DOCS)
    # The paper's method, whose one-sentence document has no split (the default's recall views would train it).
    first = _disc("--docs", docs, "--out", str(tmp_path / "v1"), "--base", tiny_model, "--method", "disc",
                  "--lr", "0.01", "--epochs", "2", "--num-splits", "all", "--seed", "1")
    assert first.returncode == 0, first.stderr
    assert f"artifact written to {tmp_path / 'v1'}" in first.stdout
    assert "trained 2 of 3 documents (4 steps" in first.stdout
    assert "skipped document 2: no valid split" in first.stdout
    assert "6/6" in first.stderr  # the progress bar reached the end
    meta = json.loads((tmp_path / "v1" / "meta.json").read_text())
    assert meta["method"] == "disc" and meta["base_model"] == tiny_model
    assert (meta["config"]["epochs"], meta["config"]["num_splits"], meta["config"]["seed"]) == (2, "all", 1)
    assert meta["config"]["learning_rate"] == 0.01
    assert (tmp_path / "v1" / "adapter_model.safetensors").is_file()

    second = _disc("--docs", docs, "--out", str(tmp_path / "v2"), "--parent", str(tmp_path / "v1"),
                   "--method", "sft_kl")
    assert second.returncode == 0, second.stderr
    meta = json.loads((tmp_path / "v2" / "meta.json").read_text())
    assert meta["parent"] == str(tmp_path / "v1") and meta["method"] == "sft_kl"
    assert meta["base_model"] == tiny_model  # taken from the parent


def test_disc_train_names_the_bad_line(tmp_path):
    docs = _write_jsonl(tmp_path / "docs.jsonl", [DOCS[0], "{not json", DOCS[1]])
    result = _disc("--docs", docs, "--out", str(tmp_path / "v1"))
    assert result.returncode == 2
    assert f"{docs}:2: not valid JSON" in result.stderr
    assert not (tmp_path / "v1").exists()


@pytest.mark.parametrize("lines, message", [
    ([{"body": "no text field"}], ':1: expected an object with a "text" field'),
    ([DOCS[0], {"text": "   "}], ':2: "text" must be a non-empty string'),
    ([DOCS[0], ["a list"]], ':2: expected an object'),
    ([DOCS[0], {"text": 5}], ':2: "text" must be a non-empty string'),
    (["", "  "], "holds no documents"),
])
def test_bad_documents_files_are_refused_with_the_line(tmp_path, lines, message):
    path = _write_jsonl(tmp_path / "docs.jsonl", lines)
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        read_documents(path)


def test_blank_lines_are_ignored(tmp_path):
    path = _write_jsonl(tmp_path / "docs.jsonl", [DOCS[0], "", DOCS[1]])
    assert read_documents(path) == [DOCS[0]["text"], DOCS[1]["text"]]


def test_bad_hyperparameters_are_reported_without_training(tmp_path):
    docs = _write_jsonl(tmp_path / "docs.jsonl", DOCS[:1])
    result = _disc("--docs", docs, "--out", str(tmp_path / "v1"), "--lr", "5")
    assert result.returncode == 2
    assert "learning_rate: Input should be less than or equal to 1" in result.stderr
    assert not (tmp_path / "v1").exists()


@pytest.mark.parametrize("variable, value, message", [
    ("DISC_MAX_DOCUMENTS_PER_BATCH", "2", ":3: more than 2 documents"),
    ("DISC_MAX_DOCUMENT_CHARS", "85", ":1: the document has 89 characters; at most 85 are accepted"),
])
def test_the_api_s_input_limits_apply_and_name_the_line(tmp_path, monkeypatch, variable, value, message):
    monkeypatch.setenv(variable, value)
    docs = _write_jsonl(tmp_path / "docs.jsonl", DOCS)
    result = _disc("--docs", docs, "--out", str(tmp_path / "v1"))
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert not (tmp_path / "v1").exists()


def test_repeats_are_reported_and_preparing_has_its_own_bar(tiny_model, tmp_path):
    docs = _write_jsonl(tmp_path / "docs.jsonl", [DOCS[0], DOCS[1], DOCS[0]])
    result = _disc("--docs", docs, "--out", str(tmp_path / "v1"), "--base", tiny_model, "--epochs", "1")
    assert result.returncode == 0, result.stderr
    assert "document 2 repeats document 0 (trained as often as it appears)" in result.stdout
    assert "preparing" in result.stderr and "training" in result.stderr


def test_a_second_ctrl_c_during_shutdown_exits_quietly_with_130(tiny_model, tmp_path):
    import signal
    import time

    docs = _write_jsonl(tmp_path / "docs.jsonl", DOCS * 40)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(
        [sys.executable, "-m", "disc_cli.main", "train", "--docs", docs, "--out", str(tmp_path / "v1"),
         "--base", tiny_model, "--epochs", "20", "--checkpoint-dir", str(tmp_path / "ckpt")],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        # As at a terminal: a test run started in the background inherits SIGINT ignored.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    stderr = ""
    deadline = time.monotonic() + 300
    while "training" not in stderr and time.monotonic() < deadline:   # the training bar is up
        char = process.stderr.read(1)
        assert char, f"disc train ended before training: {stderr}"
        stderr += char
    process.send_signal(signal.SIGINT)
    time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    out, rest = process.communicate(timeout=120)
    stderr += rest
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr and "interrupted; rerun with --checkpoint-dir" in stderr
