"""`disc train`: train one model version from a JSONL file of documents, without the service."""

from __future__ import annotations

import argparse
import json
import signal
import sys


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "train", help="train a model version on documents (JSONL, one {\"text\": ...} per line)",
        description="Train a LoRA adapter (default) or a full checkpoint on documents and write "
                    "the artifact directory.")
    parser.add_argument("--docs", required=True, metavar="FILE.jsonl",
                        help="one JSON object per line with a non-empty \"text\" field; the API's limits "
                             "apply: at most DISC_MAX_DOCUMENTS_PER_BATCH documents (default 1000) of at most "
                             "DISC_MAX_DOCUMENT_CHARS characters each (default 200000)")
    parser.add_argument("--out", required=True, metavar="DIR", help="artifact directory to create")
    from disc_engine.objectives import DEFAULT_METHOD, OBJECTIVES  # torch-free

    parser.add_argument("--method", default=DEFAULT_METHOD, choices=tuple(OBJECTIVES),
                        help=f"training objective (default: {DEFAULT_METHOD}): " + "; ".join(
                            f"{o.name}: {o.description}" for o in OBJECTIVES.values()))
    parser.add_argument("--base", default=None, metavar="MODEL",
                        help="base model: a Hugging Face id, a local path, or a product model name "
                             "(default: the parent's base, else SmolLM2-135M-Instruct)")
    parser.add_argument("--parent", default=None, metavar="ARTIFACT_DIR",
                        help="continue from a previous version's artifact (it is also the teacher)")
    parser.add_argument("--lr", type=float, default=None, help="learning rate (constant)")
    parser.add_argument("--epochs", type=int, default=None, help="passes over the documents")
    parser.add_argument("--num-splits", type=_num_splits, default=None, metavar="K|all",
                        help="DiSC split points per document")
    parser.add_argument("--retention-budget", type=float, default=None, metavar="KL",
                        help=_option_help("retention_budget_kl"))
    parser.add_argument("--retention-format-drop", type=float, default=None, metavar="SHARE",
                        help=_option_help("retention_budget_format_drop"))
    parser.add_argument("--replay-weight", type=float, default=None, metavar="W",
                        help=_option_help("replay_weight"))
    parser.add_argument("--full", action="store_true", help="full fine-tuning instead of LoRA")
    parser.add_argument("--seed", type=int, default=None, help="random seed")
    parser.add_argument("--checkpoint-dir", default=None, metavar="DIR",
                        help="write resumable checkpoints here; resume from one found here")
    parser.add_argument("--device", default=None, help="torch device (default: cuda if available)")
    parser.set_defaults(func=run)


def _option_help(name: str) -> str:
    from disc_engine.options import TrainConfig  # torch-free

    return TrainConfig.model_fields[name].description.replace("%", "%%")


def _num_splits(value: str) -> int | str:
    if value == "all":
        return value
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer or 'all', got {value!r}") from None


def read_documents(path: str, *, max_documents: int | None = None,
                   max_document_chars: int | None = None) -> list[str]:
    """The ``text`` of every non-blank line; a bad line, or one past the limits, is an error
    naming its number (checked while reading, so an oversized file is refused early)."""
    documents = []
    try:
        handle = open(path, encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror}") from exc
    with handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{number}: not valid JSON ({exc.msg})") from exc
            if not isinstance(record, dict) or "text" not in record:
                raise ValueError(f"{path}:{number}: expected an object with a \"text\" field")
            text = record["text"]
            if not isinstance(text, str) or not text.strip():
                raise ValueError(f"{path}:{number}: \"text\" must be a non-empty string")
            if max_document_chars is not None and len(text) > max_document_chars:
                raise ValueError(f"{path}:{number}: the document has {len(text)} characters; at most "
                                 f"{max_document_chars} are accepted (DISC_MAX_DOCUMENT_CHARS)")
            if max_documents is not None and len(documents) == max_documents:
                raise ValueError(f"{path}:{number}: more than {max_documents} documents; split the file "
                                 "or raise DISC_MAX_DOCUMENTS_PER_BATCH")
            documents.append(text)
    if not documents:
        raise ValueError(f"{path} holds no documents")
    return documents


def run(args: argparse.Namespace) -> int:
    overrides = {key: value for key, value in {
        "method": args.method, "learning_rate": args.lr, "epochs": args.epochs,
        "num_splits": args.num_splits, "full_finetune": args.full, "seed": args.seed,
        "retention_budget_kl": args.retention_budget,
        "retention_budget_format_drop": args.retention_format_drop,
        "replay_weight": args.replay_weight,
    }.items() if value is not None}
    from store.settings import get_settings  # torch-free; the limits the API applies

    try:
        settings = get_settings()
        documents = read_documents(args.docs, max_documents=settings.max_documents_per_batch,
                                   max_document_chars=settings.max_document_chars)
    except ValueError as exc:
        print(f"disc train: {exc}", file=sys.stderr)
        return 2

    # Heavy imports only now: `disc --help` and the other subcommands never load torch.
    from tqdm import tqdm

    from disc_engine.trainer import TrainConfig, TrainingCancelled, train

    try:
        config = TrainConfig.from_dict(overrides)
    except ValueError as exc:
        print(f"disc train: {exc}", file=sys.stderr)
        return 2

    # One bar per stage (preparing the documents, then training); each starts with its first
    # document, so loading the model does not skew its rate.
    bars: dict[str, object] = {}

    def show(progress) -> None:
        if progress.stage not in bars:
            close_bar()
            bars[progress.stage] = tqdm(total=progress.documents_total, unit="doc", file=sys.stderr,
                                        desc=progress.stage, mininterval=0.5)
        bar = bars[progress.stage]
        if progress.stage == "training":
            bar.set_postfix(epoch=progress.epoch, loss=f"{progress.loss:.4f}",
                            tok_s=f"{progress.tokens_per_second:.0f}", refresh=False)
        # update() redraws at most every mininterval; the last document always shows.
        bar.update(progress.documents_done - bar.n)
        if progress.documents_done == progress.documents_total:
            bar.refresh()

    def close_bar() -> None:
        for bar in bars.values():
            bar.close()

    print(f"disc train: {len(documents)} documents, method {config.method}, "
          f"{'full fine-tuning' if config.full_finetune else 'LoRA'}; loading the model…",
          file=sys.stderr)
    try:
        result = train(documents, out_dir=args.out, config=config, base_model=args.base,
                       parent=args.parent, progress=show, checkpoint_dir=args.checkpoint_dir,
                       device=args.device)
    except (ValueError, OSError, FloatingPointError, TrainingCancelled) as exc:
        # ArtifactError and EmptyDocumentError are ValueErrors with messages meant for users.
        close_bar()
        print(f"disc train: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        # A second Ctrl-C while shutting down must not print a traceback.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        close_bar()
        print("disc train: interrupted"
              + (f"; rerun with --checkpoint-dir {args.checkpoint_dir} to resume"
                 if args.checkpoint_dir else ""), file=sys.stderr)
        return 130
    close_bar()
    report = result.report
    final_loss = result.metrics["final_loss"]
    print(f"trained {report.documents_trained} of {report.documents_total} documents "
          f"({result.steps} steps, final loss "
          f"{'n/a' if final_loss is None else f'{final_loss:.4f}'}); "
          f"{len(report.documents_altered)} altered, {len(report.documents_skipped)} skipped, "
          f"{len(report.documents_duplicated)} repeated")
    selection = result.metrics.get("epoch_selection")
    if selection is not None:
        for entry in selection["trajectory"]:
            print(f"  epoch {entry['epoch']}: retention KL {entry['retention_kl_vs_parent']:.4f}, "
                  f"gap closed {entry['knowledge']:.3f}{'  (kept)' if entry['kept'] else ''}")
        kept = selection["best_epoch"]
        print(f"  kept epoch {kept}" + (" — the parent unchanged: no epoch fits the retention budget"
                                        if kept == 0 else "")
              + (f"; stopped: {selection['stopped_because']}" if selection["stopped_because"] else ""))
    for item in report.documents_skipped:
        print(f"  skipped document {item['index']}: {item['reason']}")
    for item in report.documents_duplicated:
        print(f"  document {item['index']} repeats document {item['same_as']} (trained as often as it appears)")
    print(f"artifact written to {result.artifact_dir}")
    return 0
