"""Models loaded once per worker process and kept for its lifetime."""

from __future__ import annotations

import threading
from typing import Any

_model_lock = threading.Lock()
_base_models: dict[tuple[str, str], Any] = {}
_tokenizers: dict[str, Any] = {}


def cached_base_model(name: str, device: str):
    """The base model in eval mode, loaded on first use and kept for the process's lifetime.

    Never modified: adapters are applied to separate copies (``load_artifact``).
    """
    from disc_engine.models import load_model

    key = (name, device)
    with _model_lock:
        if key not in _base_models:
            _base_models[key] = load_model(name, device=device).requires_grad_(False)
        return _base_models[key]


def cached_tokenizer(name: str):
    from disc_engine.models import load_tokenizer

    with _model_lock:
        if name not in _tokenizers:
            _tokenizers[name] = load_tokenizer(name)
        return _tokenizers[name]


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
