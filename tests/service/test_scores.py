"""Scores over versions: GET /models/{lineage}/scores, the SDK's ``models.scores`` and
`disc models scores` (table, sparklines, --json, --png) against a real API server."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from disc_cli.processes import disc_argv
from service.schemas import KNOWN_METRICS
from store import repo
from store.db import session_scope
from store.models import VersionState

from .test_models import make_version

EXIT_USAGE, EXIT_AUTH, EXIT_NOT_FOUND = 2, 3, 4

# A chain as a worker records it: the KL to the base is each version's drift over the whole
# chain, measured against the base (not the sum of the steps), next to the step from its parent.
CHAIN = [
    ("promote", {"retention_kl_vs_parent": 0.05, "retention_kl_vs_base": 0.05, "probe_accuracy_after": 0.5}),
    ("promote", {"retention_kl_vs_parent": 0.04, "retention_kl_vs_base": 0.08, "probe_accuracy_after": 0.75,
                 "custom_score": 1.0}),
    ("candidate", {"retention_kl_vs_parent": 0.3, "retention_kl_vs_base": 0.36, "probe_accuracy_after": None}),
    ("rejected", {"retention_kl_vs_parent": 0.5}),
]


@pytest.fixture
def chain(api):
    """news: v1 and v2 promoted (latest v2), v3 a candidate, v4 rejected."""
    for kind, scores in CHAIN:
        make_version(api.settings, "news", promote=kind == "promote", scores=scores,
                     state=VersionState.rejected if kind == "rejected" else VersionState.candidate)
    return api


def test_known_metrics_are_the_ones_every_evaluation_records():
    from disc_engine.evaluation import RESULT_KEYS

    assert tuple(KNOWN_METRICS) == tuple(RESULT_KEYS)


def test_every_metric_of_every_version_over_versions_oldest_first(chain):
    with chain.client(chain.key(scopes=["models:read"])) as client:
        response = client.get("/models/news/scores")
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["lineage"], body["base_model"], body["latest_version"]) == ("news", "tiny-smollm2", 2)
    assert body["metrics"] == ["custom_score", "probe_accuracy_after", "retention_kl_vs_base",
                               "retention_kl_vs_parent"]
    assert [(p["version"], p["state"], p["is_latest"]) for p in body["data"]] == [
        (1, "promoted", False), (2, "promoted", True), (3, "candidate", False), (4, "rejected", False)]
    assert [p["scores"] for p in body["data"]] == [
        {"custom_score": None, "probe_accuracy_after": 0.5, "retention_kl_vs_base": 0.05,
         "retention_kl_vs_parent": 0.05},
        {"custom_score": 1.0, "probe_accuracy_after": 0.75, "retention_kl_vs_base": 0.08,
         "retention_kl_vs_parent": 0.04},
        {"custom_score": None, "probe_accuracy_after": None, "retention_kl_vs_base": 0.36,
         "retention_kl_vs_parent": 0.3},
        {"custom_score": None, "probe_accuracy_after": None, "retention_kl_vs_base": None,
         "retention_kl_vs_parent": 0.5}]
    created = [p["created_at"] for p in body["data"]]
    assert created == sorted(created)


def test_the_cumulative_kl_to_the_base_is_shown_beside_the_step_from_the_parent(chain):
    """What the base bound (DISC_PROMOTE_MAX_RETENTION_KL_VS_BASE) reads is in every version's scores."""
    with chain.client(chain.key()) as client:
        versions = client.get("/models/news/versions").json()["data"]
        drift = client.get("/models/news/scores", params={"metric": ["retention_kl_vs_base",
                                                                     "retention_kl_vs_parent"]}).json()
        latest = client.get("/models/latest", params={"lineage": "news"}).json()
    assert drift["metrics"] == ["retention_kl_vs_base", "retention_kl_vs_parent"]
    for version, point in zip(versions, drift["data"]):
        assert {"retention_kl_vs_parent", "retention_kl_vs_base"} <= set(version["scores"]) or version["version"] == 4
        assert point["scores"] == {name: version["scores"].get(name) for name in drift["metrics"]}
    assert latest["scores"]["retention_kl_vs_base"] == 0.08 and latest["scores"]["retention_kl_vs_parent"] == 0.04


def test_metrics_are_filtered_in_the_order_asked_and_a_known_metric_no_version_has_is_null(chain):
    with chain.client(chain.key()) as client:
        asked = client.get("/models/news/scores", params={"metric": [
            "retention_kl_vs_base", "custom_score", "retention_kl_vs_base", "format_compliance"]})
    assert asked.status_code == 200, asked.text
    body = asked.json()
    assert body["metrics"] == ["retention_kl_vs_base", "custom_score", "format_compliance"]
    assert [p["scores"] for p in body["data"]] == [
        {"retention_kl_vs_base": 0.05, "custom_score": None, "format_compliance": None},
        {"retention_kl_vs_base": 0.08, "custom_score": 1.0, "format_compliance": None},
        {"retention_kl_vs_base": 0.36, "custom_score": None, "format_compliance": None},
        {"retention_kl_vs_base": None, "custom_score": None, "format_compliance": None}]


def test_unknown_metric_is_422_and_unknown_lineage_404_in_the_common_shape(chain):
    with chain.client(chain.key()) as client:
        unknown = client.get("/models/news/scores", params={"metric": ["probe_accuracy_after", "accuracy"]})
        too_long = client.get("/models/news/scores", params={"metric": "x" * 65})
        nowhere = client.get("/models/nowhere/scores")
        nowhere_with_bad_metric = client.get("/models/nowhere/scores", params={"metric": "accuracy"})
    assert unknown.status_code == 422
    error = unknown.json()["error"]
    assert (error["code"], error["param"]) == ("unknown_metric", "metric")
    assert "'accuracy'" in error["message"] and "custom_score" in error["message"]
    assert "'probe_accuracy_after'" not in error["message"]
    assert too_long.status_code == 422 and too_long.json()["error"]["code"] == "validation_error"
    assert too_long.json()["error"]["param"].startswith("metric")
    for response in (nowhere, nowhere_with_bad_metric):
        assert response.status_code == 404
        assert response.json() == {"error": {"code": "not_found", "message": "lineage 'nowhere' not found",
                                             "param": "lineage"}}


def test_the_scores_need_models_read_and_the_keys_lineage(chain):
    with chain.client() as anonymous:
        assert anonymous.get("/models/news/scores").status_code == 401
    with chain.client(chain.key(scopes=["jobs:read"])) as client:
        missing_scope = client.get("/models/news/scores")
    with chain.client(chain.key(scopes=["models:read"], lineage="other")) as client:
        other_lineage = client.get("/models/news/scores")
    with chain.client(chain.key(scopes=["models:read"], lineage="news")) as client:
        own_lineage = client.get("/models/news/scores")
    assert missing_scope.status_code == 403 and missing_scope.json()["error"]["code"] == "forbidden"
    assert other_lineage.status_code == 403 and other_lineage.json()["error"]["param"] == "lineage"
    assert own_lineage.status_code == 200


def test_a_lineage_without_versions_has_an_empty_history(api):
    with session_scope(api.settings) as session:
        repo.get_or_create_lineage(session, "fresh", "tiny-smollm2")
    with api.client(api.key()) as client:
        body = client.get("/models/fresh/scores").json()
        known = client.get("/models/fresh/scores", params={"metric": "retention_kl_vs_base"}).json()
    assert body == {"lineage": "fresh", "base_model": "tiny-smollm2", "latest_version": None, "metrics": [],
                    "data": []}
    assert known["metrics"] == ["retention_kl_vs_base"] and known["data"] == []


def test_the_openapi_document_describes_the_answer(api):
    with api.client() as client:
        document = client.get("/openapi.json").json()
    operation = document["paths"]["/models/{lineage}/scores"]["get"]
    assert operation["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ScoreHistoryPublic"}
    assert {"404", "422"} <= set(operation["responses"])
    assert [p["name"] for p in operation["parameters"]] == ["lineage", "metric"]
    point = document["components"]["schemas"]["VersionScoresPublic"]["properties"]
    assert {"version", "created_at", "state", "is_latest", "scores"} == set(point)


def test_the_sdk_returns_the_history_typed(chain):
    from disc_client import Client, InvalidRequestError, NotFoundError, ScoreHistoryPublic

    token = chain.key()["Authorization"].removeprefix("Bearer ")
    with Client(chain.url, token) as client:
        everything = client.models.scores("news")
        drift = client.models.scores("news", ["retention_kl_vs_base"])
        with pytest.raises(InvalidRequestError) as refused:
            client.models.scores("news", ["accuracy"])
        with pytest.raises(NotFoundError):
            client.models.scores("nowhere")
    assert isinstance(everything, ScoreHistoryPublic) and len(everything.data) == 4
    assert [p.scores["retention_kl_vs_base"] for p in drift.data] == [0.05, 0.08, 0.36, None]
    assert (refused.value.code, refused.value.param) == ("unknown_metric", "metric")


# --- `disc models scores` ------------------------------------------------------------------------

def disc(api, *args: str) -> subprocess.CompletedProcess:
    token = api.key(scopes=["models:read"])["Authorization"].removeprefix("Bearer ")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DISC_")}
    env.update(DISC_URL=api.url, DISC_API_KEY=token,
               PYTHONPATH=os.pathsep.join([str(Path(__file__).resolve().parents[2]), env.get("PYTHONPATH", "")]))
    return subprocess.run(disc_argv(*args), env=env, capture_output=True, text=True, timeout=120)


def test_the_command_prints_a_table_and_a_sparkline_per_metric(chain):
    shown = disc(chain, "models", "scores", "news", "--metric", "retention_kl_vs_base,retention_kl_vs_parent",
                 "--metric", "probe_accuracy_after")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0] == "news: 4 versions, base tiny-smollm2, latest v2"
    table = {line.split()[0]: line.split()[1:] for line in lines[2:8]}
    assert table["metric"] == ["v1", "v2*", "v3", "v4"]
    assert table["state"] == ["promoted", "promoted", "candidate", "rejected"]
    assert table["retention_kl_vs_base"] == ["0.05", "0.08", "0.36", "—"]
    assert table["retention_kl_vs_parent"] == ["0.05", "0.04", "0.3", "0.5"]
    assert table["probe_accuracy_after"] == ["0.5", "0.75", "—", "—"]
    chart = {line.split()[0]: line for line in lines if line.startswith(("retention_kl", "probe_accuracy"))
             and "→" in line}
    assert chart["retention_kl_vs_base"].split()[1] == "▁▂█·"
    assert "v1 0.05 → v3 0.36  (min 0.05, max 0.36)" in chart["retention_kl_vs_base"]
    assert chart["retention_kl_vs_parent"].split()[1] == "▁▁▅█"
    assert chart["probe_accuracy_after"].split()[1] == "▁█··"


def test_the_command_answers_in_json_and_draws_a_png(chain, tmp_path):
    png = tmp_path / "news.png"
    shown = disc(chain, "models", "scores", "news", "--metric", "retention_kl_vs_base", "--json", "--png", str(png))
    assert shown.returncode == 0, shown.stderr
    body = json.loads(shown.stdout)
    assert body["metrics"] == ["retention_kl_vs_base"] and body["latest_version"] == 2
    assert [p["scores"]["retention_kl_vs_base"] for p in body["data"]] == [0.05, 0.08, 0.36, None]
    assert f"chart written to {png}" in shown.stderr

    from matplotlib.image import imread

    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    height, width, _ = imread(png).shape
    assert width == 800 and height > 200

    every = tmp_path / "every.png"
    plain = disc(chain, "models", "scores", "news", "--png", str(every))
    assert plain.returncode == 0 and f"chart written to {every}" in plain.stdout
    assert imread(every).shape[0] > imread(png).shape[0]  # one panel a metric: four panels are taller than one


def test_the_command_exit_codes(chain, tmp_path):
    unknown_metric = disc(chain, "models", "scores", "news", "--metric", "accuracy", "--json")
    assert unknown_metric.returncode == EXIT_USAGE
    assert json.loads(unknown_metric.stdout)["error"]["code"] == "unknown_metric"
    assert disc(chain, "models", "scores", "nowhere").returncode == EXIT_NOT_FOUND
    unwritable = disc(chain, "models", "scores", "news", "--png", str(tmp_path / "missing" / "x.png"))
    assert unwritable.returncode == EXIT_USAGE and "cannot write" in unwritable.stderr
    listing = disc(chain, "models", "list", "news")
    assert listing.returncode == 0 and "KL base" in listing.stdout
    with session_scope(chain.settings) as session:
        repo.get_or_create_lineage(session, "fresh", "tiny-smollm2")
    fresh = disc(chain, "models", "scores", "fresh")
    assert fresh.returncode == 0 and fresh.stdout.splitlines() == [
        "fresh: 0 versions, base tiny-smollm2, no latest yet"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("DISC_")}
    anonymous = subprocess.run(disc_argv("models", "scores", "news", "--url", chain.url, "--api-key", "disc_nope"),
                               env=env, capture_output=True, text=True, timeout=120)
    assert anonymous.returncode == EXIT_AUTH
