"""What scale-out costs: artifact transfers, the worker's cache along a chain, warm vs cold workers.

Prints, against a real S3 HTTP server (moto's, started here; a production store's absolute
speeds differ, the ratios are what to read) and the local folder store:

* publish and fetch time of the default model's LoRA adapter (r=16, all linear layers, with
  its meta) and of a 500 MB full checkpoint, through ``store.artifact_store`` (boto3), and the
  raw put/get of the same bytes through obstore, the other client considered;
* the local cache's hit rate for parent fetches along a chain of versions, when every job runs
  on one host and when jobs alternate between two hosts (publishing seeds the publisher's cache);
* the time from a job's start to its first trained document, with the base read from disk
  (cold: a fresh worker) and with it kept in memory (warm: ``keep_bases_loaded``), on the
  default model.

    .venv/bin/python benchmarks/scaling.py            # ~3 minutes on 2 cores
    .venv/bin/python benchmarks/scaling.py --checkpoint-mb 100 --repeats 2
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from store.settings import Settings  # noqa: E402
from tests.s3server import S3TestServer  # noqa: E402


def _timed(function, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _adapter_dir(root: Path) -> Path:
    """A real LoRA adapter of the default model, as the trainer saves it."""
    from disc_engine import adapters
    from disc_engine.models import DEFAULT_MODEL, load_model

    model = adapters.new_lora_model(load_model(DEFAULT_MODEL), r=16, alpha=32, dropout=0.0)
    model.save_pretrained(root, save_embedding_layers=False)
    (root / "meta.json").write_text('{"kind": "lora"}')
    return root


def _checkpoint_dir(root: Path, megabytes: int) -> Path:
    root.mkdir(parents=True)
    half = megabytes * 1024 * 1024 // 2
    for name in ("model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"):
        with open(root / name, "wb") as handle:
            for _ in range(half // (1 << 20)):
                handle.write(os.urandom(1 << 20))
    (root / "meta.json").write_text('{"kind": "full"}')
    return root


def _size_mb(root: Path) -> float:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) / 1e6


def transfers(server: S3TestServer, scratch: Path, checkpoint_mb: int, repeats: int) -> list[dict]:
    from store.artifact_store import LocalArtifactStore
    from store.s3_store import S3ArtifactStore

    bucket = f"bench-{uuid.uuid4().hex[:8]}"
    server.client().create_bucket(Bucket=bucket)
    rows = []
    for label, source in (("default-model LoRA adapter", _adapter_dir(scratch / "adapter")),
                          (f"{checkpoint_mb} MB full checkpoint", _checkpoint_dir(scratch / "full", checkpoint_mb))):
        for backend in ("s3 (boto3)", "local folder"):
            if backend.startswith("s3"):
                store = S3ArtifactStore(bucket=bucket, prefix="bench", settings=Settings(
                    home=scratch / "home", cache_dir=scratch / f"cache-{uuid.uuid4().hex[:6]}"))
            else:
                store = LocalArtifactStore(scratch / "local-store")
            publish, fetch = _publish_and_fetch(store, source, scratch, repeats)
            rows.append({"artifact": label, "client": backend, "mb": _size_mb(source),
                         "publish_s": publish, "fetch_s": fetch})
        rows.append(_obstore_row(server, bucket, label, source, repeats))
    return rows


def _publish_and_fetch(store, source: Path, scratch: Path, repeats: int) -> tuple[float, float]:
    key = f"bench/{source.name}"
    publish = _timed(lambda: store.publish(source, key, download_name=None), repeats)
    # Each fetch into a new folder: a fetch into the shared cache would be a hit after the first.
    fetch = _timed(lambda: store.fetch(key, into=scratch / f"fetched-{uuid.uuid4().hex}"), repeats)
    return publish, fetch


def _obstore_row(server: S3TestServer, bucket: str, label: str, source: Path, repeats: int) -> dict:
    import obstore
    from obstore.store import S3Store

    store = S3Store(bucket, endpoint=server.endpoint, region="us-east-1", access_key_id="disc-test",
                    secret_access_key="disc-test-secret", client_options={"allow_http": True})
    files = [p for p in sorted(source.rglob("*")) if p.is_file()]

    def put() -> None:
        for path in files:
            obstore.put(store, f"obstore/{path.relative_to(source)}", path.read_bytes())

    def get() -> None:
        for path in files:
            obstore.get(store, f"obstore/{path.relative_to(source)}").bytes()

    return {"artifact": label, "client": "s3 (obstore, raw put/get)", "mb": _size_mb(source),
            "publish_s": _timed(put, repeats), "fetch_s": _timed(get, repeats)}


def chain_hit_rates(server: S3TestServer, scratch: Path, versions: int) -> dict[str, float]:
    """Parent fetches along a chain: version n is trained from version n-1, fetched on its host."""
    from store.s3_store import S3ArtifactStore

    bucket = f"chain-{uuid.uuid4().hex[:8]}"
    server.client().create_bucket(Bucket=bucket)
    rates = {}
    for layout, hosts_of in (("one host", lambda n: "a"), ("two hosts, alternating", lambda n: "ab"[n % 2])):
        stores = {h: S3ArtifactStore(bucket=bucket, prefix=layout.replace(" ", "-").replace(",", ""),
                                     settings=Settings(home=scratch / "home", cache_dir=scratch / f"{layout}-{h}"))
                  for h in "ab"}
        parent = None
        for number in range(1, versions + 1):
            store = stores[hosts_of(number)]
            if parent is not None:
                store.fetch(parent[0], expected_sha256=parent[1]).release()
            directory = scratch / f"{layout}-v{number}"
            directory.mkdir()
            (directory / "adapter_model.safetensors").write_bytes(os.urandom(1 << 20))
            key = f"chain/v{number}"
            parent = (key, store.publish(directory, key, download_name=f"chain-v{number}").directory_sha256)
        hits = sum(s.cache.stats.hits for s in stores.values())
        misses = sum(s.cache.stats.misses for s in stores.values())
        rates[layout] = hits / (hits + misses)
    return rates


def time_to_first_step(scratch: Path, repeats: int) -> dict[str, float]:
    from disc_engine import models
    from disc_engine.options import TrainConfig
    from disc_engine.trainer import train

    documents = [f"Document {i}. The lighthouse of Varn{i} was painted red in spring. Its keeper logs the "
                 f"ships. The harbour of Varn{i} holds forty boats." for i in range(2)]

    def one_run(tag: str) -> float:
        start = time.perf_counter()
        first: list[float] = []

        def progress(p) -> None:
            if p.stage == "training" and p.documents_done >= 1 and not first:
                first.append(time.perf_counter() - start)

        train(documents, out_dir=str(scratch / f"ttfs-{tag}-{uuid.uuid4().hex[:6]}"),
              config=TrainConfig(retention_budget_kl=None, epochs=1), base_model=models.DEFAULT_MODEL,
              progress=progress)
        return first[0]

    models.load_model(models.DEFAULT_MODEL)  # the one-time GGUF conversion is not a worker start
    cold, warm = [], []
    for index in range(repeats):
        models.keep_bases_loaded(False)
        models._checksums.clear()   # a fresh process has hashed nothing yet
        cold.append(one_run(f"cold{index}"))
        models.keep_bases_loaded(True)
        one_run(f"fill{index}")      # the worker's first job loads the base once
        warm.append(one_run(f"warm{index}"))
    models.keep_bases_loaded(False)
    return {"cold_s": statistics.median(cold), "warm_s": statistics.median(warm)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint-mb", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--chain", type=int, default=8, help="versions in the simulated chain")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="disc-scaling-") as tmp:
        scratch = Path(tmp)
        server = S3TestServer(scratch / "s3")
        server.start()
        for name, value in server.environment().items():
            os.environ[name] = value
        try:
            rows = transfers(server, scratch, args.checkpoint_mb, args.repeats)
            rates = chain_hit_rates(server, scratch, args.chain)
        finally:
            server.destroy()
        first_step = time_to_first_step(scratch, args.repeats)
    print(f"{'artifact':<28} {'client':<28} {'MB':>7} {'publish s':>10} {'fetch s':>8} {'MB/s up':>8} {'MB/s down':>9}")
    for row in rows:
        print(f"{row['artifact']:<28} {row['client']:<28} {row['mb']:>7.1f} {row['publish_s']:>10.3f} "
              f"{row['fetch_s']:>8.3f} {row['mb'] / row['publish_s']:>8.1f} {row['mb'] / row['fetch_s']:>9.1f}")
    print(f"\nparent fetches served by the local cache along a {args.chain}-version chain:")
    for layout, rate in rates.items():
        print(f"  {layout:<24} {rate:.0%}")
    print(f"\njob start to first trained document, default model (median of {args.repeats}):")
    print(f"  cold (base read from disk)  {first_step['cold_s']:.2f} s")
    print(f"  warm (base kept in memory)  {first_step['warm_s']:.2f} s  "
          f"({first_step['warm_s'] / first_step['cold_s']:.2f}x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
