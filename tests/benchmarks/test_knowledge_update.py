"""The knowledge-update benchmark, end to end on the tiny model, and its report files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# ``benchmarks`` is a folder of the repository, not an installed package (and pysbd installs an
# unrelated top-level ``benchmarks``), so the repository root goes first on the path.
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def _report_module():
    from benchmarks.knowledge_update import report

    assert Path(report.__file__).resolve().is_relative_to(REPO)
    return report


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, tiny_model):
    out = tmp_path_factory.mktemp("knowledge-update")
    command = [sys.executable, "-m", "benchmarks.knowledge_update", "--model", tiny_model, "--quick",
               "--documents", "2", "--epochs", "1", "--lrs", "1e-3", "--full-lrs", "1e-4",
               "--eval-items", "2", "--methods", "disc,sft,sft_kl", "--out", str(out)]
    completed = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=1200)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    return out, completed.stdout


def test_quick_run_writes_every_output(tiny_run):
    out, stdout = tiny_run
    assert "total wall time" in stdout
    record = json.loads((out / "knowledge_update.json").read_text())
    runs = record["runs"]
    # Every method with both parameterizations, each at the rate asked for.
    assert {(r["parameterization"], r["method"]) for r in runs} == {
        (p, m) for p in ("lora", "full") for m in ("disc", "sft", "sft_kl")}
    assert {r["learning_rate"] for r in runs if r["parameterization"] == "lora"} == {1e-3}
    assert {r["learning_rate"] for r in runs if r["parameterization"] == "full"} == {1e-4}
    assert record["corpus"]["documents"] == 2 and record["corpus"]["probes"] >= 4
    for run in runs:
        assert run["error"] is None
        assert run["steps"] == 2
        assert 0.0 <= run["probe_accuracy_after"] <= 1.0
        assert run["probe_accuracy_gain"] == pytest.approx(run["probe_accuracy_after"] - run["probe_accuracy_before"])
        assert run["retention_kl_vs_base"] >= 0.0
        # Training moved the weights, so the model no longer matches the base exactly.
        assert run["retention_kl_vs_base"] > 0.0
        assert run["train_seconds"] > 0
    assert record["base"]["retention_kl_vs_base"] == pytest.approx(0.0, abs=1e-6)

    markdown = (out / "knowledge_update.md").read_text()
    assert markdown.count("| LoRA |") >= 3 and markdown.count("| full |") >= 3
    assert "DiSC" in markdown and "FT+KL" in markdown and "knowledge_update.png" in markdown

    png = (out / "knowledge_update.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000


def test_rerun_keeps_hand_written_text(tiny_run, tmp_path):
    report = _report_module()
    out, _ = tiny_run
    record = json.loads((out / "knowledge_update.json").read_text())
    page = tmp_path / "knowledge_update.md"
    page.write_text(f"# Notes\n\nAnalysis above.\n\n{report.BEGIN}\nstale table\n{report.END}\n\nAnalysis below.\n")
    report.write_markdown(record, page)
    text = page.read_text()
    assert text.startswith("# Notes\n\nAnalysis above.")
    assert text.rstrip().endswith("Analysis below.")
    assert "stale table" not in text and "| LoRA | DiSC |" in text


def test_capability_preserving_choice():
    report = _report_module()
    base = {"format_compliance": 0.8, "general_mc_accuracy": 1.0}

    def run(lr, probes, fmt, general=1.0):
        return {"parameterization": "lora", "method": "sft", "learning_rate": lr, "error": None,
                "probe_accuracy_after": probes, "format_compliance": fmt, "general_mc_accuracy": general}

    record = {"base": base, "runs": [run(1e-4, 0.30, 0.80), run(1e-3, 0.45, 0.76),
                                     run(3e-3, 0.60, 0.40), run(1e-2, 0.70, 0.80, general=0.5)]}
    # 3e-3 loses 40 points of format compliance and 1e-2 half the general accuracy.
    assert report.preserving_choice(record, "lora", "sft")["learning_rate"] == 1e-3
    assert report.preserving_choice(record, "lora", "disc") is None


def test_rejects_bad_arguments():
    completed = subprocess.run(
        [sys.executable, "-m", "benchmarks.knowledge_update", "--lrs", "fast"],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 2
    assert "learning rates must be comma-separated numbers" in completed.stderr


def test_merge_combines_parts_run_separately(tiny_run, tmp_path):
    out, _ = tiny_run
    record = json.loads((out / "knowledge_update.json").read_text())
    parts = []
    for parameterization in ("lora", "full"):
        part = json.loads(json.dumps(record))
        part["runs"] = [r for r in record["runs"] if r["parameterization"] == parameterization]
        part["settings"]["parameterizations"] = [parameterization]
        path = tmp_path / f"{parameterization}.json"
        path.write_text(json.dumps(part))
        parts.append(path)
    merged_dir = tmp_path / "merged"
    completed = subprocess.run(
        [sys.executable, "-m", "benchmarks.knowledge_update", "--merge", *map(str, parts), "--out", str(merged_dir)],
        cwd=REPO, capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr[-3000:]
    merged = json.loads((merged_dir / "knowledge_update.json").read_text())
    assert merged["runs"] == record["runs"]
    assert merged["settings"]["parameterizations"] == ["lora", "full"]
    assert len(merged["parts"]) == 2
    assert (merged_dir / "knowledge_update.png").read_bytes().startswith(b"\x89PNG")

    # The same run twice is refused rather than silently duplicated.
    twice = subprocess.run(
        [sys.executable, "-m", "benchmarks.knowledge_update", "--merge", str(parts[0]), str(parts[0]),
         "--out", str(tmp_path / "twice")], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert twice.returncode != 0 and "ran twice" in twice.stderr
