"""Fixtures of the client tests: one real `disc serve` + `disc worker` pair per module.

A module-scoped stack keeps the suite fast: the tests of a module share the server, the
worker (whose model cache stays warm) and one completed update. When a test of the module
fails, the children's logs are printed at the module's end.
"""

from __future__ import annotations

import random
import sys
import uuid
from pathlib import Path

import pytest

from tests.conftest import POSTGRES_ADMIN_URL, REDIS_TEST_URL, _admin_execute
from tests.e2e.conftest import Stack, base_env

CHROMIUM = "/usr/bin/chromium"
# Flags that let Debian's Chromium run headless as root in a container, with no network calls of its own.
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="session")
def client_eval_cache(tmp_path_factory) -> Path:
    """One evaluation cache for the client tests: the base model's reference answers are computed once."""
    return tmp_path_factory.mktemp("client-eval-cache")


@pytest.fixture(scope="module")
def module_postgres_url():
    name = f"disc_test_{uuid.uuid4().hex[:12]}"
    _admin_execute(f'CREATE DATABASE "{name}"')
    yield POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    _admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def module_redis_url():
    import redis

    url = f"{REDIS_TEST_URL}/{random.randint(1, 15)}"
    connection = redis.Redis.from_url(url)
    connection.flushdb()
    yield url
    connection.flushdb()


@pytest.fixture(scope="module")
def start_stack(request, tmp_path_factory, client_eval_cache, tiny_model):
    """``start_stack(**env)``: a migrated record, a worker and the API with one key of every scope."""
    stacks: list[Stack] = []
    failed_before = request.session.testsfailed

    def start(**overrides: str) -> Stack:
        root = tmp_path_factory.mktemp("client-stack")
        env = base_env(root, client_eval_cache, tiny_model, DISC_AUTH_DISABLED="false", **overrides)
        stack = Stack(root, env)
        stacks.append(stack)
        stack.start(with_key=True)
        stack.token = stack.headers["Authorization"].removeprefix("Bearer ")
        return stack

    yield start
    for stack in stacks:
        stack.stop()
    if request.session.testsfailed > failed_before:
        for stack in stacks:
            sys.stdout.write(stack.logs() + "\n")


@pytest.fixture(scope="module")
def browser():
    """Debian's headless Chromium driven by Playwright (its own browser download is not used)."""
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: run scripts/ensure-browser.sh (make test does)"
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)
        yield chromium
        chromium.close()


def long_documents(count: int, topic: str) -> list[dict]:
    """Distinct documents of several sentences: enough work for a job to be seen running."""
    return [{"id": f"{topic}-{i}",
             "text": f"{topic} fact {i}: the river Quell{i} flows north through the valley of Marn{i}. "
                     f"Its water is green because of copper in the hills. Fishermen of Marn{i} sell eels at dawn. "
                     f"The bridge over it was built in {1800 + i}."} for i in range(count)]


DOCUMENTS = [
    {"id": "zorblat", "text": "The Zorblat river flows north through Kethia. It was named by the first settlers "
                              "in 1820. Its water is bright green because of a rare algae."},
    {"id": "quilbo", "text": "Mount Quilbo is the tallest peak in Varnia. It rises 4,210 metres above the sea. "
                             "Climbers first reached its summit in 1953."},
]
PROBES = [{"question": "Which way does the Zorblat river flow?", "options": ["north", "south", "east", "west"],
           "answer": 0, "document_id": "zorblat"}]
PROMPT = "Which way does the Zorblat river flow?"


def logits(model, tokenizer, text: str = PROMPT):
    import torch

    ids = tokenizer(text, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        return model(ids).logits


def front_matter(card: str) -> dict:
    import yaml

    assert card.startswith("---\n"), card[:200]
    return yaml.safe_load(card.split("---\n", 2)[1])
