"""`disc worker`: a Celery worker consuming the ``updates`` queue, with the reconciler beside it.

The default pool is ``solo``: the task runs in the worker's own process. Training is one big
computation that torch already spreads over every core (or a GPU), so parallel jobs on one
machine only compete; a forked pool would also fork a process whose torch has started
OpenMP/CUDA threads (unsafe) and give each child its own copy of the model. With
``--concurrency N`` above 1 the pool is ``threads``: the jobs share the process and its cached
base models, and torch releases the GIL while it computes.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket

POOLS = ("solo", "threads", "prefork")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "worker", help="run a worker that trains and evaluates update jobs",
        description="Consume update jobs from the broker (DISC_BROKER_URL) and record their results "
                    "in the database (DISC_DATABASE_URL). Also re-sends jobs lost by the broker or by "
                    "a worker that died.")
    parser.add_argument("--concurrency", type=_positive, default=1,
                        help="jobs run at the same time by this worker (default 1)")
    parser.add_argument("--pool", choices=POOLS, default=None,
                        help="Celery execution pool (default: solo for 1 job, threads for more)")
    parser.add_argument("--loglevel", default="info",
                        choices=("debug", "info", "warning", "error", "critical"),
                        help="log level (default info)")
    parser.add_argument("--hostname", default=None,
                        help="Celery node name (default: disc@<host>-<pid>)")
    parser.add_argument("--device", default=None,
                        help="device to train on: cpu, cuda or cuda:N (default: the first GPU if any); "
                             "one worker per GPU: start one with --device cuda:N for each")
    parser.add_argument("--queue", action="append", default=None, metavar="NAME",
                        help="queue to consume (repeatable; default 'updates'): with DISC_BASE_MODEL_QUEUES, "
                             "the queues of the base models this worker serves")
    parser.add_argument("--reconcile-every", type=float, default=None, metavar="SECONDS",
                        help="seconds between passes re-sending lost jobs (default 30; 0 disables)")
    parser.set_defaults(func=run)


def _positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}") from None
    return number


def _device_problem(device: str) -> str | None:
    import torch

    try:
        parsed = torch.device(device)
    except RuntimeError as exc:
        return f"not a device name ({exc})"
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            return "no CUDA GPU is visible to this process"
        if parsed.index is not None and parsed.index >= torch.cuda.device_count():
            return f"only {torch.cuda.device_count()} GPU(s) are visible (CUDA_VISIBLE_DEVICES)"
    elif parsed.type != "cpu":
        return f"device type {parsed.type!r} is not supported (cpu, cuda, cuda:N)"
    return None


def run(args: argparse.Namespace) -> int:
    from store.db import session_factory
    from store.migrate import DatabaseNotMigrated, check_up_to_date
    from store.queue import UPDATES_QUEUE
    from store.settings import get_settings
    from worker.celery_app import app
    from worker.reconciler import RECONCILE_EVERY_S, ReconcilerThread

    if args.device is not None:
        problem = _device_problem(args.device)
        if problem:
            print(f"disc worker: --device {args.device}: {problem}")
            return 2
        # Read by the job pipeline through the settings (DISC_WORKER_DEVICE).
        os.environ["DISC_WORKER_DEVICE"] = args.device
        get_settings.cache_clear()
    logging.basicConfig(level=args.loglevel.upper(),
                        format="%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s")
    settings = get_settings()
    try:
        check_up_to_date(settings)
    except DatabaseNotMigrated as exc:
        logging.getLogger("disc.worker").error("%s", exc)
        return 2
    pool = args.pool or ("solo" if args.concurrency == 1 else "threads")
    every = RECONCILE_EVERY_S if args.reconcile_every is None else args.reconcile_every
    reconciler = None
    if every > 0:
        reconciler = ReconcilerThread(session_factory(settings), settings, every_s=every)
        reconciler.start()
    hostname = args.hostname or f"disc@{socket.gethostname()}-{os.getpid()}"
    try:
        app.worker_main([
            "worker", "--queues", ",".join(args.queue or [UPDATES_QUEUE]), "--pool", pool,
            "--concurrency", str(args.concurrency),
            "--loglevel", args.loglevel.upper(), "--hostname", hostname, "--without-gossip",
            "--without-mingle",
        ])
    finally:
        if reconciler is not None:
            reconciler.stop()
    return 0
