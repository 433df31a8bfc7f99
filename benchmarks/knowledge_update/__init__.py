"""Knowledge update versus capability retention: a miniature of the DiSC paper's Figure 2.

Trains the same invented-news corpus (``corpus.py``, its story templates in ``stories.json``)
into a model with DiSC and the fine-tuning baselines, with LoRA and with full fine-tuning,
across learning rates, and measures for every run how much of the new knowledge the probes
find (multiple-choice accuracy) and how much of the post-trained behaviour is left (format
compliance, general-knowledge accuracy, KL to the base model on its own chat replies).

    python -m benchmarks.knowledge_update --quick            # minutes, the default model
    python -m benchmarks.knowledge_update                    # the full grid
    python -m benchmarks.knowledge_update --model tiny-smollm2 --quick --documents 4 --lrs 1e-3

Writes ``knowledge_update.json`` (raw numbers), ``knowledge_update.md`` (tables) and
``knowledge_update.png`` (the figure) to ``--out``.
"""
