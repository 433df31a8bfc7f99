"""The Python SDK against a real `disc serve` + `disc worker` on PostgreSQL and Redis: submit → wait →
download → load in PEFT, paging, cancelling, retries through a failing proxy, a bad key.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import time

import pytest

from disc_cli.processes import disc_argv, free_port
from disc_client import (
    APIConnectionError,
    AuthenticationError,
    Client,
    ConflictError,
    DestinationExists,
    JobPublic,
    ServerError,
    VersionPublic,
)
from disc_engine.objectives import DEFAULT_METHOD

from .conftest import DOCUMENTS, PROBES, front_matter, logits, long_documents
from .flaky_proxy import FlakyProxy


@pytest.fixture(scope="module")
def stack(start_stack, module_postgres_url, module_redis_url):
    return start_stack(DISC_DATABASE_URL=module_postgres_url, DISC_BROKER_URL=module_redis_url)


@pytest.fixture(scope="module")
def client(stack):
    with Client(stack.base_url, stack.token, backoff_s=0.05) as client:
        yield client


@pytest.fixture(scope="module")
def first_update(client):
    """One update of lineage "news", followed to its end; every progress report is kept."""
    reports: list[JobPublic] = []
    job = client.updates.create(DOCUMENTS, probes=PROBES, lineage="news", promotion={"policy": "always"},
                                hyperparameters={"learning_rate": 1e-3})
    done = client.jobs.wait(job.id, progress=reports.append, poll_interval_s=0.3, timeout_s=1200)
    return job, done, reports


def _wait_until(condition, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


def test_an_update_is_awaited_then_downloaded_verified_with_a_model_card_and_loads_in_peft(
        first_update, client, stack, tmp_path, tiny_model):
    from peft import PeftModel

    from disc_engine.models import load_model, load_tokenizer, model_cache_dir

    job, done, reports = first_update
    assert isinstance(done, JobPublic) and done.status == "succeeded", done.error
    assert job.status == "queued" and reports[0].status in ("queued", "running")
    assert reports[-1].status == "succeeded" and len(reports) >= 2
    assert done.result_version is not None and done.result_version.version == 1

    latest = client.models.latest("news")
    assert isinstance(latest, VersionPublic) and latest.version == 1 and latest.is_latest
    assert [v.version for v in client.models.versions("news")] == [1]
    assert [(m.from_version, m.to_version, m.reason) for m in client.models.history("news")] == [(None, 1, "policy")]
    assert any(line.name == "news" and line.latest_version == 1 and line.version_count == 1
               for line in client.models.lineages())

    path = client.models.download("news", "latest", tmp_path / "news-v1")
    assert sorted(p.name for p in path.iterdir()) == [
        "README.md", "adapter_config.json", "adapter_model.safetensors", "meta.json"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "the staging folder was left behind"
    card = (path / "README.md").read_text()
    meta = front_matter(card)
    assert meta["base_model"] == tiny_model and meta["library_name"] == "peft"
    assert {"disc", "lora", "peft"} <= set(meta["tags"])
    assert meta["disc"]["lineage"] == "news" and meta["disc"]["version"] == 1
    assert meta["disc"]["parent_version"] is None and meta["disc"]["method"] == DEFAULT_METHOD
    assert meta["disc"]["scores"] == latest.scores and meta["disc"]["artifact_sha256"] == latest.artifact_sha256
    for local in (str(stack.root), str(model_cache_dir()), str(tmp_path)):
        assert local not in card

    tokenizer = load_tokenizer(tiny_model)
    adapted = PeftModel.from_pretrained(load_model(tiny_model), str(path)).eval()
    assert float((logits(adapted, tokenizer) - logits(load_model(tiny_model), tokenizer)).abs().max()) > 1e-6

    with pytest.raises(DestinationExists):
        client.models.download("news", 1, path)


def test_jobs_page_through_more_than_one_page_and_cancel_while_queued_or_running(first_update, client):
    long = client.updates.create(long_documents(60, "Cancel"), lineage="scratch", hyperparameters={"epochs": 3})
    _wait_until(lambda: (j := client.jobs.retrieve(long.id)).status == "running" and j.progress.documents_done > 0,
                180, "the long job to train")
    queued = [client.updates.create([f"Queued fact {i}: the lake Orr{i} is deep and cold."], lineage="scratch")
              for i in range(2)]
    for job in queued:
        cancelled = client.jobs.cancel(job.id)
        assert cancelled.status == "cancelled", "a queued job is cancelled at once"

    assert client.jobs.cancel(long.id).cancel_requested
    ended = client.jobs.wait(long.id, poll_interval_s=0.3, timeout_s=60)
    assert ended.status == "cancelled" and ended.result_version is None
    assert "cancel_requested" in [event.kind for event in client.jobs.events(long.id)]
    with pytest.raises(ConflictError) as refused:
        client.jobs.cancel(long.id)
    assert refused.value.code == "job_finished" and refused.value.param == "job_id"

    pages = list(client.jobs.list(lineage="scratch", page_size=2).pages())
    assert [len(page.data) for page in pages] == [2, 1] and pages[-1].next_cursor is None
    assert [j.id for page in pages for j in page.data] == [queued[1].id, queued[0].id, long.id]
    everything = [j.id for j in client.jobs.list(page_size=1)]
    assert len(everything) == len(set(everything)) >= 4
    assert {first_update[0].id, long.id, *(j.id for j in queued)} <= set(everything)
    assert [j.id for j in client.jobs.list(lineage="scratch", status="cancelled", page_size=1)] == [
        queued[1].id, queued[0].id, long.id]


def test_429_and_503_are_retried_honouring_retry_after_and_posts_only_with_their_idempotency_key(
        first_update, stack):
    proxy = FlakyProxy(stack.base_url)
    try:
        with Client(proxy.url, stack.token, backoff_s=0.01) as client:
            proxy.fail("GET", "/models/latest", 429, retry_after="1")
            started = time.monotonic()
            assert client.models.latest("news").version == 1
            assert time.monotonic() - started >= 0.95, "the client did not wait as Retry-After said"
            assert [s.answered for s in proxy.requests("GET", "/models/latest")] == [429, 200]

            # The API creates the job but the answer is lost: the retry, with the same key, gets that job.
            proxy.fail("POST", "/updates", 503, retry_after="0", after_forwarding=True)
            job = client.updates.create(["The lake Orr is deep and cold."], lineage="retried",
                                        promotion={"policy": "never"})
            posts = proxy.requests("POST", "/updates")
            assert [p.answered for p in posts] == [503, 200]
            assert posts[0].idempotency_key and posts[0].idempotency_key == posts[1].idempotency_key
            assert [j.id for j in client.jobs.list(lineage="retried")] == [job.id]
            with contextlib.suppress(ConflictError):  # spare the worker; it may have ended already
                client.jobs.cancel(job.id)

            # Without a key a POST is never sent twice: the 503 comes back to the caller.
            proxy.fail("POST", "/updates", 503, retry_after="0")
            with pytest.raises(ServerError) as unavailable:
                client.updates.create(["The lake Orr is deep."], lineage="retried", idempotency_key=None)
            assert unavailable.value.status == 503 and unavailable.value.code == "unavailable"
            assert len(proxy.requests("POST", "/updates")) == 3
            assert [j.id for j in client.jobs.list(lineage="retried")] == [job.id]
    finally:
        proxy.close()

    with Client(f"http://127.0.0.1:{free_port()}", stack.token, max_retries=2, backoff_s=0.01) as nowhere:
        with pytest.raises(APIConnectionError, match="after 2 retries"):
            nowhere.jobs.retrieve("anything")


def test_a_bad_key_is_a_clear_error_in_the_sdk_and_a_nonzero_exit_of_the_command(stack):
    with Client(stack.base_url, "disc_not-a-key") as client:
        with pytest.raises(AuthenticationError) as refused:
            client.models.latest("news")
    assert refused.value.status == 401 and refused.value.code == "unauthorized"
    assert "invalid or revoked API key" in str(refused.value)

    result = subprocess.run(disc_argv("models", "latest", "--lineage", "news", "--url", stack.base_url,
                                      "--api-key", "disc_not-a-key", "--json"),
                            env=stack.env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 3, result.stderr
    assert "401 unauthorized: invalid or revoked API key" in result.stderr
    assert json.loads(result.stdout)["error"]["code"] == "unauthorized"
