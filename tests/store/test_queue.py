"""Jobs go to their base model's queue, so a worker takes only jobs of the models it serves."""

from __future__ import annotations

import base64
import json

import redis

from store.queue import UPDATES_QUEUE, enqueue_job, queue_for
from store.settings import Settings


def _queued_job_ids(client: redis.Redis, queue: str) -> list[str]:
    # kombu's Redis transport keeps a queue as a list of JSON messages under the queue's name;
    # a Celery message's body is base64 JSON [args, kwargs, embed], and args is [job id].
    return [json.loads(base64.b64decode(json.loads(raw)["body"]))[0][0] for raw in client.lrange(queue, 0, -1)]


def test_a_job_is_sent_to_its_base_models_queue_and_others_to_updates(redis_url, tmp_path):
    settings = Settings(home=tmp_path, broker_url=redis_url,
                        base_model_queues={"Qwen2.5-0.5B-Instruct": "qwen"})
    assert queue_for("Qwen2.5-0.5B-Instruct", settings) == "qwen"
    assert queue_for("SmolLM2-135M-Instruct", settings) == UPDATES_QUEUE

    enqueue_job("job-on-qwen", settings, base_model="Qwen2.5-0.5B-Instruct")
    enqueue_job("job-on-smol", settings, base_model="SmolLM2-135M-Instruct")
    client = redis.Redis.from_url(redis_url)
    assert _queued_job_ids(client, "qwen") == ["job-on-qwen"]
    assert _queued_job_ids(client, UPDATES_QUEUE) == ["job-on-smol"]


def test_queues_per_base_model_come_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("DISC_BASE_MODEL_QUEUES", '{"m1": "gpu-big"}')
    assert Settings(home=tmp_path).base_model_queues == {"m1": "gpu-big"}
