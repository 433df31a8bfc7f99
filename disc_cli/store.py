"""`disc store init`: check the artifact store named by DISC_ARTIFACT_URL, creating its bucket."""

from __future__ import annotations

import sys
import time

PROBE_NAME = ".disc-store-check"


def register(subparsers) -> None:
    parser = subparsers.add_parser("store", help="artifact store commands",
                                   description="Commands for the artifact store (DISC_ARTIFACT_URL).")
    commands = parser.add_subparsers(dest="store_command", required=True, metavar="COMMAND")
    init = commands.add_parser(
        "init", help="create the store's bucket if absent and check it can be written and read",
        description="For s3:// URLs, create the bucket if it does not exist (endpoint and credentials from "
                    "the AWS_* variables); then write and read back a small object. Safe to run again.")
    init.set_defaults(func=run_init)


def run_init(args) -> int:
    from store.artifact_store import StoreError, open_store
    from store.settings import get_settings

    store = open_store(get_settings())
    try:
        if hasattr(store, "ensure_bucket"):
            store.ensure_bucket()
        probe = f"written {time.time():.0f}".encode()
        store.put_bytes(PROBE_NAME, probe)
        if store.get_bytes(PROBE_NAME) != probe:
            print(f"disc store init: {store.url} did not return what was written to it", file=sys.stderr)
            return 1
    except (StoreError, OSError) as exc:
        print(f"disc store init: {store.url}: {exc}", file=sys.stderr)
        return 1
    print(f"artifact store {store.url}: ok")
    return 0
