"""Scripts that measure the product: engine speed, knowledge-update replication, service load.

This file makes ``benchmarks`` a regular package: pysbd installs a top-level package of the
same name, which would otherwise shadow this folder for ``python -m benchmarks.…``.
"""
