"""The product end to end, through HTTP, with real processes: submit an update, watch the job, get
the new version and its artifact, chain a second update on it, roll `latest` back.

Production shape on this machine's PostgreSQL and Redis; the embedded default (SQLite and the
SQLAlchemy broker transport) with the tiny model; and the real default model once.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from .conftest import base_env

DOCUMENTS = [
    {"id": "zorblat", "text": "The Zorblat river flows north through Kethia. It was named by the first settlers "
                              "in 1820. Its water is bright green because of a rare algae."},
    {"id": "quilbo", "text": "Mount Quilbo is the tallest peak in Varnia. It rises 4,210 metres above the sea. "
                             "Climbers first reached its summit in 1953."},
]
PROBES = [{"question": "Which way does the Zorblat river flow?", "options": ["north", "south", "east", "west"],
           "answer": 0, "document_id": "zorblat"}]
SECOND = [{"text": "The Kethian parliament meets in the city of Ordu. It has 212 members. "
                   "Elections are held every five years."}]


def _submit(client, documents, **extra) -> str:
    response = client.post("/updates", json={"documents": documents, **extra})
    assert response.status_code == 202, response.text
    return response.json()["id"]


def _download(client, version: dict, out: Path) -> Path:
    from store.storage import directory_sha256

    response = client.get(version["artifact_url"])
    assert response.status_code == 200, response.text[:500]
    with tarfile.open(fileobj=io.BytesIO(response.content), mode="r:gz") as archive:
        top = {name.split("/")[0] for name in archive.getnames()}
        archive.extractall(out, filter="data")
    (directory,) = top
    assert directory_sha256(out / directory) == version["artifact_sha256"]
    return out / directory


def _changes_the_model(artifact: Path, base_model: str) -> float:
    """Largest logit change the adapter makes on a prompt, loaded with plain PEFT."""
    import torch
    from peft import PeftModel

    from disc_engine.models import load_model, load_tokenizer

    tokenizer = load_tokenizer(base_model)
    ids = tokenizer("Which way does the Zorblat river flow?", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        before = load_model(base_model)(ids).logits
        adapted = PeftModel.from_pretrained(load_model(base_model), str(artifact)).eval()
        after = adapted(ids).logits
    assert json.loads((artifact / "adapter_config.json").read_text())["base_model_name_or_path"] == base_model
    return float((after - before).abs().max())


def _assert_scored(version: dict) -> None:
    from disc_engine.evaluation import RESULT_KEYS

    scores = version["scores"]
    assert set(RESULT_KEYS) <= set(scores)
    assert scores["retention_kl_vs_parent"] is not None and scores["retention_kl_vs_parent"] >= 0
    assert scores["knowledge_gap_before"] is not None and scores["knowledge_gap_before"] > 0
    assert scores["eval_seconds"] > 0


def test_update_chain_and_roll_back_on_postgresql_and_redis(stack_factory, tmp_path, postgres_url, redis_url,
                                                             shared_eval_cache, tiny_model):
    env = base_env(tmp_path, shared_eval_cache, tiny_model, DISC_DATABASE_URL=postgres_url,
                   DISC_BROKER_URL=redis_url, DISC_AUTH_DISABLED="false")
    stack = stack_factory(env, with_key=True)
    with stack.client() as client:
        first = _submit(client, DOCUMENTS, probes=PROBES, promotion={"policy": "always"},
                        hyperparameters={"learning_rate": 1e-3})
        job = stack.wait_for_job(client, first)
        assert job["status"] == "succeeded", job["error"]
        assert job["progress"]["documents_done"] == job["progress"]["documents_total"] == len(DOCUMENTS)
        assert job["attempts"] == 1 and job["parent_version"] is None

        latest = client.get("/models/latest").json()
        assert latest["version"] == 1 and latest["is_latest"] and latest["job_id"] == first
        _assert_scored(latest)
        assert latest["scores"]["probe_count"] == 1
        artifact = _download(client, latest, tmp_path / "download")
        assert _changes_the_model(artifact, tiny_model) > 1e-6

        second = _submit(client, SECOND, promotion={"policy": "always"})
        job = stack.wait_for_job(client, second)
        assert job["status"] == "succeeded", job["error"]
        assert job["parent_version"] == 1 and job["result_version"]["parent_version"] == 1
        latest = client.get("/models/latest").json()
        assert latest["version"] == 2
        _assert_scored(latest)

        response = client.post("/models/default/versions/1/promote")
        assert response.status_code == 200, response.text
        assert client.get("/models/latest").json()["version"] == 1
        history = client.get("/models/default/aliases/latest/history").json()["data"]
        assert [(h["from_version"], h["to_version"], h["reason"]) for h in history] == [
            (None, 1, "policy"), (1, 2, "policy"), (2, 1, "manual")]

        # Without a key, nothing.
        assert client.get("/models/latest", headers={"Authorization": ""}).status_code == 401


def test_update_on_the_embedded_default(stack_factory, tmp_path, shared_eval_cache, tiny_model):
    # DISC_RECONCILE_AFTER_S: a job whose first send did not reach the broker is re-sent quickly.
    env = base_env(tmp_path, shared_eval_cache, tiny_model, DISC_AUTH_DISABLED="true",
                   DISC_RECONCILE_AFTER_S="3")
    stack = stack_factory(env, with_key=False)
    assert stack.env["DISC_HOME"] and "DISC_DATABASE_URL" not in stack.env
    with stack.client() as client:
        job_id = _submit(client, DOCUMENTS, promotion={"policy": "always"})
        job = stack.wait_for_job(client, job_id)
        assert job["status"] == "succeeded", job["error"]
        latest = client.get("/models/latest").json()
        assert latest["version"] == 1 and latest["state"] == "promoted"
        _assert_scored(latest)
        _download(client, latest, tmp_path / "download")
    assert (tmp_path / "home" / "disc.sqlite").is_file() and (tmp_path / "home" / "broker.sqlite").is_file()


@pytest.mark.slow
def test_update_on_the_default_model(stack_factory, tmp_path, shared_eval_cache):
    """The real SmolLM2-135M-Instruct, embedded default, sample documents, the product's own
    update defaults: epochs under the retention budget, each recorded as a job event."""
    from disc_engine.data import load_update_sample
    from disc_engine.models import DEFAULT_MODEL
    from disc_engine.options import DEFAULT_EPOCHS
    from disc_engine.options import DEFAULT_RETENTION_BUDGET_KL as BUDGET

    sample = load_update_sample()
    documents = sample["documents"][:2]
    kept = {d["id"] for d in documents}
    probes = [p for p in sample["probes"] if p["document_id"] in kept]
    env = base_env(tmp_path, shared_eval_cache, DEFAULT_MODEL, DISC_AUTH_DISABLED="true",
                   DISC_RECONCILE_AFTER_S="3", DISC_UPDATE_DEFAULTS="{}")
    stack = stack_factory(env, with_key=False)
    with stack.client() as client:
        job_id = _submit(client, documents, probes=probes, promotion={"policy": "always"})
        job = stack.wait_for_job(client, job_id, timeout_s=2400)
        assert job["status"] == "succeeded", job["error"]
        version = client.get("/models/latest").json()
        events = client.get(f"/jobs/{job_id}/events").json()["data"]
    epochs = [e["data"] for e in events if e["kind"] == "epoch"]
    chosen = [e["data"] for e in events if e["kind"] == "epoch_selected"]
    assert [p["epoch"] for p in epochs] == list(range(len(epochs))) and 2 <= len(epochs) <= DEFAULT_EPOCHS + 1
    assert abs(epochs[0]["retention_kl_vs_parent"]) < 1e-6
    assert chosen and chosen[0]["budget"]["max_kl_vs_parent"] == BUDGET
    kept = chosen[0]["best_epoch"]
    assert epochs[kept]["kept"] and all(p["retention_kl_vs_parent"] <= BUDGET for p in epochs if p["kept"])
    _assert_scored(version)
    scores = version["scores"]
    # The update taught something: the closed-book gap on its own documents shrank.
    assert scores["knowledge_gap_after"] < scores["knowledge_gap_before"]
    # A real chat model keeps answering general questions after a small update.
    assert scores["general_mc_accuracy"] is not None and scores["general_mc_accuracy"] >= 0.5
    assert scores["probe_count"] == len(probes)
