"""What evaluation costs next to training: the `make demo` update on the default model.

Trains the bundled sample update (``disc_engine/data/sample_update.json``) with the product's
defaults (retention-budgeted epochs), then scores the new version as the worker does
(``worker/evaluation.py``: adapters merged into private copies of the base, reference answers
cached by artifact checksum). Prints, in one run:

* training time (wall clock of ``train``), the epochs checked, and each epoch check's time
  next to the mean time of one training epoch;
* evaluation time with the base's reference answers already cached (warm: every version after
  a lineage's first), with an empty cache (cold), and warm with the adapters left unmerged
  (the path before merging), each as a ratio to the training time;
* the same for a second version trained from the first (a chain's steady state: the parent's
  own reference replies are not cached yet);
* the peak resident memory of the process, which did what a worker does for these two jobs.

    .venv/bin/python benchmarks/evaluation_speed.py            # ~6 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from disc_engine.artifacts import load_artifact, read_meta  # noqa: E402
from disc_engine.evaluation import evaluate_update  # noqa: E402
from disc_engine.models import DEFAULT_MODEL, load_model, load_tokenizer  # noqa: E402
from disc_engine.options import TrainConfig  # noqa: E402
from disc_engine.trainer import train  # noqa: E402
from store.storage import directory_sha256  # noqa: E402

SAMPLE = Path(__file__).resolve().parents[1] / "disc_engine" / "data" / "sample_update.json"


def _train(documents, out: Path, parent: Path | None) -> dict:
    started = time.perf_counter()
    result = train(documents, out_dir=str(out), config=TrainConfig(), base_model=DEFAULT_MODEL,
                   parent=str(parent) if parent else None)
    seconds = time.perf_counter() - started
    selection = result.metrics.get("epoch_selection") or {}
    trajectory = selection.get("trajectory", [])
    epochs_trained = max((p["epoch"] for p in trajectory), default=1)
    return {"seconds": seconds, "epochs_trained": epochs_trained,
            "epoch_seconds": result.metrics["train_seconds"] / max(epochs_trained, 1),
            "check_seconds": [p.get("check_seconds") for p in trajectory]}


def _evaluate(artifact: Path, parent: Path | None, base, tokenizer, documents, probes, cache: Path,
              merged: bool, new_key: str | None = None) -> float:
    new_model = load_artifact(artifact, base_model=DEFAULT_MODEL, merged=merged)
    parent_model = load_artifact(parent, base_model=DEFAULT_MODEL, merged=merged) if parent else base
    base_key = f"base:{read_meta(artifact)['base_model_checksum']}"
    started = time.perf_counter()
    evaluate_update(new_model=new_model, parent_model=parent_model, base_model=base, tokenizer=tokenizer,
                    documents=documents, probes=probes, cache_dir=str(cache), seed=0,
                    new_key=new_key or f"artifact:{directory_sha256(artifact)}",
                    parent_key=f"artifact:{directory_sha256(parent)}" if parent else base_key, base_key=base_key)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    sample = json.loads(SAMPLE.read_text())
    documents = [d if isinstance(d, str) else d["text"] for d in sample["documents"]]
    probes = sample["probes"]
    tokenizer = load_tokenizer(DEFAULT_MODEL)
    base = load_model(DEFAULT_MODEL).requires_grad_(False)
    rows = {}
    with tempfile.TemporaryDirectory(prefix="disc-eval-speed-") as tmp:
        root = Path(tmp)
        first, second = root / "v1", root / "v2"
        trained = {"v1": _train(documents, first, None)}
        rows["v1, cold cache"] = _evaluate(first, None, base, tokenizer, documents, probes, root / "cold", True)
        # Warm: the cache already holds the base's answers (another version of a lineage on this
        # base was scored before), not this version's.
        warm = root / "warm"
        _evaluate(first, None, base, tokenizer, documents, probes, warm, True, new_key="artifact:another")
        rows["v1, warm cache, adapters unmerged"] = _evaluate(first, None, base, tokenizer, documents, probes,
                                                              warm, False, new_key="artifact:unmerged")
        rows["v1, warm cache"] = _evaluate(first, None, base, tokenizer, documents, probes, warm, True)
        trained["v2"] = _train(documents, second, first)
        # A chain's next step: the parent (v1) was scored as a new version into this cache.
        rows["v2 (parent v1), warm cache"] = _evaluate(second, first, base, tokenizer, documents, probes, warm,
                                                       True)
    if args.json:
        print(json.dumps({"trained": trained, "evaluation_seconds": rows}, indent=1))
        return 0
    for name, t in trained.items():
        checks = ", ".join(f"{c:.1f}" for c in t["check_seconds"] if c is not None)
        print(f"{name}: trained in {t['seconds']:.1f} s ({t['epochs_trained']} epochs, "
              f"{t['epoch_seconds']:.1f} s of training each); epoch checks {checks} s "
              f"= {max(c for c in t['check_seconds'] if c is not None) / t['epoch_seconds']:.0%} of an epoch at most")
    for name, seconds in rows.items():
        version = "v2" if name.startswith("v2") else "v1"
        print(f"evaluation, {name:<36} {seconds:6.1f} s = {seconds / trained[version]['seconds']:.2f}x its training")
    # This process did what a worker does for these jobs (base, parent and new model, training).
    print(f"peak RSS of the process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
