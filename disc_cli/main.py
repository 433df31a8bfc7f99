"""`disc` — the service's side (serve, worker, db upgrade, store init, demo, train, keys) and a client's side
(submit, jobs, models, pull; through the ``disc_client`` SDK).

Each subcommand lives in its own module exposing ``register(subparsers)``; the module sets
``func`` on its parser and imports heavy dependencies (torch, FastAPI, Celery) only inside
that function, so `disc serve` never loads torch and `disc --help` is instant.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys

SUBCOMMAND_MODULES = ("serve", "worker", "db", "store", "demo", "train", "keys", "submit", "jobs", "models", "pull")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="disc", description="Continual knowledge updates for post-trained LLMs (DiSC).")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(f"disc_cli.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        # Ctrl-C where a command has no handler of its own (or a second one during its
        # shutdown): the conventional status, no traceback.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        print("disc: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
