"""The service's record: settings, SQL models, sessions, repository functions, artifact storage.

Shared by `service` and `worker`; imports neither torch nor FastAPI.
"""
