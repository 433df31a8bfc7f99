"""Continual learning over a lineage of many days: facts that change.

``corpus.py`` draws a deterministic chain of daily news batches from a seed (day 0 states facts
about invented subjects; each later day adds new subjects and updates some earlier facts, the
old value named as former), with probes per fact that record the current value and the
superseded ones, so a benchmark can measure new-fact accuracy, latest-value accuracy, the rate
at which a model still prefers a superseded value, and retention of untouched facts.

    python -m benchmarks.continual.corpus --seed 0 --days 8 --out chain.json
"""
