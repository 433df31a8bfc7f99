"""`disc jobs list|show|watch|cancel`: the jobs of a running service."""

from __future__ import annotations

import argparse
import itertools

from disc_cli.connection import (
    EXIT_OK,
    JOB_EXIT,
    client_parser,
    command,
    follow,
    make_client,
    print_job_outcome,
    print_json,
)


def register(subparsers) -> None:
    parser = subparsers.add_parser("jobs", help="list, show, watch or cancel jobs of a running service",
                                   description="The update jobs of a running service.")
    commands = parser.add_subparsers(dest="jobs_command", required=True, metavar="COMMAND")

    def sub(name: str, **kwargs) -> argparse.ArgumentParser:
        return client_parser(commands, name, **kwargs)

    listing = sub("list", help="jobs, newest first", description="Jobs, newest first, fetched page by page.")
    listing.add_argument("--lineage", default=None, help="only this lineage's jobs")
    listing.add_argument("--status", default=None,
                         choices=("queued", "running", "evaluating", "succeeded", "failed", "cancelled"))
    listing.add_argument("--limit", type=int, default=20, help="show at most this many (default: 20)")
    listing.add_argument("--all", action="store_true", help="every matching job, however many")
    listing.set_defaults(func=run_list)

    show = sub("show", help="one job: status, progress, result", description="Show one job.")
    show.add_argument("job_id", metavar="JOB")
    show.add_argument("--events", action="store_true", help="also what happened to it, oldest first")
    show.set_defaults(func=run_show)

    watch = sub("watch", help="follow a job until it ends",
                description="Draw a job's progress until it ends; the exit code says how it ended.")
    watch.add_argument("job_id", metavar="JOB")
    watch.add_argument("--timeout", type=float, default=None, metavar="SECONDS", help="give up after this long")
    watch.set_defaults(func=run_watch)

    cancel = sub("cancel", help="cancel a job",
                 description="Cancel a job: a queued one at once, a running one at the worker's next step.")
    cancel.add_argument("job_id", metavar="JOB")
    cancel.set_defaults(func=run_cancel)


def _progress(job) -> str:
    p = job.progress
    if not p.documents_total:
        return p.stage or ""
    return f"{p.stage or job.status} {p.documents_done}/{p.documents_total}"


def _result(job) -> str:
    if job.result_version is not None:
        return f"v{job.result_version.version}"
    return job.error.code if job.error is not None else ""


@command("jobs list")
def run_list(args) -> int:
    with make_client(args) as client:
        jobs = client.jobs.list(lineage=args.lineage, status=args.status,
                                page_size=200 if args.all else min(max(args.limit, 1), 200))
        found = list(jobs if args.all else itertools.islice(jobs, max(args.limit, 0)))
    if args.json:
        print_json({"data": found})
        return EXIT_OK
    print(f"{'job':<32}  {'status':<10} {'lineage':<16} {'progress':<22} {'result':<16} created")
    for job in found:
        print(f"{job.id:<32}  {job.status:<10} {job.lineage:<16} {_progress(job):<22} {_result(job):<16} "
              f"{job.created_at:%Y-%m-%d %H:%M:%S}")
    return EXIT_OK


@command("jobs show")
def run_show(args) -> int:
    with make_client(args) as client:
        job = client.jobs.retrieve(args.job_id)
        events = client.jobs.events(args.job_id) if args.events else None
    if args.json:
        print_json({"job": job, "events": events} if events is not None else job)
        return EXIT_OK
    print(f"job {job.id}: {job.status}{' (cancel requested)' if job.cancel_requested else ''}, lineage "
          f"{job.lineage!r}, method {job.method}, attempt {job.attempts}")
    print(f"  progress: {_progress(job) or '—'}"
          + (f", loss {job.progress.loss:.4f}" if job.progress.loss is not None else ""))
    print(f"  created {job.created_at:%Y-%m-%d %H:%M:%S}"
          + (f", started {job.started_at:%H:%M:%S}" if job.started_at else "")
          + (f", finished {job.finished_at:%H:%M:%S}" if job.finished_at else ""))
    if job.parent_version is not None:
        print(f"  parent: v{job.parent_version}")
    if job.finished_at is not None:
        print_job_outcome(job)
    for event in events or []:
        print(f"  {event.created_at:%H:%M:%S} {event.kind:<16} {event.message}")
    return EXIT_OK


@command("jobs watch")
def run_watch(args) -> int:
    with make_client(args) as client:
        job = follow(client, args.job_id, show_progress=not args.json, timeout_s=args.timeout)
    if args.json:
        print_json(job)
    else:
        print_job_outcome(job)
    return JOB_EXIT[job.status]


@command("jobs cancel")
def run_cancel(args) -> int:
    with make_client(args) as client:
        job = client.jobs.cancel(args.job_id)
    if args.json:
        print_json(job)
    else:
        state = "cancelled" if job.status == "cancelled" else f"{job.status}, cancel requested"
        print(f"job {job.id}: {state}")
    return EXIT_OK
