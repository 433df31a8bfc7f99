"""`disc models latest|list|scores|promote|history`: model versions of a running service."""

from __future__ import annotations

import sys

from disc_cli.connection import (
    EXIT_OK,
    EXIT_USAGE,
    client_parser,
    command,
    make_client,
    print_json,
    scores_lines,
    version_line,
    version_number,
)


def register(subparsers) -> None:
    parser = subparsers.add_parser("models", help="model versions of a running service: latest, list, scores, promote, "
                                                "history",
                                   description="Lineages and their model versions on a running service.")
    commands = parser.add_subparsers(dest="models_command", required=True, metavar="COMMAND")

    latest = client_parser(commands, "latest", help="the version `latest` points at, with its scores",
                           description="The version `latest` points at, with its scores.")
    latest.add_argument("--lineage", default=None, help="default: the key's or the service's default lineage")
    latest.set_defaults(func=run_latest)

    listing = client_parser(commands, "list", help="lineages, or the versions of one",
                            description="Without LINEAGE: every lineage. With it: its versions, oldest first.")
    listing.add_argument("lineage", nargs="?", default=None, metavar="LINEAGE")
    listing.set_defaults(func=run_list)

    scores = client_parser(commands, "scores", help="a lineage's scores over its versions: table, chart, PNG",
                           description="LINEAGE's scores over its versions, oldest first: a table (metrics down, "
                                       "versions across), one sparkline a metric, and with --png a chart as a PNG "
                                       "file. Candidates and rejected versions are included. retention_kl_vs_base "
                                       "is each version's drift from the base over the whole chain (the figure "
                                       "DISC_PROMOTE_MAX_RETENTION_KL_VS_BASE bounds), retention_kl_vs_parent the "
                                       "step from its parent.")
    scores.add_argument("lineage", metavar="LINEAGE")
    scores.add_argument("--metric", action="append", default=None, metavar="M",
                        help="a metric to show, e.g. retention_kl_vs_base; repeat or separate with commas "
                             "(default: every metric some version has)")
    scores.add_argument("--png", default=None, metavar="PATH", help="also draw the chart into this PNG file")
    scores.set_defaults(func=run_scores)

    promote = client_parser(commands, "promote", help="point `latest` at a version (roll back or forward)",
                            description="Point `latest` at VERSION of LINEAGE: roll back to an older version or "
                                        "forward to a candidate. Needs the models:promote scope.")
    promote.add_argument("lineage", metavar="LINEAGE")
    promote.add_argument("version", type=version_number, metavar="VERSION")
    promote.set_defaults(func=run_promote)

    history = client_parser(commands, "history", help="every move of `latest`, oldest first",
                            description="Every move of LINEAGE's `latest`: promotions by policy, roll backs, "
                                        "roll forwards.")
    history.add_argument("lineage", metavar="LINEAGE")
    history.set_defaults(func=run_history)


@command("models latest")
def run_latest(args) -> int:
    with make_client(args) as client:
        version = client.models.latest(args.lineage)
    if args.json:
        print_json(version)
        return EXIT_OK
    print(version_line(version))
    print(f"  sha256 {version.artifact_sha256}, job {version.job_id}")
    for line in scores_lines(version.scores):
        print(line)
    return EXIT_OK


@command("models list")
def run_list(args) -> int:
    with make_client(args) as client:
        items = client.models.versions(args.lineage) if args.lineage else client.models.lineages()
    if args.json:
        print_json({"data": items})
        return EXIT_OK
    if args.lineage is None:
        print(f"{'lineage':<24} {'versions':>8} {'latest':>7}  base model")
        for lineage in items:
            latest = f"v{lineage.latest_version}" if lineage.latest_version is not None else "—"
            print(f"{lineage.name:<24} {lineage.version_count:>8} {latest:>7}  {lineage.base_model}")
        return EXIT_OK
    print(f"{'version':>7} {'parent':>7} {'state':<10} {'method':<7} {'probe acc':>9} {'KL parent':>9} "
          f"{'KL base':>9} created")
    for v in items:
        parent = f"v{v.parent_version}" if v.parent_version is not None else "base"
        marker = "*" if v.is_latest else " "
        accuracy, drift = v.scores.get("probe_accuracy_after"), v.scores.get("retention_kl_vs_parent")
        total = v.scores.get("retention_kl_vs_base")
        print(f"{marker}{'v' + str(v.version):>6} {parent:>7} {v.state:<10} {v.method:<7} "
              f"{'—' if accuracy is None else f'{accuracy:.3f}':>9} {'—' if drift is None else f'{drift:.4f}':>9} "
              f"{'—' if total is None else f'{total:.4f}':>9} {v.created_at:%Y-%m-%d %H:%M:%S}")
    print("* latest")
    return EXIT_OK


@command("models scores")
def run_scores(args) -> int:
    from disc_cli.charts import score_lines, write_png

    metrics = [name.strip() for given in args.metric or [] for name in given.split(",") if name.strip()]
    with make_client(args) as client:
        history = client.models.scores(args.lineage, metrics or None)
    if args.png is not None:
        try:
            write_png(history, args.png)
        except OSError as exc:
            message = f"cannot write {args.png}: {exc.strerror or exc}"
            print(f"disc models scores: {message}", file=sys.stderr)
            if args.json:
                print_json({"error": {"code": "cannot_write", "message": message, "param": "--png", "status": None}})
            return EXIT_USAGE
    if args.json:
        print_json(history)
    else:
        for line in score_lines(history):
            print(line)
    if args.png is not None:
        print(f"chart written to {args.png}", file=sys.stderr if args.json else sys.stdout)
    return EXIT_OK


@command("models promote")
def run_promote(args) -> int:
    with make_client(args) as client:
        version = client.models.promote(args.lineage, args.version)
    if args.json:
        print_json(version)
    else:
        print(f"latest of {version.lineage!r} now points at v{version.version}")
    return EXIT_OK


@command("models history")
def run_history(args) -> int:
    with make_client(args) as client:
        moves = client.models.history(args.lineage)
    if args.json:
        print_json({"data": moves})
        return EXIT_OK
    for move in moves:
        origin = f"v{move.from_version}" if move.from_version is not None else "—"
        print(f"{move.created_at:%Y-%m-%d %H:%M:%S}  {origin:>5} → v{move.to_version:<5} {move.reason:<8} "
              f"{move.actor or ''}")
    return EXIT_OK
