"""Epochs after the first without the teacher's forward: time per epoch and the loss, cached vs not.

Trains the paper's objective (``disc``, LoRA, k = 5) on the default model for 3 epochs over
documents of about ten sentences, once with the teacher's logits kept across epochs
(``teacher_cache_mb``, the default) and once without (``teacher_cache_mb=0``), in one process.
Prints each epoch's training time for both runs, the ratio of epoch 2 to epoch 1 in the cached
run (target: at most 0.7), and the largest relative difference of the per-step losses between
the two runs (target: below 1e-5).

    .venv/bin/python benchmarks/teacher_cache.py              # ~4 minutes on 2 cores
    .venv/bin/python benchmarks/teacher_cache.py --documents 4
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.knowledge_update.corpus import generate_corpus  # noqa: E402
from disc_engine.models import DEFAULT_MODEL  # noqa: E402
from disc_engine.options import TrainConfig  # noqa: E402
from disc_engine.trainer import train  # noqa: E402


def _run(documents: list[str], cache_mb: int, epochs: int, out: Path) -> tuple[list[float], list[float]]:
    epoch_seconds: list[float] = []
    started = [time.perf_counter()]

    def progress(p) -> None:
        if p.stage == "training" and p.documents_done % len(documents) == 0:
            now = time.perf_counter()
            epoch_seconds.append(now - started[0])
            started[0] = now

    def first_step(p) -> None:
        if p.stage == "preparing" and p.documents_done == p.documents_total:
            started[0] = time.perf_counter()  # epochs are timed from the end of preparation
        progress(p)

    result = train(documents, out_dir=str(out), base_model=DEFAULT_MODEL, progress=first_step,
                   config=TrainConfig(epochs=epochs, retention_budget_kl=None, teacher_cache_mb=cache_mb, seed=1))
    return epoch_seconds, result.losses


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--documents", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    documents = [d["text"] for d in generate_corpus(num_documents=args.documents, seed=11)]
    with tempfile.TemporaryDirectory(prefix="disc-teacher-cache-") as tmp:
        uncached_epochs, uncached_losses = _run(documents, 0, args.epochs, Path(tmp) / "uncached")
        cached_epochs, cached_losses = _run(documents, 2048, args.epochs, Path(tmp) / "cached")
    worst = max(abs(a - b) / max(abs(b), 1e-12) for a, b in zip(cached_losses, uncached_losses))
    tokens = sum(len(d.split()) for d in documents)
    print(f"{len(documents)} documents (~{tokens // len(documents)} words each), {args.epochs} epochs, "
          f"default model, LoRA, disc k=5")
    print(f"{'epoch':>5} {'uncached s':>11} {'cached s':>9}")
    for number, (u, c) in enumerate(zip(uncached_epochs, cached_epochs), start=1):
        print(f"{number:>5} {u:>11.1f} {c:>9.1f}")
    print(f"cached run: epoch 2 / epoch 1 = {cached_epochs[1] / cached_epochs[0]:.2f} "
          f"(uncached run: {uncached_epochs[1] / uncached_epochs[0]:.2f})")
    print(f"largest relative difference of a step's loss, cached vs uncached: {worst:.1e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
