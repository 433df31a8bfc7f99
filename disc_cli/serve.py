"""`disc serve`: run the HTTP API with uvicorn (never loads torch)."""

from __future__ import annotations

import math
import sys


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "serve", help="run the HTTP API",
        description="Run the HTTP API (OpenAPI at /docs). The database must be migrated first "
                    "(`disc db upgrade`); settings come from DISC_* environment variables.")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port to bind (default: 8000)")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes (default: 1)")
    parser.add_argument("--log-level", default="info", choices=("critical", "error", "warning", "info", "debug"))
    parser.set_defaults(func=run)


def run(args) -> int:
    import uvicorn

    from service.app import UnsafeConfiguration, check_safe
    from store import migrate
    from store.settings import get_settings

    settings = get_settings()
    try:
        check_safe(settings)
        migrate.check_up_to_date(settings)
    except (UnsafeConfiguration, migrate.DatabaseNotMigrated) as exc:
        print(f"disc serve: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # the database itself is unreachable
        print(f"disc serve: cannot reach the database: {exc}", file=sys.stderr)
        return 2
    uvicorn.run("service.app:create_app", factory=True, host=args.host, port=args.port,
                workers=args.workers, log_level=args.log_level, proxy_headers=True,
                # SIGTERM: requests in flight get this long, then slow clients are cut off.
                timeout_graceful_shutdown=max(1, math.ceil(settings.shutdown_timeout_s)))
    return 0
