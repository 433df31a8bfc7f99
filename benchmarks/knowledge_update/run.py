"""The experiment: one corpus, every (parameterization, method, learning rate), scored alike."""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from disc_engine.objectives import METHODS  # torch-free; every registered objective

PARAMETERIZATIONS = ("lora", "full")

# LoRA moves few weights and needs rates one to two orders of magnitude above full fine-tuning
# for a comparable change (the paper's full fine-tuning rates of 1e-6..1.5e-5 are for 3-8B models;
# a 135M model tolerates larger ones).
FULL_GRID = {"documents": 60, "epochs": 2, "lora_lrs": [1e-4, 3e-4, 1e-3, 3e-3],
             "full_lrs": [1e-5, 3e-5, 1e-4, 3e-4], "eval_items": None}
QUICK_GRID = {"documents": 8, "epochs": 2, "lora_lrs": [5e-4, 5e-3],
              "full_lrs": [5e-5, 5e-4], "eval_items": 8}


@dataclass
class Settings:
    model: str
    documents: int
    epochs: int
    num_splits: int | str
    seed: int
    methods: list[str]
    parameterizations: list[str]
    lora_lrs: list[float]
    full_lrs: list[float]
    compliance: bool = True
    quick: bool = False
    # At most this many items of each retention set (chat prompts, general questions,
    # instructions), evenly spread; None: all of them.
    eval_items: int | None = None
    device: str = "cpu"

    def runs(self) -> list[tuple[str, str, float]]:
        # Learning rate outside, method inside: an interrupted grid still compares the methods
        # at every rate it reached.
        grid = []
        for parameterization in self.parameterizations:
            rates = self.lora_lrs if parameterization == "lora" else self.full_lrs
            for lr in rates:
                grid.extend((parameterization, method, lr) for method in self.methods)
        return grid


@dataclass
class Measurement:
    probe_accuracy: float
    retention_kl_vs_base: float
    general_mc_accuracy: float | None
    format_compliance: float | None
    eval_seconds: float = 0.0


@dataclass
class RunResult:
    parameterization: str
    method: str
    learning_rate: float
    probe_accuracy_before: float
    probe_accuracy_after: float | None = None
    probe_accuracy_gain: float | None = None
    retention_kl_vs_base: float | None = None
    general_mc_accuracy: float | None = None
    format_compliance: float | None = None
    train_seconds: float | None = None
    eval_seconds: float | None = None
    steps: int | None = None
    final_loss: float | None = None
    documents_skipped: int | None = None
    error: str | None = None


class Evaluator:
    """Scores models against the base, with the base's side computed once.

    The base's chat replies (the retention reference) and the general questions it answers
    correctly do not depend on the run, so they are computed here once instead of per run.
    """

    def __init__(self, base, tokenizer, probes: list[dict], *, compliance: bool, items: int | None):
        from disc_engine.evaluation import base_correct_questions, reference_responses
        from disc_engine.evaluation.compliance import load_instructions
        from disc_engine.evaluation.retention import load_chat_prompts, load_general_mc

        self.base, self.tokenizer, self.probes = base, tokenizer, probes
        self.prompts = _spread(load_chat_prompts(), items)
        self.instructions = _spread(load_instructions(), items) if compliance else []
        self.replies = reference_responses(base, tokenizer, prompts=self.prompts)
        self.general = base_correct_questions(base, tokenizer, questions=_spread(load_general_mc(), items))

    def measure(self, model) -> Measurement:
        from disc_engine.evaluation import format_compliance, probe_accuracy, retention_kl

        started = time.perf_counter()
        result = Measurement(
            probe_accuracy=probe_accuracy(model, self.tokenizer, self.probes),
            retention_kl_vs_base=retention_kl(model, self.base, self.tokenizer, prompts=self.prompts,
                                              responses=self.replies),
            # Accuracy on the questions the base gets right: the base scores 1.0 by construction.
            general_mc_accuracy=probe_accuracy(model, self.tokenizer, self.general) if self.general else None,
            format_compliance=(format_compliance(model, self.tokenizer, instructions=self.instructions)
                               if self.instructions else None),
        )
        result.eval_seconds = round(time.perf_counter() - started, 2)
        return result


def _spread(items: list, limit: int | None) -> list:
    """At most ``limit`` items, evenly spaced, so that a subset keeps every kind of item."""
    if limit is None or len(items) <= limit:
        return list(items)
    return [items[i * len(items) // limit] for i in range(limit)]


def run_grid(settings: Settings, out: Path, log=print) -> dict:
    import torch

    from disc_engine.artifacts import load_artifact
    from disc_engine.models import load_model, load_tokenizer, resolve_model_path
    from disc_engine.trainer import TrainConfig, train

    from .corpus import corpus_probes, generate_corpus

    started = time.perf_counter()
    corpus = generate_corpus(settings.documents, settings.seed)
    documents = [doc["text"] for doc in corpus]
    probes = [{"question": p["question"], "options": p["options"], "answer": p["answer"]}
              for p in corpus_probes(corpus, "question")]
    resolve_model_path(settings.model)
    tokenizer = load_tokenizer(settings.model)
    base = load_model(settings.model, device=settings.device)
    evaluator = Evaluator(base, tokenizer, probes, compliance=settings.compliance, items=settings.eval_items)
    with torch.inference_mode():
        baseline = evaluator.measure(base)
    log(f"base {settings.model}: probe accuracy {baseline.probe_accuracy:.3f} on {len(probes)} probes "
        f"(chance 0.25), format compliance {_fmt(baseline.format_compliance)}, "
        f"{len(evaluator.general)} general questions answered by the base")

    results: list[RunResult] = []
    grid = settings.runs()
    with tempfile.TemporaryDirectory(prefix="knowledge-update-") as scratch:
        for number, (parameterization, method, lr) in enumerate(grid, 1):
            result = RunResult(parameterization, method, lr, probe_accuracy_before=baseline.probe_accuracy)
            artifact_dir = Path(scratch) / f"run-{number}"
            try:
                config = TrainConfig(method=method, learning_rate=lr, epochs=settings.epochs,
                                     num_splits=settings.num_splits, seed=settings.seed,
                                     full_finetune=parameterization == "full",
                                     retention_budget_kl=None)  # a grid point: every epoch, as asked
                trained = train(documents, out_dir=str(artifact_dir), config=config,
                                base_model=settings.model, device=settings.device)
                model = load_artifact(trained.artifact_dir, base_model=settings.model, device=settings.device)
                with torch.inference_mode():
                    scores = evaluator.measure(model)
                del model
                result.probe_accuracy_after = scores.probe_accuracy
                result.probe_accuracy_gain = scores.probe_accuracy - baseline.probe_accuracy
                result.retention_kl_vs_base = scores.retention_kl_vs_base
                result.general_mc_accuracy = scores.general_mc_accuracy
                result.format_compliance = scores.format_compliance
                result.eval_seconds = scores.eval_seconds
                result.train_seconds = round(trained.metrics["train_seconds"], 2)
                result.steps = trained.steps
                result.final_loss = trained.metrics["final_loss"]
                result.documents_skipped = len(trained.report.documents_skipped)
            except Exception as exc:  # one diverging configuration must not lose the others
                result.error = f"{type(exc).__name__}: {exc}"
            finally:
                # Full fine-tuning artifacts are whole checkpoints; keep one at a time on disk.
                shutil.rmtree(artifact_dir, ignore_errors=True)
            results.append(result)
            log(_progress_line(number, len(grid), result))
            # The record so far, so that an interrupted grid keeps what it measured.
            _write_json(_record(settings, corpus, probes, baseline, results, started, partial=True), out)

    record = _record(settings, corpus, probes, baseline, results, started, partial=False)
    write_outputs(record, out)
    return record


def _record(settings: Settings, corpus: list[dict], probes: list[dict], baseline: Measurement,
            results: list[RunResult], started: float, *, partial: bool) -> dict:
    import torch

    return {
        "title": "Knowledge update vs. capability retention",
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "settings": asdict(settings),
        "corpus": {"documents": len(corpus), "probes": len(probes),
                   "sentences": sum(len(doc["sentences"]) for doc in corpus), "seed": settings.seed},
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "torch_threads": torch.get_num_threads(), "torch": torch.__version__},
        "base": asdict(baseline),
        "runs": [asdict(r) for r in results],
        "wall_seconds": round(time.perf_counter() - started, 1),
        "partial": partial,
    }


def _write_json(record: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    staging = out / ".knowledge_update.json.tmp"
    staging.write_text(json.dumps(record, indent=2) + "\n")
    os.replace(staging, out / "knowledge_update.json")


_SHARED_SETTINGS = ("model", "documents", "epochs", "num_splits", "seed", "compliance", "eval_items")


def merge_records(records: list[dict]) -> dict:
    """One record from parts of a grid run separately (e.g. LoRA and full fine-tuning in two
    processes): same model, corpus and evaluation, different runs."""
    if not records:
        raise ValueError("nothing to merge")
    first = records[0]
    for other in records[1:]:
        differing = [key for key in _SHARED_SETTINGS if other["settings"][key] != first["settings"][key]]
        if other["corpus"] != first["corpus"]:
            differing.append("corpus")
        if differing:
            raise ValueError(f"cannot merge runs that differ in {', '.join(differing)}")
        if abs(other["base"]["probe_accuracy"] - first["base"]["probe_accuracy"]) > 1e-9:
            raise ValueError("cannot merge: the base model scored differently on the same probes")
    runs = [run for record in records for run in record["runs"]]
    keys = [(r["parameterization"], r["method"], r["learning_rate"]) for r in runs]
    if len(set(keys)) != len(keys):
        raise ValueError("cannot merge: the same (parameterization, method, learning rate) ran twice")
    settings = dict(first["settings"])
    for key in ("methods", "parameterizations"):
        settings[key] = list(dict.fromkeys(v for record in records for v in record["settings"][key]))
    for key in ("lora_lrs", "full_lrs"):
        settings[key] = sorted({v for record in records for v in record["settings"][key]})
    return {**first, "settings": settings, "runs": runs,
            "created": max(record["created"] for record in records),
            # The parts ran side by side; the longest is the wall time of the whole.
            "wall_seconds": max(record["wall_seconds"] for record in records),
            "partial": any(record.get("partial", False) for record in records),
            "parts": [{"parameterizations": r["settings"]["parameterizations"],
                       "methods": r["settings"]["methods"], "wall_seconds": r["wall_seconds"]}
                      for r in records]}


def write_outputs(record: dict, out: Path) -> None:
    from benchmarks.knowledge_update.plot import plot_figure
    from benchmarks.knowledge_update.report import write_markdown

    _write_json(record, out)
    plot_figure(record, out / "knowledge_update.png")
    write_markdown(record, out / "knowledge_update.md")


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _progress_line(number: int, total: int, r: RunResult) -> str:
    head = f"[{number}/{total}] {r.parameterization:4s} {r.method:6s} lr={r.learning_rate:g}"
    if r.error:
        return f"{head}: FAILED {r.error}"
    return (f"{head}: probes {r.probe_accuracy_before:.3f} -> {r.probe_accuracy_after:.3f}, "
            f"format {_fmt(r.format_compliance)}, general {_fmt(r.general_mc_accuracy)}, "
            f"KL {r.retention_kl_vs_base:.4f}, train {r.train_seconds:.0f}s, eval {r.eval_seconds:.0f}s")


def _rates(text: str) -> list[float]:
    try:
        rates = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"learning rates must be comma-separated numbers, got {text!r}") from None
    if not rates or any(not 0 < r <= 1 for r in rates):
        raise argparse.ArgumentTypeError(f"learning rates must be in (0, 1], got {text!r}")
    return rates


def _choices(allowed: tuple[str, ...]):
    def parse(text: str) -> list[str]:
        chosen = [part.strip() for part in text.split(",") if part.strip()]
        unknown = [c for c in chosen if c not in allowed]
        if not chosen or unknown:
            raise argparse.ArgumentTypeError(f"choose from {', '.join(allowed)}; got {text!r}")
        return chosen
    return parse


def _splits(text: str) -> int | str:
    if text == "all":
        return text
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--splits takes a positive integer or 'all', got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"--splits takes a positive integer or 'all', got {text!r}") from None
    return value


def parse_args(argv: list[str] | None = None) -> tuple[Settings | list[Path], Path]:
    """The experiment's settings (or, with --merge, the records to combine), and the output
    folder (not part of the record)."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.knowledge_update",
        description="Probe accuracy gained vs. capabilities kept, for DiSC and fine-tuning, "
                    "LoRA and full, across learning rates.")
    parser.add_argument("--quick", action="store_true",
                        help=f"a smaller grid for a few minutes on CPU: {QUICK_GRID}")
    parser.add_argument("--model", help="model name or path (default: the product's default model)")
    parser.add_argument("--out", type=Path, default=Path("docs/results"), help="output folder")
    parser.add_argument("--documents", type=int, help="number of corpus documents")
    parser.add_argument("--epochs", type=int, help="passes over the documents")
    parser.add_argument("--splits", type=_splits, default=5, help="DiSC splits per document (k), or 'all'")
    parser.add_argument("--seed", type=int, default=0, help="corpus and training seed")
    parser.add_argument("--lrs", type=_rates, help="LoRA learning rates, comma-separated")
    parser.add_argument("--full-lrs", type=_rates, help="full fine-tuning learning rates, comma-separated")
    parser.add_argument("--methods", type=_choices(METHODS), default=list(METHODS),
                        help="comma-separated subset of %(default)s")
    parser.add_argument("--parameterizations", type=_choices(PARAMETERIZATIONS),
                        default=list(PARAMETERIZATIONS), help="comma-separated subset of %(default)s")
    parser.add_argument("--eval-items", type=int,
                        help="at most this many chat prompts, general questions and instructions "
                             "(default: all; --quick: 10)")
    parser.add_argument("--device", help="torch device (default: cuda when available, else cpu)")
    parser.add_argument("--no-compliance", action="store_true",
                        help="skip format compliance (the one measure that generates text)")
    parser.add_argument("--merge", nargs="+", type=Path, metavar="JSON",
                        help="run nothing: combine the records of runs made separately (e.g. "
                             "--parameterizations lora and full in parallel) and write the outputs")
    args = parser.parse_args(argv)
    if args.merge:
        return args.merge, args.out
    # Imported only once the arguments are known good: torch and transformers take seconds.
    import torch

    from disc_engine.models import DEFAULT_MODEL

    grid = QUICK_GRID if args.quick else FULL_GRID
    chosen = {key: getattr(args, key) if getattr(args, key) is not None else grid[key]
              for key in ("documents", "epochs", "eval_items")}
    for key, value in chosen.items():
        if value is not None and value < 1:
            parser.error(f"--{key.replace('_', '-')} must be at least 1, got {value}")
    settings = Settings(
        model=args.model or DEFAULT_MODEL, documents=chosen["documents"], epochs=chosen["epochs"],
        num_splits=args.splits, seed=args.seed, methods=args.methods,
        parameterizations=args.parameterizations, lora_lrs=args.lrs or grid["lora_lrs"],
        full_lrs=args.full_lrs or grid["full_lrs"], compliance=not args.no_compliance,
        quick=args.quick, eval_items=chosen["eval_items"],
        device=args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    return settings, args.out


def main(argv: list[str] | None = None) -> int:
    started = time.perf_counter()
    settings, out = parse_args(argv)
    if isinstance(settings, list):
        try:
            record = merge_records([json.loads(path.read_text()) for path in settings])
        except (OSError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        write_outputs(record, out)
        print(f"merged {len(record['runs'])} runs from {len(settings)} records into {out}")
        return 0
    print(f"knowledge update benchmark: {len(settings.runs())} runs on {settings.model}, "
          f"{settings.documents} documents, {settings.epochs} epoch(s)", flush=True)
    record = run_grid(settings, out, log=lambda line: print(line, flush=True))
    failed = sum(1 for r in record["runs"] if r["error"])
    print(f"total wall time {time.perf_counter() - started:.1f} s; outputs in {out}"
          + (f"; {failed} run(s) failed" if failed else ""))
    return 1 if failed else 0
