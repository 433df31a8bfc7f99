"""`disc pull LINEAGE [VERSION] -o DIR [--merged]`: a version's artifact, verified, ready to serve."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from disc_cli.connection import (
    EXIT_CONFLICT,
    EXIT_OK,
    client_parser,
    command,
    make_client,
    print_json,
    version_or_latest,
)


def register(subparsers) -> None:
    parser = client_parser(
        subparsers, "pull", help="download a model version (verified), optionally merged into its base",
        description="Download VERSION (default: latest) of LINEAGE into DIR, checked against the checksum the "
                    "service recorded, with a model card (README.md). The folder loads with "
                    "PeftModel.from_pretrained and vLLM's --lora-modules. --merged writes the base with the "
                    "adapter merged in (safetensors), for engines without LoRA support; it loads the base "
                    "model, so it needs the engine's packages (torch, transformers, peft).")
    parser.add_argument("lineage", metavar="LINEAGE")
    parser.add_argument("version", nargs="?", default="latest", type=version_or_latest, metavar="VERSION",
                        help="a version number, or latest (default)")
    parser.add_argument("-o", "--output", required=True, type=Path, metavar="DIR",
                        help="folder to create (must be absent or empty)")
    parser.add_argument("--merged", action="store_true", help="write merged weights instead of the adapter")
    parser.set_defaults(func=run)


@command("pull")
def run(args) -> int:
    from disc_client import download

    with make_client(args) as client:
        record = client.models.retrieve(args.lineage, args.version)
        merged = args.merged and record.artifact_kind == "lora"
        if args.merged and not merged:
            print(f"disc pull: v{record.version} is a full checkpoint already; pulling it as it is", file=sys.stderr)
        if not merged:
            path = client.models.download(record.lineage, record.version, args.output)
        else:
            download.prepare_destination(args.output)
            with tempfile.TemporaryDirectory(prefix=".disc-pull-", dir=args.output.parent) as scratch:
                adapter = client.models.download(record.lineage, record.version, Path(scratch) / "adapter")
                path = _merge(adapter, args.output, record)
                if path is None:
                    return EXIT_CONFLICT
    if args.json:
        print_json({"path": str(path), "lineage": record.lineage, "version": record.version,
                    "artifact_kind": record.artifact_kind, "artifact_sha256": record.artifact_sha256,
                    "merged": merged})
    else:
        what = "merged weights" if merged else ("adapter" if record.artifact_kind == "lora" else "checkpoint")
        print(f"{record.lineage} v{record.version} ({what}, sha256 {record.artifact_sha256[:12]}…) → {path}")
    return EXIT_OK


def _merge(adapter: Path, out: Path, record) -> Path | None:
    from disc_client.model_card import CARD_FILE, render_model_card
    from disc_engine.artifacts import ArtifactError
    from disc_engine.merging import merge_adapter

    print(f"disc pull: merging v{record.version} into its base {record.base_model}…", file=sys.stderr)
    try:
        merge_adapter(adapter, out)
    except (ArtifactError, FileExistsError) as exc:
        print(f"disc pull: {exc}", file=sys.stderr)
        return None
    (out / CARD_FILE).write_text(render_model_card(record, merged=True), encoding="utf-8")
    return out
