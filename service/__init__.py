"""The HTTP API: FastAPI routes, schemas, errors and authentication.

Never imports torch or the worker package: jobs are sent to the broker by task name.
"""
