"""One large update against the same documents as a chain of smaller ones.

What a document teaches falls with the number of documents trained beside it
(docs/results/knowledge_update.md). A lineage is trained day by day anyway: this measures the
same documents posted as ``--chunks`` consecutive updates, version n trained from version n−1 (its
teacher), each with the product's defaults (retention budget included), and scores every
probe of the whole corpus after each version — so what a later update does to an earlier one's
facts is visible too.

    python -m benchmarks.knowledge_update.chunked --split report --documents 36 --chunks 3 \\
        --out docs/results/chunked_report36.jsonl

Prints one line per version and appends JSON lines (per-item results, for paired intervals).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from benchmarks.knowledge_update.frontier import (
    append_json_lines,
    bootstrap_interval,
    cloze_items,
    paired_gain_interval,
    probe_items,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--split", choices=("tuning", "report"), default="report")
    parser.add_argument("--documents", type=int, default=36, help="documents in all, over the split's seeds")
    parser.add_argument("--chunks", type=int, default=3, help="consecutive updates the documents are posted as")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)

    from benchmarks.knowledge_update.corpus import held_out_corpora
    from disc_engine.artifacts import load_artifact
    from disc_engine.evaluation.epoch_check import EpochCheck
    from disc_engine.models import DEFAULT_MODEL, load_model, load_tokenizer
    from disc_engine.options import TrainConfig
    from disc_engine.trainer import train

    tokenizer = load_tokenizer(DEFAULT_MODEL)
    documents, probes, clozes, owner = [], [], [], []
    for corpus in held_out_corpora(args.split, args.documents).values():
        for doc in corpus:
            documents.append(doc["text"])
            for p in doc["probes"]:
                if p.get("kind", "question") == "question":
                    probes.append({k: p[k] for k in ("question", "options", "answer")})
                    owner.append(len(documents) - 1)
                else:
                    clozes.append(p)
    size = -(-len(documents) // args.chunks)
    chunks = [list(range(start, min(start + size, len(documents)))) for start in range(0, len(documents), size)]
    print(f"{len(documents)} documents as {len(chunks)} updates of {size}; {len(probes)} questions, "
          f"{len(clozes)} clozes", flush=True)

    # KL to the base on the base's own replies: the check caches the first model's replies.
    drift = EpochCheck(tokenizer, documents)
    base = load_model(DEFAULT_MODEL).eval()
    drift(base)
    zero_correct, _ = probe_items(base, tokenizer, probes)
    zero_cloze, _ = cloze_items(base, tokenizer, clozes)
    del base
    rows = []
    parent = None
    with tempfile.TemporaryDirectory() as folder:
        for number, chunk in enumerate(chunks, start=1):
            started = time.perf_counter()
            result = train([documents[i] for i in chunk], out_dir=str(Path(folder) / f"v{number}"),
                           parent=parent, base_model=DEFAULT_MODEL, config=TrainConfig(seed=number))
            parent = str(result.artifact_dir)
            model = load_artifact(parent, merged=True)
            correct, _ = probe_items(model, tokenizer, probes)
            cloze_correct, _ = cloze_items(model, tokenizer, clozes)
            selection = result.metrics.get("epoch_selection", {})
            row = {"version": number, "documents": chunk, "seconds": round(time.perf_counter() - started),
                   "best_epoch": selection.get("best_epoch"),
                   "retention_kl_vs_base": drift(model)["retention_kl_vs_parent"],
                   "accuracy": sum(correct) / len(correct), "gain_ci": paired_gain_interval(correct, zero_correct),
                   "gain": (sum(correct) - sum(zero_correct)) / len(correct),
                   "cloze_gain": (sum(cloze_correct) - sum(zero_cloze)) / len(cloze_correct),
                   "correct": correct, "zero_correct": zero_correct, "owner": owner}
            for seen in range(1, number + 1):
                items = [i for i, d in enumerate(owner) if d in chunks[seen - 1]]
                gains = [correct[i] - zero_correct[i] for i in items]
                row[f"gain_on_update_{seen}"] = (sum(gains) / len(gains), bootstrap_interval(gains))
            rows.append(row)
            print(f"v{number}: kept epoch {row['best_epoch']}, KL to base {row['retention_kl_vs_base']:.3f}, "
                  f"all questions {100 * row['accuracy']:.1f}% ({100 * row['gain']:+.1f} "
                  f"[{100 * row['gain_ci'][0]:+.1f}, {100 * row['gain_ci'][1]:+.1f}]), clozes "
                  f"{100 * row['cloze_gain']:+.1f}; per update's questions: "
                  + ", ".join(f"{seen}: {100 * row[f'gain_on_update_{seen}'][0]:+.1f} "
                              f"[{100 * row[f'gain_on_update_{seen}'][1][0]:+.1f}, "
                              f"{100 * row[f'gain_on_update_{seen}'][1][1]:+.1f}]"
                              for seen in range(1, number + 1))
                  + f"; {row['seconds']} s", flush=True)
    if args.out:
        append_json_lines(args.out, rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
