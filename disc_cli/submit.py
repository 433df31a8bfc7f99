"""`disc submit FILE.jsonl`: send documents to a running service as one update, optionally wait for it."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from disc_cli.connection import (
    EXIT_OK,
    EXIT_USAGE,
    JOB_EXIT,
    client_parser,
    command,
    follow,
    make_client,
    print_job_outcome,
    print_json,
)


def register(subparsers) -> None:
    parser = client_parser(
        subparsers, "submit", help="submit documents to a running service as one update",
        description="Submit the documents of FILE.jsonl (one {\"text\", \"id\", \"metadata\"} object per line) "
                    "as one update. With --wait, show the job's progress and end with the new version's scores.")
    parser.add_argument("documents", type=Path, metavar="FILE.jsonl", help="the documents, one JSON object a line")
    parser.add_argument("--probes", type=Path, default=None, metavar="FILE",
                        help="multiple-choice probes: JSONL or a JSON array of "
                             "{question, options, answer, document_id}")
    parser.add_argument("--lineage", default=None, help="lineage to update (default: the key's or the service's)")
    from disc_engine.objectives import DEFAULT_METHOD, OBJECTIVES  # torch-free: the one list of methods

    parser.add_argument("--method", default=None, choices=tuple(OBJECTIVES),
                        help=f"training objective (default: the service's, {DEFAULT_METHOD})")
    parser.add_argument("--set", dest="options", action="append", default=[], metavar="OPTION=VALUE",
                        help="a training option, e.g. --set epochs=2 --set learning_rate=1e-4 (VALUE is JSON "
                             "when it parses as JSON); the service checks names and ranges")
    parser.add_argument("--promotion", default=None, metavar="POLICY",
                        help="when the version becomes latest: auto (within the retention bounds), always, never")
    parser.add_argument("--idempotency-key", default=None, metavar="KEY",
                        help="submitting again with the same key returns the first job (default: a fresh key)")
    parser.add_argument("--wait", action="store_true", help="follow the job until it ends (exit code: its outcome)")
    parser.add_argument("--timeout", type=float, default=None, metavar="SECONDS", help="with --wait: give up after")
    parser.set_defaults(func=run)


class InputError(ValueError):
    pass


def read_json_lines(path: Path, what: str) -> list:
    """Objects from a JSONL file, or from a JSON array; a bad line is named by its number."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from exc
    if text.lstrip().startswith("["):
        try:
            items = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}: not valid JSON ({exc.msg}, line {exc.lineno})") from exc
    else:
        items = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                items.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise InputError(f"{path}:{number}: not valid JSON ({exc.msg})") from exc
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise InputError(f"{path}: {what} {index + 1} is not a JSON object")
    if not items:
        raise InputError(f"{path} holds no {what}s")
    return items


def parse_options(pairs: list[str]) -> dict:
    options = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        if not sep or not name.strip():
            raise InputError(f"--set expects OPTION=VALUE, got {pair!r}")
        try:
            options[name.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            options[name.strip()] = raw
    return options


@command("submit")
def run(args: argparse.Namespace) -> int:
    try:
        documents = read_json_lines(args.documents, "document")
        probes = read_json_lines(args.probes, "probe") if args.probes else None
        options = parse_options(args.options)
    except InputError as exc:
        print(f"disc submit: {exc}", file=sys.stderr)
        return EXIT_USAGE
    from disc_client import AUTO

    with make_client(args) as client:
        job = client.updates.create(
            documents, probes=probes, lineage=args.lineage, method=args.method,
            hyperparameters=options or None, promotion={"policy": args.promotion} if args.promotion else None,
            idempotency_key=args.idempotency_key or AUTO)
        if not args.json:
            print(f"job {job.id} queued: {len(documents)} documents, {len(probes or [])} probes, "
                  f"lineage {job.lineage!r}", file=sys.stderr if args.wait else sys.stdout)
        if not args.wait:
            if args.json:
                print_json(job)
            return EXIT_OK
        job = follow(client, job.id, show_progress=not args.json, timeout_s=args.timeout)
    if args.json:
        print_json(job)
    else:
        print_job_outcome(job)
    return JOB_EXIT[job.status]
