"""An attacker's requests against the real API over HTTP on PostgreSQL: nothing is read before
it is allowed, a key does only what its scopes say, and no input reaches a 500."""

from __future__ import annotations

import base64
import json
import socket
import subprocess
import threading
import time
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from disc_cli.demo import disc_argv
from disc_cli.processes import free_port
from disc_engine.objectives import DEFAULT_METHOD
from service.app import create_app
from store import repo
from store.db import session_scope
from store.models import AliasHistory
from tests.service.server_helpers import run_server
from tests.service.test_models import make_version
from tests.service.test_updates import DOCS, counts

WRITER = ["updates:write", "jobs:read"]


def raw_exchange(url: str, request: bytes, *, then: bytes = b"", wait_s: float = 10) -> bytes:
    """Send ``request`` (headers, maybe part of a body) on a raw socket and read the answer."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=wait_s) as sock:
        sock.sendall(request)
        if then:
            sock.sendall(then)
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    return answer


def post_headers(path: str, length: int, authorization: str | None = None) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: api.test", "Content-Type: application/json",
             f"Content-Length: {length}"]
    if authorization:
        lines.append(f"Authorization: {authorization}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


# --- 1. nothing is read before it is allowed ------------------------------------------------------

@pytest.mark.parametrize("scopes, status", [(None, 401), (["jobs:read"], 403)])
def test_a_refused_caller_is_answered_before_its_body_is_sent(api, scopes, status):
    # Only the headers go out, announcing a megabyte: the answer comes without a byte of body.
    authorization = api.key(scopes)["Authorization"] if scopes else None
    answer = raw_exchange(api.url, post_headers("/updates", 1_000_000, authorization))
    assert answer.startswith(f"HTTP/1.1 {status}".encode()), answer[:200]
    assert b'"code":"unauthorized"' in answer or b'"code":"forbidden"' in answer
    assert b"connection: close" in answer.lower()


def test_the_gate_covers_every_scoped_route_with_a_body(api):
    reader = api.key(["jobs:read"])["Authorization"]
    for path in ("/jobs/0123456789abcdef0123456789abcdef/cancel", "/models/default/versions/1/promote"):
        answer = raw_exchange(api.url, post_headers(path, 500_000, reader))
        assert answer.startswith(b"HTTP/1.1 403"), (path, answer[:200])


def test_a_writer_body_with_too_many_values_or_too_deep_is_refused_before_parsing(api):
    before = counts(api.settings)
    many = b'{"documents":[' + b",".join([b"{}"] * 5000) + b"]}"   # 15 KB, under the byte limit
    deep = {"documents": [{"text": "A fact.", "metadata": {}}]}
    node = deep["documents"][0]["metadata"]
    for _ in range(300):
        node["x"] = {}
        node = node["x"]
    with api.client(api.key(WRITER)) as client:
        too_deep = client.post("/updates", json=deep)
        parsed = client.post("/updates", content=many, headers={"Content-Type": "application/json"})
    narrow = api.settings.model_copy(update={"max_json_values": 1000})
    server, thread = run_server(create_app(narrow), port := free_port())
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=api.key(WRITER)) as client:
            too_many = client.post("/updates", content=many, headers={"Content-Type": "application/json"})
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    for response, phrase in ((too_deep, "nests deeper than 64"), (too_many, "more than 1000 JSON values")):
        assert response.status_code == 413, response.text
        assert response.json()["error"]["code"] == "payload_too_large"
        assert phrase in response.json()["error"]["message"]
    assert parsed.status_code == 422  # within the limits it is parsed, and refused for what it says
    assert counts(api.settings) == before


def test_a_body_that_stalls_is_refused_at_the_read_deadline(api):
    settings = api.settings.model_copy(update={"body_read_timeout_s": 1.0})
    server, thread = run_server(create_app(settings), port := free_port())
    try:
        started = time.monotonic()
        answer = raw_exchange(f"http://127.0.0.1:{port}",
                              post_headers("/updates", 1000, api.key(WRITER)["Authorization"]), then=b'{"docu')
        elapsed = time.monotonic() - started
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b'"code":"request_timeout"' in answer
    assert 0.9 < elapsed < 8


def test_docs_can_be_closed(api):
    closed = api.settings.model_copy(update={"api_docs": False})
    server, thread = run_server(create_app(closed), port := free_port())
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
            assert [client.get(p).status_code for p in ("/docs", "/redoc", "/openapi.json")] == [404] * 3
            assert client.get("/healthz").status_code == 200
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    with api.client() as client:
        assert client.get("/openapi.json").status_code == 200


# --- 2. a key does only what its scopes say -------------------------------------------------------

@pytest.mark.parametrize("promotion, param", [
    ({"policy": "always"}, "promotion.policy"),
    ({"max_retention_kl_vs_parent": 1e308}, "promotion.max_retention_kl_vs_parent"),
    ({"max_retention_kl_vs_base": 99.0}, "promotion.max_retention_kl_vs_base"),
    ({"policy": "auto", "min_format_compliance": -0.0, "max_retention_kl_vs_parent": 0.9},
     "promotion.max_retention_kl_vs_parent"),
])
def test_a_looser_promotion_needs_the_promote_scope(api, promotion, param):
    before = counts(api.settings)
    with api.client(api.key(WRITER)) as writer:
        refused = writer.post("/updates", json={"documents": DOCS, "promotion": promotion})
    assert refused.status_code == 403, refused.text
    assert refused.json()["error"] == {"code": "forbidden", "param": param,
                                       "message": refused.json()["error"]["message"]}
    assert "models:promote" in refused.json()["error"]["message"]
    assert counts(api.settings) == before
    with api.client(api.key([*WRITER, "models:promote"])) as operator:
        assert operator.post("/updates", json={"documents": DOCS, "promotion": promotion}).status_code == 202


def test_a_tighter_promotion_is_open_to_writers(api):
    tighter = {"policy": "never", "max_retention_kl_vs_parent": 0.01, "min_format_compliance": 0.9}
    with api.client(api.key(WRITER)) as writer:
        assert writer.post("/updates", json={"documents": DOCS, "promotion": tighter}).status_code == 202


def test_sixteen_simultaneous_first_promotions_all_succeed_and_move_latest_once(api):
    number = make_version(api.settings, "race", promote=False)
    barrier = threading.Barrier(16)
    statuses: list[int] = []

    def promote() -> None:
        with api.client(api.key()) as client:
            barrier.wait()
            statuses.append(client.post(f"/models/race/versions/{number}/promote").status_code)

    threads = [threading.Thread(target=promote) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert statuses == [200] * 16
    with session_scope(api.settings) as session:
        assert repo.latest_version(session, "race").number == number
        assert repo.count_rows(session, AliasHistory) == 1


def test_adapter_shape_cannot_be_chosen_for_a_chained_version(api):
    make_version(api.settings, "chained", promote=True)
    with api.client(api.key()) as client:
        refused = client.post("/updates", json={"documents": DOCS, "lineage": "chained",
                                                "hyperparameters": {"lora_alpha": 64, "learning_rate": 1e-4}})
        fresh = client.post("/updates", json={"documents": DOCS, "lineage": "fresh",
                                              "hyperparameters": {"lora_r": 4}})
        chained = client.post("/updates", json={"documents": DOCS, "lineage": "chained",
                                                "hyperparameters": {"learning_rate": 1e-4}})
    assert refused.status_code == 422
    assert refused.json()["error"]["param"] == "hyperparameters.lora_alpha"
    assert fresh.status_code == 202 and chained.status_code == 202


# --- 3. and 7. input that used to reach a 500, and smaller gaps -----------------------------------

def test_nul_in_job_paths_and_cursors_is_a_clean_4xx(api):
    with api.client(api.key()) as client:
        answers = {path: client.request(method, path) for method, path in (
            ("GET", "/jobs/%00"), ("GET", "/jobs/ab%00cd/events"), ("POST", "/jobs/%00/cancel"))}
        bad_cursor = base64.urlsafe_b64encode(
            json.dumps(["2026-01-01T00:00:00+00:00", "a\x00b"]).encode()).decode()
        answers["cursor"] = client.get("/jobs", params={"cursor": bad_cursor})
    for name, response in answers.items():
        assert 400 <= response.status_code < 500, (name, response.text)
        assert set(response.json()["error"]) == {"code", "message", "param"}
    assert answers["cursor"].json()["error"]["code"] == "invalid_cursor"
    assert answers["/jobs/%00"].json()["error"]["param"] == "job_id"


@pytest.mark.parametrize("body, param, phrase", [
    ({"documents": [{"text": "\u200b\u200d\u2060 \ufeff"}]}, "documents[0].text", "no visible characters"),
    ({"documents": [{"text": "A fact.", "id": "d1"}],
      "probes": [{"question": "Q?", "options": ["a", "b"], "answer": 0, "document_id": "d9"}]},
     "probes[0].document_id", "names no document"),
])
def test_smaller_gaps_are_refused_naming_the_field(api, body, param, phrase):
    before = counts(api.settings)
    with api.client(api.key()) as client:
        response = client.post("/updates", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["param"] == param
    assert phrase in response.json()["error"]["message"]
    assert counts(api.settings) == before


def test_nan_in_an_integer_option_says_finite_number(api):
    with api.client(api.key()) as client:
        response = client.post("/updates", content='{"documents": [{"text": "A fact."}], '
                                                   '"hyperparameters": {"epochs": NaN}}',
                               headers={"Content-Type": "application/json"})
    assert response.status_code == 422
    assert response.json()["error"]["param"] == "hyperparameters.epochs"
    assert "finite number" in response.json()["error"]["message"]


def test_a_spelt_out_default_is_the_same_request_for_idempotency(api):
    with api.client(api.key(lineage=None)) as client:
        first = client.post("/updates", json={"documents": DOCS}, headers={"Idempotency-Key": "same"})
        explicit = client.post("/updates", json={"documents": DOCS, "method": DEFAULT_METHOD, "lineage": "default",
                                                 "hyperparameters": {"learning_rate": None}},
                               headers={"Idempotency-Key": "same"})
    assert first.status_code == 202 and explicit.status_code == 200
    assert explicit.json()["id"] == first.json()["id"]


@pytest.mark.parametrize("args, phrase", [
    (["--lineage", "../../etc"], "is not a lineage name"),
    (["--name", "n" * 101], "1..100 printable characters"),
])
def test_keys_create_validates_as_the_api_does(service_settings, args, phrase):
    env = {"PATH": "/usr/bin:/bin", "DISC_DATABASE_URL": service_settings.database_url,
           "DISC_HOME": str(service_settings.home), "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    argv = disc_argv("keys", "create", "--scopes", "jobs:read", *(["--name", "ops"] if "--name" not in args else []),
                     *args)
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert phrase in result.stderr and "Traceback" not in result.stderr
    with session_scope(service_settings) as session:
        assert repo.list_api_keys(session) == []


# --- generated hostile input -------------------------------------------------------------------

_hostile_text = st.one_of(
    st.text(st.characters(min_codepoint=0, max_codepoint=0x10FFFF), max_size=40),    # NUL, surrogates
    st.sampled_from(["\x00", "\ud800", "a\udfffb", "\u200b\ufeff", " ", "x" * 5000, "A fact.\x00"]),
)
_nested = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), _hostile_text),
                       lambda inner: st.dictionaries(_hostile_text, inner, max_size=2) | st.lists(inner, max_size=2),
                       max_leaves=12)


def _deep(levels: int) -> dict:
    node: dict = {}
    root = node
    for _ in range(levels):
        node["x"] = {}
        node = node["x"]
    return root


@settings(max_examples=60, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(text=_hostile_text, doc_id=st.one_of(st.none(), _hostile_text),
       metadata=st.one_of(st.none(), st.dictionaries(_hostile_text, _nested, max_size=3),
                          st.integers(1, 120).map(_deep)),
       path_id=_hostile_text)
def test_generated_hostile_input_never_reaches_a_500(api, text, doc_id, metadata, path_id):
    headers = api.key()
    document = {"text": text, **({"id": doc_id} if doc_id is not None else {}),
                **({"metadata": metadata} if metadata is not None else {})}
    # ensure_ascii: lone surrogates travel as \ud800 escapes, as a hostile client would send them.
    body = json.dumps({"documents": [document]}, ensure_ascii=True)
    with api.client(headers) as client:
        escaped = quote(path_id, safe="", errors="surrogatepass")   # invalid UTF-8 included
        answers = [client.post("/updates", content=body, headers={"Content-Type": "application/json"}),
                   client.get(f"/jobs/{escaped or '-'}"),
                   client.get(f"/jobs?cursor={escaped[:400]}")]
    for response in answers:
        assert response.status_code < 500, (response.status_code, response.text[:300])
        if response.status_code >= 400:
            assert set(response.json()["error"]) == {"code", "message", "param"}
