"""What the client commands share: the connection options, exit codes, ``--json`` output, the
progress bar and the scores table. They talk to the service through ``disc_client`` only.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from typing import Any

# Exit codes a script can branch on.
EXIT_OK = 0
EXIT_JOB_FAILED = 1        # the job ended failed (submit --wait, jobs watch); other unexpected failures
EXIT_USAGE = 2             # bad arguments or input file; the API refused the request as invalid (400/413/422)
EXIT_AUTH = 3              # no key, a bad key (401) or a missing scope / another lineage (403)
EXIT_NOT_FOUND = 4         # no such job, lineage or version; no promoted version yet
EXIT_CONFLICT = 5          # job already ended, version rejected, artifact damaged, destination not empty
EXIT_UNAVAILABLE = 6       # the service could not be reached or stayed unavailable (429/5xx) through the retries
EXIT_CANCELLED = 7         # the job ended cancelled
EXIT_TIMEOUT = 8           # --timeout passed before the job ended
EXIT_BAD_ARTIFACT = 9      # the download did not match its recorded checksum, or its archive was unsafe

EXIT_CODES_HELP = """exit codes: 0 ok · 1 job failed · 2 bad usage or invalid request · 3 unauthorized or forbidden ·
4 not found · 5 conflict · 6 service unreachable or unavailable · 7 job cancelled · 8 timed out ·
9 artifact failed verification"""

JOB_EXIT = {"succeeded": EXIT_OK, "failed": EXIT_JOB_FAILED, "cancelled": EXIT_CANCELLED}

KNOWLEDGE_ROWS = [
    ("knowledge gap (KL, lower is better)", "knowledge_gap_before", "knowledge_gap_after"),
    ("sentence NLL without context", "suffix_nll_before", "suffix_nll_after"),
    ("probe accuracy", "probe_accuracy_before", "probe_accuracy_after"),
]
RETENTION_ROWS = [
    ("general questions answered", "general_mc_accuracy_parent", "general_mc_accuracy"),
    ("instruction format followed", "format_compliance_parent", "format_compliance"),
]


def add_connection_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("connection")
    group.add_argument("--url", default=None, metavar="URL",
                       help="the service (default: $DISC_URL, else http://127.0.0.1:8000)")
    group.add_argument("--api-key", default=None, metavar="KEY", help="API key (default: $DISC_API_KEY)")
    group.add_argument("--json", action="store_true", help="print the result as JSON on stdout")


def client_parser(subparsers, name: str, **kwargs) -> argparse.ArgumentParser:
    """A subcommand parser with the connection options and the exit codes in its help."""
    parser = subparsers.add_parser(name, epilog=EXIT_CODES_HELP,
                                   formatter_class=argparse.RawDescriptionHelpFormatter, **kwargs)
    add_connection_arguments(parser)
    return parser


def version_number(value: str) -> int:
    """An argparse type: ``3`` or ``v3``."""
    try:
        number = int(value.removeprefix("v"))
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a version number such as 3, got {value!r}")
    return number


def version_or_latest(value: str) -> int | str:
    return value if value == "latest" else version_number(value)


def make_client(args):
    from disc_client import Client

    return Client(args.url, args.api_key)


def exit_code_for(error: Exception) -> int:
    from disc_client import errors

    if isinstance(error, (errors.AuthenticationError, errors.PermissionDeniedError)):
        return EXIT_AUTH
    if isinstance(error, errors.NotFoundError):
        return EXIT_NOT_FOUND
    if isinstance(error, (errors.ConflictError, errors.DestinationExists)):
        return EXIT_CONFLICT
    if isinstance(error, errors.InvalidRequestError):
        return EXIT_USAGE
    if isinstance(error, (errors.APIConnectionError, errors.RateLimitError, errors.ServerError)):
        return EXIT_UNAVAILABLE
    if isinstance(error, errors.WaitTimeout):
        return EXIT_TIMEOUT
    if isinstance(error, errors.ArtifactError):
        return EXIT_BAD_ARTIFACT
    return EXIT_JOB_FAILED


def error_json(error: Exception) -> dict[str, Any]:
    from disc_client.errors import APIError

    if isinstance(error, APIError):
        return {"error": {"code": error.code, "message": error.message, "param": error.param,
                          "status": error.status}}
    return {"error": {"code": type(error).__name__, "message": str(error), "param": None, "status": None}}


def command(name: str):
    """Wrap a client command: a ``DiscError`` becomes one line on stderr (and JSON with --json) and its exit code."""
    def decorate(func):
        @functools.wraps(func)
        def run(args) -> int:
            from disc_client import DiscError

            try:
                return func(args)
            except DiscError as error:
                print(f"disc {name}: {error}", file=sys.stderr)
                if getattr(args, "json", False):
                    print_json(error_json(error))
                return exit_code_for(error)
            except KeyboardInterrupt:
                print(f"disc {name}: interrupted", file=sys.stderr)
                return 130
        return run
    return decorate


def to_jsonable(value: Any) -> Any:
    from pydantic import BaseModel

    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, dict):
        return {k: to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    return value


def print_json(value: Any) -> None:
    print(json.dumps(to_jsonable(value), indent=2, ensure_ascii=False))


# --- following a job ----------------------------------------------------------------------------

class ProgressBar:
    """A ``jobs.wait`` progress callback drawing documents done/total on stderr."""

    def __init__(self) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=1, unit="doc", desc="queued", dynamic_ncols=True, file=sys.stderr,
                        bar_format="{desc:<10} {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} documents "
                                   "[{elapsed}{postfix}]")

    def __call__(self, job) -> None:
        progress = job.progress
        total = progress.documents_total or self.bar.total
        self.bar.total = total
        self.bar.n = min(progress.documents_done, total)
        stage = progress.stage or job.status
        if job.status in ("succeeded", "failed", "cancelled"):
            stage = job.status
        self.bar.set_description(stage, refresh=False)
        postfix = {}
        if progress.loss is not None:
            postfix["loss"] = f"{progress.loss:.3f}"
        if progress.eta_seconds is not None and job.status == "running":
            postfix["eta"] = f"{progress.eta_seconds:.0f}s"
        self.bar.set_postfix(postfix, refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        self.bar.close()


def follow(client, job_id: str, *, show_progress: bool, timeout_s: float | None):
    bar = ProgressBar() if show_progress else None
    try:
        return client.jobs.wait(job_id, progress=bar, timeout_s=timeout_s)
    finally:
        if bar is not None:
            bar.close()


def _fmt(value) -> str:
    return "—" if value is None else f"{value:.4g}"


def scores_lines(scores: dict[str, float | None]) -> list[str]:
    """The version's knowledge and retention scores as an aligned two-column table."""
    rows = [("knowledge gained", "before", "after")]
    rows += [(label, _fmt(scores.get(before)), _fmt(scores.get(after))) for label, before, after in KNOWLEDGE_ROWS]
    rows.append(("share of the gap closed", "", _fmt(scores.get("knowledge_gap_closed_fraction"))))
    rows.append(("capabilities kept", "parent", "new"))
    rows += [(label, _fmt(scores.get(before)), _fmt(scores.get(after))) for label, before, after in RETENTION_ROWS]
    rows.append(("KL to the parent (lower is better)", "", _fmt(scores.get("retention_kl_vs_parent"))))
    rows.append(("KL to the base (lower is better)", "", _fmt(scores.get("retention_kl_vs_base"))))
    width = max(len(r[0]) for r in rows)
    lines = []
    for label, left, right in rows:
        if label in ("knowledge gained", "capabilities kept"):
            lines.append("")
        lines.append(f"{label:<{width}}  {left:>10}  {right:>10}")
    return lines


def version_line(version) -> str:
    latest = ", latest" if version.is_latest else ""
    parent = f"from v{version.parent_version}" if version.parent_version is not None else "from the base"
    return (f"{version.lineage} v{version.version} ({version.method}, {parent}, base {version.base_model}): "
            f"{version.state}{latest}")


def print_job_outcome(job) -> None:
    """The end of a job for a person: its version and scores, or why it did not produce one."""
    if job.status == "succeeded" and job.result_version is not None:
        print(f"job {job.id} succeeded: {version_line(job.result_version)}")
        for line in scores_lines(job.result_version.scores):
            print(line)
    elif job.error is not None:
        print(f"job {job.id} {job.status}: {job.error.code}: {job.error.message}")
    else:
        print(f"job {job.id} {job.status}")
