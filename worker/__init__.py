"""The worker: a Celery app, a thin task, and the update pipeline as plain functions."""
