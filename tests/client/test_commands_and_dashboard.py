"""The `disc` client commands and the /ui dashboard against a real `disc serve` + `disc worker` on the
embedded default (SQLite, the SQLAlchemy broker transport), the dashboard in headless Chromium.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from disc_cli.processes import disc_argv, free_port
from disc_engine.objectives import DEFAULT_METHOD

from .conftest import DOCUMENTS, PROBES, front_matter, logits, long_documents

EXIT_JOB_FAILED, EXIT_AUTH, EXIT_NOT_FOUND, EXIT_CONFLICT, EXIT_UNAVAILABLE, EXIT_CANCELLED = 1, 3, 4, 5, 6, 7


@pytest.fixture(scope="module")
def stack(start_stack):
    stack = start_stack(DISC_RECONCILE_AFTER_S="3")
    assert "DISC_DATABASE_URL" not in stack.env and "DISC_BROKER_URL" not in stack.env
    stack.env = dict(stack.env, DISC_URL=stack.base_url, DISC_API_KEY=stack.token)
    return stack


def disc(stack, *args: str, env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(disc_argv(*args), env=env or stack.env, capture_output=True, text=True, timeout=timeout)


def disc_json(stack, *args: str, expect: int = 0):
    result = disc(stack, *args, "--json")
    assert result.returncode == expect, f"disc {' '.join(args)} → {result.returncode}\n{result.stdout}\n{result.stderr}"
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def submitted(stack, tmp_path_factory):
    """`disc submit docs.jsonl --probes … --wait`: one update of lineage "news", followed to its end."""
    folder = tmp_path_factory.mktemp("submit")
    (folder / "docs.jsonl").write_text("".join(json.dumps(d) + "\n" for d in DOCUMENTS))
    (folder / "probes.jsonl").write_text("".join(json.dumps(p) + "\n" for p in PROBES))
    return disc(stack, "submit", str(folder / "docs.jsonl"), "--probes", str(folder / "probes.jsonl"),
                "--lineage", "news", "--set", "learning_rate=0.001", "--promotion", "always", "--wait")


def test_submit_waits_with_a_progress_bar_and_ends_with_the_versions_scores(submitted):
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    assert re.search(r"job \w+ queued: 2 documents, 1 probes, lineage 'news'", submitted.stderr)
    assert re.search(r"succeeded:?\s+100%\|.*\| 2/2 documents", submitted.stderr), submitted.stderr[-2000:]
    summary = f"succeeded: news v1 ({DEFAULT_METHOD}, from the base, base tiny-smollm2): promoted, latest"
    assert summary in submitted.stdout
    assert re.search(r"probe accuracy\s+[\d.]+\s+[\d.]+", submitted.stdout)
    assert re.search(r"KL to the parent \(lower is better\)\s+[\d.e-]+", submitted.stdout)


def test_every_command_answers_in_json_and_says_what_went_wrong_by_its_exit_code(stack, submitted):
    jobs = disc_json(stack, "jobs", "list", "--lineage", "news")["data"]
    assert len(jobs) == 1 and jobs[0]["status"] == "succeeded"
    job_id = jobs[0]["id"]
    shown = disc_json(stack, "jobs", "show", job_id, "--events")
    assert shown["job"]["result_version"]["version"] == 1 and shown["events"][0]["kind"] == "created"
    assert disc_json(stack, "jobs", "watch", job_id)["status"] == "succeeded"
    latest = disc_json(stack, "models", "latest", "--lineage", "news")
    assert latest["version"] == 1 and latest["is_latest"] and latest["job_id"] == job_id
    lineages = disc_json(stack, "models", "list")["data"]
    assert [(x["name"], x["version_count"], x["latest_version"]) for x in lineages] == [("news", 1, 1)]
    assert [v["version"] for v in disc_json(stack, "models", "list", "news")["data"]] == [1]
    history = disc_json(stack, "models", "scores", "news")
    drift = history["data"][0]["scores"]
    assert history["latest_version"] == 1 and set(history["metrics"]) == set(latest["scores"])
    # Version 1's parent is the base: its drift from the base over the chain is its one step.
    assert drift["retention_kl_vs_base"] == drift["retention_kl_vs_parent"] == latest["scores"]["retention_kl_vs_base"]
    assert disc_json(stack, "models", "promote", "news", "1")["is_latest"]
    moves = disc_json(stack, "models", "history", "news")["data"]
    assert [(m["from_version"], m["to_version"], m["reason"]) for m in moves] == [(None, 1, "policy")]

    refused = disc_json(stack, "jobs", "cancel", job_id, expect=EXIT_CONFLICT)
    assert refused["error"]["code"] == "job_finished"
    assert disc_json(stack, "models", "latest", "--lineage", "nothing-yet",
                     expect=EXIT_NOT_FOUND)["error"]["code"] == "no_promoted_version"
    assert disc_json(stack, "jobs", "show", "no-such-job", expect=EXIT_NOT_FOUND)["error"]["param"] == "job_id"
    bad_key = disc(stack, "jobs", "list", env=dict(stack.env, DISC_API_KEY="disc_not-a-key"))
    assert bad_key.returncode == EXIT_AUTH and "401 unauthorized: invalid or revoked API key" in bad_key.stderr
    nowhere = disc(stack, "models", "latest", "--url", f"http://127.0.0.1:{free_port()}")
    assert nowhere.returncode == EXIT_UNAVAILABLE and "Connection refused" in nowhere.stderr
    plain = disc(stack, "models", "list", "news")
    assert plain.returncode == 0, plain.stderr
    assert re.search(rf"\*\s+v1\s+base\s+promoted\s+{DEFAULT_METHOD}\s", plain.stdout), plain.stdout
    chart = disc(stack, "models", "scores", "news", "--metric", "retention_kl_vs_base")
    assert chart.returncode == 0 and re.search(r"^retention_kl_vs_base\s+▄\s+v1 [\d.e-]+ → v1", chart.stdout, re.M), \
        chart.stdout


def test_pull_writes_an_adapter_and_merged_weights_that_compute_the_same_logits(stack, submitted, tmp_path,
                                                                                 tiny_model):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from disc_engine.models import load_model, load_tokenizer, model_cache_dir

    pulled = disc_json(stack, "pull", "news", "-o", str(tmp_path / "adapter"))
    merged = disc_json(stack, "pull", "news", "1", "-o", str(tmp_path / "merged"), "--merged")
    assert pulled["version"] == merged["version"] == 1 and merged["merged"] and not pulled["merged"]
    adapter_dir, merged_dir = Path(pulled["path"]), Path(merged["path"])
    assert {"adapter_config.json", "adapter_model.safetensors", "README.md"} <= {p.name for p in adapter_dir.iterdir()}
    assert {"model.safetensors", "config.json", "tokenizer.json", "README.md"} <= {p.name for p in merged_dir.iterdir()}
    assert not (merged_dir / "adapter_config.json").exists()
    card = front_matter((merged_dir / "README.md").read_text())
    assert card["library_name"] == "transformers" and card["base_model"] == tiny_model and card["disc"]["merged"]
    for text_file in [*merged_dir.glob("*.json"), merged_dir / "README.md", adapter_dir / "README.md",
                      adapter_dir / "adapter_config.json"]:
        text = text_file.read_text()
        assert str(model_cache_dir()) not in text and str(stack.root) not in text, f"{text_file} names a local path"

    tokenizer = load_tokenizer(tiny_model)
    with_adapter = logits(PeftModel.from_pretrained(load_model(tiny_model), str(adapter_dir)).eval(), tokenizer)
    from_merged = logits(AutoModelForCausalLM.from_pretrained(str(merged_dir)).eval(), tokenizer)
    base = logits(load_model(tiny_model), tokenizer)
    assert float((with_adapter - base).abs().max()) > 1e-6, "the adapter changes nothing: the comparison would be empty"
    assert float((from_merged - with_adapter).abs().max()) < 1e-4

    again = disc(stack, "pull", "news", "-o", str(adapter_dir))
    assert again.returncode == EXIT_CONFLICT and "not an empty folder" in again.stderr


def test_the_dashboard_shows_a_lineages_chart_and_a_running_jobs_progress_with_the_key(stack, submitted, browser,
                                                                                       tmp_path):
    page = browser.new_page()
    methods: set[str] = set()
    page.on("request", lambda request: methods.add(request.method))
    try:
        response = page.goto(f"{stack.base_url}/ui")
        assert response.ok and "script-src 'self'" in response.headers["content-security-policy"]
        page.wait_for_selector("#status.error")
        assert "needs a valid key" in page.text_content("#status")

        page.fill("#api-key", stack.token)
        page.click("#use-key")
        page.wait_for_selector('#lineages a[data-lineage="news"]')
        for chart in ("knowledge", "drift", "skills"):
            page.wait_for_selector(f'svg[data-chart="{chart}"] circle[data-version="1"]')
        assert page.text_content("#lineage-title") == "news"
        assert "latest → v1" in page.text_content("#lineage-summary")
        row = page.locator('#versions tr[data-version="1"]')
        assert "latest" in row.text_content() and "promoted" in row.text_content()
        assert "policy" in page.text_content("#history tbody")

        (tmp_path / "long.jsonl").write_text("".join(json.dumps(d) + "\n" for d in long_documents(60, "Shown")))
        job = disc_json(stack, "submit", str(tmp_path / "long.jsonl"), "--lineage", "news", "--set", "epochs=3")
        job_row = f'#jobs tr[data-job-id="{job["id"]}"]'
        page.wait_for_selector(f'{job_row}[data-status="running"]', timeout=180_000)
        page.wait_for_function(
            "selector => { const bar = document.querySelector(selector + ' progress');"
            " return bar && Number(bar.getAttribute('value')) > 0 && Number(bar.getAttribute('max')) === 180; }",
            arg=job_row, timeout=180_000)
        assert re.search(r"training · \d+/180 documents · epoch \d", page.text_content(f"{job_row} .progress-text"))

        assert disc(stack, "jobs", "cancel", job["id"]).returncode == 0
        assert disc(stack, "jobs", "watch", job["id"]).returncode == EXIT_CANCELLED
        page.wait_for_selector(f'{job_row}[data-status="cancelled"]', timeout=30_000)
        assert methods == {"GET"}, "the dashboard must only read"
    finally:
        page.close()
