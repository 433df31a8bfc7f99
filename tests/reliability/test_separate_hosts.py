"""Scale-out: two worker "hosts" that share nothing but PostgreSQL, Redis and an S3 object store.

Each worker has a private DISC_HOME (scratch folder and content cache); the API has its own and
serves downloads by redirecting to the store. Where network namespaces can be made (root), the
second worker runs in one (``hosts.py``): it reaches the servers only by the address they expose
to it, and cannot see the first worker's loopback. Every job is submitted over HTTP to a real
`disc serve` and run by real `disc worker` processes; the store is moto's S3 server
(``tests/s3server.py``), which speaks the S3 HTTP protocol and keeps its objects across a restart.
"""

from __future__ import annotations

import signal
import uuid
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from disc_client import Client
from store.artifact_store import MANIFEST_NAME
from tests.s3server import S3TestServer

from .conftest import documents, serving, wait_for
from .hosts import NetworkHost
from .servers import PrivatePostgres, PrivateRedis

ALWAYS = {"policy": "always"}
ADAPTER_FILE = "adapter_model.safetensors"
PREFIX = "disc"


@pytest.fixture(scope="module")
def second_host():
    host = NetworkHost.create()
    try:
        yield host
    finally:
        if host is not None:
            host.destroy()


def _exposed(second_host) -> tuple[str, ...]:
    return (second_host.host_address,) if second_host is not None else ()


# The servers of this module also listen on the address the second host reaches them by.
@pytest.fixture(scope="module")
def private_postgres(second_host):
    yield from serving(PrivatePostgres(extra_addresses=_exposed(second_host)))


@pytest.fixture(scope="module")
def private_redis(second_host):
    yield from serving(PrivateRedis(extra_addresses=_exposed(second_host)))


@pytest.fixture
def object_store(tmp_path, second_host):
    yield from serving(S3TestServer(tmp_path / "s3",
                                    address=_exposed(second_host)[0] if second_host else "127.0.0.1"))


class Cluster:
    """The API and two worker hosts over one deployment's PostgreSQL, Redis and object store."""

    def __init__(self, deployment, store: S3TestServer, second_host: NetworkHost | None, root: Path):
        self.deployment = deployment
        self.store = store
        self.second_host = second_host
        self.root = root
        self.bucket = f"disc-{uuid.uuid4().hex[:8]}"
        store.client().create_bucket(Bucket=self.bucket)
        self.shared = {"DISC_ARTIFACT_URL": f"s3://{self.bucket}/{PREFIX}", **store.environment()}

    def home(self, name: str) -> Path:
        return self.root / f"host-{name}"

    def serve(self):
        return self.deployment.serve(env={**self.shared, "DISC_HOME": str(self.home("api"))})

    def worker(self, name: str):
        env = {**self.shared, "DISC_HOME": str(self.home(name))}
        wrap = None
        if name == "b" and self.second_host is not None:
            # The second host knows the servers only by the address exposed to it.
            for variable in ("DISC_DATABASE_URL", "DISC_BROKER_URL"):
                env[variable] = self.deployment.env[variable].replace("127.0.0.1", self.second_host.host_address)
            wrap = self.second_host.wrap
        return self.deployment.worker("--hostname", f"disc@host-{name}", env=env, wrap=wrap)

    def client(self) -> Client:
        return Client(self.deployment.url, api_key=self.deployment.headers["Authorization"].split()[1])

    def workers_of(self, job_id: str) -> list[str]:
        return [e["data"]["worker"] for e in self.deployment.events(job_id) if e["kind"] in ("started", "resumed")]

    def object_names(self, prefix: str = "") -> list[str]:
        listed = self.store.client().list_objects_v2(Bucket=self.bucket, Prefix=f"{PREFIX}/{prefix}")
        return [o["Key"][len(PREFIX) + 1:] for o in listed.get("Contents", [])]

    def committed_checkpoints(self, job_id: str) -> list[str]:
        return sorted(name for name in self.object_names(f".checkpoints/{job_id}/") if name.endswith(MANIFEST_NAME))

    def download(self, lineage: str, version: int, into: Path) -> dict[str, torch.Tensor]:
        """The version's adapter as a client gets it: redirected to the store, unpacked, verified."""
        with self.client() as client:
            folder = client.models.download(lineage, version, into, model_card=False)
        return load_file(folder / ADAPTER_FILE)


@pytest.fixture
def cluster(deployment, object_store, second_host, tmp_path):
    return Cluster(deployment, object_store, second_host, tmp_path / "hosts")


def _files_under(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


def test_a_chain_alternates_hosts_and_the_api_serves_every_version_from_the_store(cluster, tmp_path):
    deployment = cluster.deployment
    cluster.serve()
    first = cluster.worker("a")
    v1 = deployment.submit(documents(3, "Chain one"), lineage="chain", promotion=ALWAYS)["id"]
    assert deployment.wait_terminal(v1, 180)["status"] == "succeeded"

    second = cluster.worker("b")
    first.kill(signal.SIGTERM)   # only host b is left to take the next job
    v2 = deployment.submit(documents(3, "Chain two"), lineage="chain", promotion=ALWAYS)["id"]
    assert deployment.wait_terminal(v2, 180)["status"] == "succeeded"

    cluster.worker("a")
    second.kill(signal.SIGTERM)
    v3 = deployment.submit(documents(12, "Chain three"), lineage="chain", promotion=ALWAYS)["id"]
    # The object store restarts while version 3 trains: its objects survive, the job carries on.
    wait_for(lambda: deployment.job(v3)["status"] == "running", 120, "version 3 to start")
    cluster.store.restart()
    job3 = deployment.wait_terminal(v3, 240)
    assert job3["status"] == "succeeded", (job3, deployment.worker_logs())

    assert [cluster.workers_of(job) for job in (v1, v2)] == [["disc@host-a"], ["disc@host-b"]]
    # A restart longer than the client's retries hands the job back to the queue once: it is
    # taken up again (on host a, the only one left) and resumes from its stored checkpoint.
    assert set(cluster.workers_of(v3)) == {"disc@host-a"}
    if len(cluster.workers_of(v3)) > 1:
        assert "retrying" in [e["kind"] for e in deployment.events(v3)]
    with cluster.client() as client:
        versions = client.models.versions("chain")
    assert [(v.version, v.parent_version) for v in versions] == [(1, None), (2, 1), (3, 2)]

    # Each host fetched its parent from the store into its own cache, keyed by the checksum.
    entries = {name: {p.name for p in (cluster.home(name) / "cache" / "entries").glob("*")} for name in "ab"}
    assert versions[0].artifact_sha256 in entries["b"]
    assert versions[1].artifact_sha256 in entries["a"]
    # Nothing is shared on disk: the API's home and the deployment's artifact folder hold no
    # artifact, and no host kept another's scratch files.
    assert not [p for p in _files_under(cluster.home("api")) if p.suffix in (".safetensors", ".json")]
    assert not [p for p in _files_under(deployment.settings.artifact_dir) if ".eval-cache" not in p.parts]
    for name in "ab":
        assert not _files_under(cluster.home(name) / "work" / "jobs")

    # The API answers a download with a redirect into the store; the bytes match the record.
    with deployment.client() as http:
        response = http.get("/models/chain/versions/1/artifact")
    assert response.status_code == 307
    assert response.headers["location"].startswith(cluster.store.endpoint)
    assert response.headers["X-Artifact-SHA256"] == versions[0].artifact_sha256
    downloaded = [cluster.download("chain", n, tmp_path / f"v{n}") for n in (1, 2, 3)]
    assert downloaded[0].keys() == downloaded[1].keys() == downloaded[2].keys()
    # A chained version continues its parent's adapter: each step changed the weights.
    for older, newer in zip(downloaded, downloaded[1:]):
        assert any(not torch.equal(older[k], newer[k]) for k in older)


def test_a_job_killed_on_one_host_resumes_on_the_other_from_the_checkpoint_in_the_store(cluster, tmp_path):
    deployment = cluster.deployment
    cluster.serve()
    texts = documents(30, topic="Moving")   # checkpoints after documents 10 and 20
    options = {"hyperparameters": {"seed": 5}, "promotion": ALWAYS}
    first = cluster.worker("a")
    job_id = deployment.submit(texts, lineage="moved", **options)["id"]
    wait_for(lambda: cluster.committed_checkpoints(job_id), 180, "a checkpoint in the store")
    first.kill()   # SIGKILL: host a is gone, and its private folder with it as far as b can tell
    assert deployment.job(job_id)["status"] == "running"
    deployment.backdate_heartbeat(job_id, seconds=3600)

    cluster.worker("b")
    job = deployment.wait_terminal(job_id, 240)
    assert job["status"] == "succeeded" and job["attempts"] == 2, job
    assert cluster.workers_of(job_id) == ["disc@host-a", "disc@host-b"]
    events = deployment.events(job_id)
    [restored] = [e for e in events if e["kind"] == "checkpoint_restored"]
    assert restored["data"]["checkpoint"].startswith("ckpt-")
    assert not cluster.committed_checkpoints(job_id), "a finished job's checkpoints leave the store"

    control = deployment.submit(texts, lineage="unmoved", **options)["id"]
    assert deployment.wait_terminal(control, 240)["status"] == "succeeded"
    resumed = cluster.download("moved", 1, tmp_path / "resumed")
    uninterrupted = cluster.download("unmoved", 1, tmp_path / "uninterrupted")
    assert resumed.keys() == uninterrupted.keys()
    for name in uninterrupted:
        assert torch.allclose(resumed[name], uninterrupted[name], rtol=1e-5, atol=1e-7), name


def test_a_store_outage_during_a_job_shows_no_version_and_the_job_is_retried(cluster, tmp_path):
    deployment = cluster.deployment
    cluster.serve()
    cluster.worker("a")
    job_id = deployment.submit(documents(30, topic="Outage"), lineage="outage", promotion=ALWAYS,
                               hyperparameters={"seed": 2})["id"]
    wait_for(lambda: cluster.committed_checkpoints(job_id), 180, "a checkpoint in the store")
    cluster.store.stop()   # refused connections: the next upload fails
    retried = deployment.wait_job(job_id, lambda j: "retrying" in [e["kind"] for e in deployment.events(j["id"])],
                                  180, "the job to be handed back to the queue")
    assert retried["status"] in ("queued", "running")
    with deployment.client() as http:
        assert http.get("/models/outage/versions").json()["data"] == []
    cluster.store.start()   # with every object it held
    job = deployment.wait_terminal(job_id, 240)
    assert job["status"] == "succeeded" and job["attempts"] == 2, job
    kinds = [e["kind"] for e in deployment.events(job_id)]
    assert kinds.index("retrying") < kinds.index("checkpoint_restored") < kinds.index("succeeded")
    with cluster.client() as client:
        [version] = client.models.versions("outage")
    # The store holds the registered version and nothing else of the job.
    names = cluster.object_names()
    assert not [n for n in names if job_id in n and not n.startswith(f"outage/v1-{job_id}/")]
    assert f"outage/v1-{job_id}/{MANIFEST_NAME}" in names
    assert cluster.download("outage", 1, tmp_path / "v1")
    assert version.artifact_sha256
