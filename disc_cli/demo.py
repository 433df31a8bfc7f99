"""`disc demo`: the whole product on this machine, with no server to install.

In a fresh folder (``.disc/demo``) it migrates an SQLite database, starts a real worker and the
HTTP API as child processes (the broker is kombu's SQLAlchemy transport over SQLite), creates
an API key, submits the bundled sample update over HTTP, follows the job with a progress bar
and ends with the new version's scores and where its artifact is. The children are stopped on
the way out, also on Ctrl-C or an error.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

# Standard library only (no torch): the sample is a JSON file shipped in the package.
from disc_cli.processes import Child, disc_argv, free_port
from disc_engine.data import SAMPLE_PATH, load_update_sample
from disc_engine.objectives import METHODS

DEFAULT_HOME = Path(".disc") / "demo"
SCOPES = "updates:write,jobs:read,models:read,models:promote"

def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo", help="run the service locally and teach the default model the bundled sample update",
        description="Start a worker and the API on this machine (SQLite, no external server), submit "
                    "the bundled sample documents over HTTP, show the job's progress and the new "
                    "version's scores. Takes a few minutes on a laptop CPU.")
    parser.add_argument("--home", type=Path, default=DEFAULT_HOME,
                        help=f"folder for the demo's database, queue, artifacts and logs; emptied first "
                             f"(default: {DEFAULT_HOME})")
    parser.add_argument("--model", default=None,
                        help="base model (default: SmolLM2-135M-Instruct, bundled)")
    parser.add_argument("--sample", type=Path, default=SAMPLE_PATH,
                        help="update to submit: JSON with \"documents\" and optional \"probes\"")
    parser.add_argument("--method", default=None, choices=METHODS,
                        help="training objective (default: the service's default method)")
    parser.add_argument("--port", type=int, default=0, help="API port (default: a free one)")
    parser.add_argument("--timeout", type=float, default=3600, help="give up after this many seconds")
    parser.set_defaults(func=run)


def demo_environment(home: Path, model: str | None) -> dict[str, str]:
    """The embedded default, pinned explicitly so that DISC_* variables in the shell (a production
    database, say) cannot leak into the demo."""
    home = home.resolve()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DISC_") or k == "DISC_MODEL_CACHE"}
    env.update({
        "DISC_HOME": str(home),
        "DISC_DATABASE_URL": f"sqlite:///{home / 'disc.sqlite'}",
        "DISC_BROKER_URL": f"sqla+sqlite:///{home / 'broker.sqlite'}",
        "DISC_ARTIFACT_DIR": str(home / "artifacts"),
        "DISC_ENVIRONMENT": "development",
        "DISC_AUTH_DISABLED": "false",
        # A job the API could not hand to the broker is sent by the worker's reconciler; in a
        # one-job demo it should not wait the production default of a minute.
        "DISC_RECONCILE_AFTER_S": "3",
        "PYTHONUNBUFFERED": "1",
    })
    if model:
        env["DISC_BASE_MODEL"] = model
    return env


def wait_for_http(client, url: str, children: list[Child], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for child in children:
            if not child.alive():
                raise RuntimeError(f"the {child.name} exited with status {child.proc.returncode}:\n{child.tail()}")
        try:
            if client.get(url).status_code == 200:
                return
        except Exception:
            pass
        time.sleep(0.3)
    raise TimeoutError(f"{url} did not answer within {timeout_s:.0f} s")


class StartFailed(RuntimeError):
    """A step of starting the embedded service failed; the message holds its output."""


class EmbeddedService:
    """The embedded default in ``home`` (emptied first): a migrated SQLite database, an API key,
    a worker and the API as child processes. A context manager; ``client`` speaks HTTP to the
    API with the key, and leaving stops the children (also on an error or Ctrl-C)."""

    def __init__(self, home: Path, model: str | None = None, *, port: int = 0, key_name: str = "demo"):
        self.home = home.resolve()
        self.model = model
        self.port = port
        self.key_name = key_name
        self.children: list[Child] = []
        self.client = None
        self.base_url = ""

    def __enter__(self) -> EmbeddedService:
        try:
            self._start()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _start(self) -> None:
        import httpx

        if self.home.exists():
            shutil.rmtree(self.home)
        self.home.mkdir(parents=True)
        env = demo_environment(self.home, self.model)
        self._step("db", "upgrade", env=env)
        token = self._step("keys", "create", "--name", self.key_name, "--scopes", SCOPES, env=env).splitlines()[-1]
        port = self.port or free_port()
        self.base_url = f"http://127.0.0.1:{port}"
        self.children.append(Child("worker", disc_argv("worker", "--loglevel", "info", "--reconcile-every", "2"),
                                   env, self.home / "worker.log"))
        self.children.append(Child("API", disc_argv("serve", "--port", str(port), "--log-level", "warning"), env,
                                   self.home / "api.log"))
        self.client = httpx.Client(base_url=self.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=60)
        wait_for_http(self.client, "/healthz", self.children, timeout_s=120)

    @staticmethod
    def _step(*argv: str, env: dict[str, str]) -> str:
        done = subprocess.run(disc_argv(*argv), env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise StartFailed(f"disc {' '.join(argv[:2])} failed:\n{done.stdout}{done.stderr}")
        return done.stdout.strip()

    def __exit__(self, *exc) -> None:
        if self.client is not None:
            self.client.close()
        for child in reversed(self.children):
            child.stop()

    @property
    def worker(self) -> Child:
        return self.children[0]


# --- the demo -----------------------------------------------------------------------------------

def update_body(sample: dict, method: str | None) -> dict:
    """The POST /updates body for the sample: its documents and probes, and the method if one was named."""
    body = {"documents": sample["documents"]}
    if sample.get("probes"):
        body["probes"] = sample["probes"]
    if method is not None:
        body["method"] = method
    return body


def run(args) -> int:
    from tqdm import tqdm

    home: Path = args.home.resolve()
    body = update_body(load_update_sample(args.sample), args.method)

    print(f"disc demo: a fresh service in {home}")
    try:
        with EmbeddedService(home, args.model, port=args.port) as service:
            client = service.client
            print(f"API at {service.base_url} (logs: {home / 'api.log'}, {home / 'worker.log'})")
            response = client.post("/updates", json=body)
            if response.status_code != 202:
                print(f"POST /updates answered {response.status_code}: {response.text}", file=sys.stderr)
                return 1
            job = response.json()
            print(f"job {job['id']}: {len(body['documents'])} documents, {len(body.get('probes', []))} probes, "
                  f"lineage {job['lineage']!r}")
            job = follow(client, job["id"], service.children, args.timeout, tqdm)
            events = client.get(f"/jobs/{job['id']}/events").json()["data"]
            if job["status"] != "succeeded":
                error = job.get("error") or {}
                print(f"\nthe job ended {job['status']}: {error.get('code')}: {error.get('message')}",
                      file=sys.stderr)
                print(f"worker log ({home / 'worker.log'}):\n{service.worker.tail()}", file=sys.stderr)
                return 1
        print_trajectory(events)
        print_summary(job["result_version"], home, service.base_url)
        return 0
    except StartFailed as exc:
        print(exc, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted; stopping the worker and the API", file=sys.stderr)
        return 130


def follow(client, job_id: str, children: list[Child], timeout_s: float, tqdm) -> dict:
    """Poll GET /jobs/{id} until the job ends, drawing documents done/total."""
    bar = tqdm(total=1, unit="doc", desc="queued", dynamic_ncols=True,
               bar_format="{desc:<10} {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} documents [{elapsed}{postfix}]")
    deadline = time.monotonic() + timeout_s
    shown = None
    try:
        while True:
            job = client.get(f"/jobs/{job_id}").json()
            progress = job.get("progress") or {}
            total = progress.get("documents_total") or bar.total
            if bar.total != total:
                bar.total = total
            bar.n = min(progress.get("documents_done") or 0, total)
            bar.set_description(progress.get("stage") or job["status"], refresh=False)
            postfix = {}
            if progress.get("loss") is not None:
                postfix["loss"] = f"{progress['loss']:.3f}"
            if progress.get("eta_seconds") is not None and job["status"] == "running":
                postfix["eta"] = f"{progress['eta_seconds']:.0f}s"
            bar.set_postfix(postfix, refresh=False)
            state = (bar.n, bar.total, bar.desc, bar.postfix)
            if state != shown:  # redraw on news only: a log file gets one line per change
                bar.refresh()
                shown = state
            if job["status"] in ("succeeded", "failed", "cancelled"):
                return job
            worker = children[0]
            if not worker.alive():
                raise RuntimeError(f"the worker exited with status {worker.proc.returncode}:\n{worker.tail()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} did not finish within {timeout_s:.0f} s")
            time.sleep(1.0)
    finally:
        bar.close()


def print_trajectory(events: list[dict]) -> None:
    """The retention-budgeted epochs, as the worker recorded them (``epoch`` events)."""
    epochs = [e["data"] for e in events if e["kind"] == "epoch" and e.get("data")]
    if not epochs:
        return
    print("\nepoch by epoch (0 = the model before the update):")
    print(f"  {'epoch':>5}  {'KL to parent':>12}  {'gap closed':>10}  verdict")
    for point in epochs:
        verdict = "kept" if point["kept"] else ("over budget" if not point["within_budget"] else "no gain")
        print(f"  {point['epoch']:>5}  {point['retention_kl_vs_parent']:>12.4f}  {point['knowledge']:>10.2f}  "
              f"{verdict}")
    chosen = next((e for e in reversed(events) if e["kind"] == "epoch_selected"), None)
    if chosen:
        print(f"  {chosen['message']}")


def print_summary(version: dict, home: Path, base_url: str) -> None:
    from disc_cli.connection import scores_lines
    from store.storage import version_relpath

    scores = version["scores"]
    print(f"\nversion {version['version']} of {version['lineage']!r} ({version['method']}, base "
          f"{version['base_model']}): {version['state']}{', now latest' if version['is_latest'] else ''}")
    for line in scores_lines(scores):
        print(line)
    artifact = home / "artifacts" / version_relpath(version["lineage"], version["version"], version["job_id"])
    print(f"\nartifact: {artifact}  ({version['artifact_kind']}, sha256 {version['artifact_sha256'][:12]}…)")
    url = version["artifact_url"]
    print(f"download: {url if url.startswith('http') else base_url + url}")
