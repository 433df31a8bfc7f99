"""The worker's Celery app registers its task through ``include``, without an import cycle."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from store.queue import RUN_UPDATE_JOB


def test_the_worker_app_loads_its_task_module_by_include():
    # A fresh interpreter: other tests may already have imported worker.tasks.
    script = ("import sys; import worker.celery_app as c; "
              "assert 'worker.tasks' not in sys.modules, 'the app module imports its tasks'; "
              "c.app.loader.import_default_modules(); "
              f"assert {RUN_UPDATE_JOB!r} in c.app.tasks, sorted(c.app.tasks); print('ok')")
    done = subprocess.run([sys.executable, "-c", script], cwd=Path(__file__).resolve().parents[2],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
