"""Throughput of several documents per optimizer step (``documents_per_step``) against one.

Trains the same invented-news documents for one epoch (default model, LoRA, ``disc`` k = 5) with
1, 2 and 4 documents per step, one run after the other in this process, and prints documents
per second of training (preparation excluded) for each. On a CPU the padded batch mostly adds
padding; the option is for GPUs, where one larger batch uses the device better
(``benchmarks/gpu.sh`` runs this there).

    .venv/bin/python benchmarks/documents_per_step.py          # ~3 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.knowledge_update.corpus import generate_corpus  # noqa: E402
from disc_engine.models import DEFAULT_MODEL  # noqa: E402
from disc_engine.options import TrainConfig  # noqa: E402
from disc_engine.trainer import train  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--documents", type=int, default=16)
    parser.add_argument("--per-step", type=int, nargs="*", default=[1, 2, 4])
    parser.add_argument("--device", default=None)
    args = parser.parse_args()
    documents = [d["text"] for d in generate_corpus(num_documents=args.documents, seed=5)]
    rows = []
    with tempfile.TemporaryDirectory(prefix="disc-per-step-") as tmp:
        for per_step in args.per_step:
            result = train(documents, out_dir=f"{tmp}/n{per_step}", base_model=DEFAULT_MODEL, device=args.device,
                           config=TrainConfig(epochs=1, retention_budget_kl=None, documents_per_step=per_step))
            seconds = result.metrics["train_seconds"]
            rows.append((per_step, result.steps, seconds, len(documents) / seconds))
    print(f"{len(documents)} documents, 1 epoch, default model, LoRA, disc k=5")
    print(f"{'per step':>8} {'steps':>6} {'train s':>8} {'documents/s':>12} {'vs 1':>6}")
    for per_step, steps, seconds, rate in rows:
        print(f"{per_step:>8} {steps:>6} {seconds:>8.1f} {rate:>12.2f} {rate / rows[0][3]:>5.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
