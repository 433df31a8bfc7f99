"""`disc keys create|list|revoke`: manage API keys (only their hashes are stored)."""

from __future__ import annotations

import sys

SCOPES = ("updates:write", "jobs:read", "models:read", "models:promote")


def register(subparsers) -> None:
    parser = subparsers.add_parser("keys", help="manage API keys", description="Create, list and revoke API keys.")
    commands = parser.add_subparsers(dest="keys_command", required=True, metavar="COMMAND")

    create = commands.add_parser(
        "create", help="create a key and print it once",
        description="Create an API key. The key is printed once; only its hash is stored.")
    create.add_argument("--name", required=True, help="who or what the key is for")
    create.add_argument("--scopes", required=True, type=_scopes, metavar="S1,S2",
                        help=f"comma-separated, from: {', '.join(SCOPES)}")
    create.add_argument("--lineage", default=None, help="limit the key to this one lineage")
    create.set_defaults(func=run_create)

    listing = commands.add_parser("list", help="list keys (never the keys themselves)",
                                  description="List keys: id, name, prefix, scopes, lineage, state.")
    listing.set_defaults(func=run_list)

    revoke = commands.add_parser("revoke", help="revoke a key by id", description="Revoke a key by its id.")
    revoke.add_argument("key_id", type=int, help="the id shown by `disc keys list`")
    revoke.set_defaults(func=run_revoke)


def _scopes(value: str) -> list[str]:
    import argparse

    scopes = [s.strip() for s in value.split(",") if s.strip()]
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown or not scopes:
        raise argparse.ArgumentTypeError(f"unknown scope(s) {', '.join(unknown) or '(none given)'}; "
                                         f"choose from {', '.join(SCOPES)}")
    return scopes


def run_create(args) -> int:
    from store import repo
    from store.db import session_scope

    try:
        with session_scope() as session:
            key, token = repo.create_api_key(session, name=args.name, scopes=args.scopes, lineage=args.lineage)
            key_id = key.id
    except ValueError as exc:
        print(f"disc keys create: {exc}", file=sys.stderr)
        return 2
    print(token)
    print(f"created key {key_id} ({args.name}); store it now, it cannot be shown again", file=sys.stderr)
    return 0


def run_list(args) -> int:
    from store import repo
    from store.db import session_scope

    with session_scope() as session:
        keys = repo.list_api_keys(session)
        print(f"{'id':>4}  {'name':<20} {'prefix':<13} {'lineage':<12} {'state':<8} scopes")
        for key in keys:
            state = "revoked" if key.revoked_at else "active"
            print(f"{key.id:>4}  {key.name:<20} {key.prefix:<13} {key.lineage or '*':<12} {state:<8} "
                  f"{','.join(key.scopes)}")
    return 0


def run_revoke(args) -> int:
    from store import repo
    from store.db import session_scope

    with session_scope() as session:
        key = repo.revoke_api_key(session, args.key_id)
    if key is None:
        print(f"no key with id {args.key_id}", file=sys.stderr)
        return 1
    print(f"revoked key {args.key_id}")
    return 0
