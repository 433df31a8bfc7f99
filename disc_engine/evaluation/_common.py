"""Shared machinery of the evaluation: chat prompts, padded batches, greedy decoding, model
fingerprints and the on-disk cache.

Every function here needs of a model only a forward call that returns ``.logits`` (and
``.past_key_values`` for decoding) and a ``parameters()`` iterator that says its device, so
plain transformers models, PEFT models and wrappers that switch adapters inside ``forward``
are all evaluated the same way.
"""

from __future__ import annotations

import hashlib
import inspect
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from disc_engine.files import write_bytes_atomically

DATA_DIR = Path(__file__).parent / "data"

# End-of-turn markers of common chat formats, used in addition to the tokenizer's eos token.
_TURN_END_TOKENS = ("<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>", "<|endoftext|>")

# A fixed input whose logits identify a model's behaviour (see ``model_fingerprint``).
_FINGERPRINT_TEXT = (
    "The quick brown fox jumps over the lazy dog. 1, 2, 3! Quelle heure est-il? "
    "def f(x): return x * 2  # Paris, Tokyo, 1969."
)


def load_json(name: str) -> Any:
    return json.loads((DATA_DIR / name).read_text(encoding="utf-8"))


def device_of(model) -> torch.device:
    return next(iter(model.parameters())).device


def chat_prompt_ids(tokenizer, user_message: str) -> list[int]:
    """Token ids of one user turn in the tokenizer's chat format, ready for the assistant's reply."""
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError(
            "the tokenizer has no chat template: the evaluation reads prompts in the model's chat "
            "format, so it needs a post-trained (chat) tokenizer")
    rendered = tokenizer.apply_chat_template(
        [{"role": "user", "content": user_message}], add_generation_prompt=True, tokenize=False)
    # The rendered text already holds the format's special tokens (BOS included, if any).
    return encode(tokenizer, rendered)


def encode(tokenizer, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def pad_token_id(tokenizer) -> int:
    if tokenizer.pad_token_id is not None:
        return tokenizer.pad_token_id
    if tokenizer.eos_token_id is not None:
        return tokenizer.eos_token_id
    return 0


def right_padded(sequences: list[list[int]], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """A right-padded batch: with causal attention the real tokens' logits ignore the padding."""
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        ids[row, :len(seq)] = torch.tensor(seq, dtype=torch.long)
        mask[row, :len(seq)] = 1
    return ids.to(device), mask.to(device)


def left_padded(sequences: list[list[int]], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """A left-padded batch, so that every row's last position is its last real token."""
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        ids[row, width - len(seq):] = torch.tensor(seq, dtype=torch.long)
        mask[row, width - len(seq):] = 1
    return ids.to(device), mask.to(device)


def batch_logits(model, sequences: list[list[int]], pad_id: int) -> torch.Tensor:
    """Logits of a right-padded batch, shape (rows, width, vocabulary), in the model's dtype."""
    ids, mask = right_padded(sequences, pad_id, device_of(model))
    positions = torch.arange(ids.shape[1], device=ids.device).expand_as(ids)
    return model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=False).logits


def log_probs_at(logits: torch.Tensor, spans: list[tuple[int, int]]) -> torch.Tensor:
    """fp32 log-probabilities of row i at positions ``spans[i] = [a, b)``, rows concatenated."""
    return torch.log_softmax(torch.cat([logits[row, a:b] for row, (a, b) in enumerate(spans)]).float(), dim=-1)


def last_logit_only(model) -> dict:
    """Forward kwargs that skip the output projection for all but the last position, where the
    model supports it: a prompt read only to continue it needs no logits of its own."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    try:
        accepts = "logits_to_keep" in inspect.signature(inner.forward).parameters
    except (TypeError, ValueError):
        accepts = False
    return {"logits_to_keep": 1} if accepts else {}


def stop_token_ids(tokenizer, model=None) -> set[int]:
    """Tokens that end an assistant turn: eos, the chat format's end-of-turn marker, and the
    model's own generation config's eos ids."""
    stops: set[int] = set()
    if tokenizer.eos_token_id is not None:
        stops.add(int(tokenizer.eos_token_id))
    vocab = tokenizer.get_vocab()
    stops.update(int(vocab[token]) for token in _TURN_END_TOKENS if token in vocab)
    generation_config = getattr(model, "generation_config", None)
    configured = getattr(generation_config, "eos_token_id", None)
    if isinstance(configured, int):
        stops.add(configured)
    elif configured:
        stops.update(int(t) for t in configured)
    if not stops:
        raise ValueError("the tokenizer has no eos token: cannot tell where a reply ends")
    return stops


@dataclass(frozen=True)
class Generation:
    tokens: list[int]   # the reply, up to and including the stop token when one was emitted
    ended: bool         # the model closed its turn within the token budget


@torch.inference_mode()
def greedy_generate(model, tokenizer, prompts: list[list[int]], max_new_tokens: int,
                    batch_size: int = 16) -> list[Generation]:
    """Greedy replies to token-id prompts, batched with left padding.

    A plain decoding loop over ``forward`` with a KV cache (rather than ``generate``) so that any
    causal LM module works, including wrappers that switch a PEFT adapter inside ``forward``.
    """
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
    stops = stop_token_ids(tokenizer, model)
    pad_id = pad_token_id(tokenizer)
    device = device_of(model)
    results: list[Generation | None] = [None] * len(prompts)
    # Similar lengths together waste less compute on padding.
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        batch = [prompts[i] for i in rows]
        ids, mask = left_padded(batch, pad_id, device)
        # Left padding shifts each row's start; positions count real tokens only, as they
        # would for the prompt alone.
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        output = model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True,
                       **last_logit_only(model))
        replies: list[list[int]] = [[] for _ in batch]
        done = [False] * len(batch)
        for step in range(max_new_tokens):
            next_tokens = output.logits[:, -1].argmax(-1)
            for row, token in enumerate(next_tokens.tolist()):
                if not done[row]:
                    replies[row].append(token)
                    done[row] = token in stops
            if all(done) or step == max_new_tokens - 1:
                break
            mask = torch.cat([mask, torch.ones((len(batch), 1), dtype=mask.dtype, device=device)], dim=1)
            positions = positions[:, -1:] + 1
            output = model(input_ids=next_tokens.unsqueeze(1), attention_mask=mask, position_ids=positions,
                           past_key_values=output.past_key_values, use_cache=True)
        for row, index in enumerate(rows):
            results[index] = Generation(tokens=replies[row], ended=done[row])
    return results  # type: ignore[return-value]


@torch.inference_mode()
def model_fingerprint(model, tokenizer) -> str:
    """An identifier of what a model computes, for cache keys.

    The sha256 of the model's fp32 logits on a fixed input. It costs one short forward (hashing
    the weights of a 135M model takes a second; of a 7B model, minutes), and, unlike a hash of
    weights, it tells apart two views of the same weights (a PEFT model with its adapter on and
    off) and sees an untrained adapter as the model it does not change. The same model on
    another machine may give other bits: that costs a cache miss, never a wrong hit.
    """
    ids = torch.tensor([encode(tokenizer, _FINGERPRINT_TEXT)], device=device_of(model))
    logits = model(input_ids=ids, use_cache=False).logits.float().cpu().contiguous()
    digest = hashlib.sha256(logits.numpy().tobytes())
    digest.update(str(tuple(logits.shape)).encode())
    return digest.hexdigest()


def tokenizer_identity(tokenizer) -> str:
    """What a cache entry of token ids depends on in the tokenizer."""
    digest = hashlib.sha256()
    digest.update(str(getattr(tokenizer, "chat_template", "")).encode())
    digest.update(str(len(tokenizer)).encode())
    digest.update(str(encode(tokenizer, _FINGERPRINT_TEXT)).encode())
    return digest.hexdigest()


def cache_key(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


class _FolderValues:
    """Small values as files of one folder, each written atomically so that concurrent workers
    never read half of one."""

    def __init__(self, root: Path):
        self.root = root

    def get_bytes(self, name: str) -> bytes | None:
        try:
            return (self.root / name).read_bytes()
        except FileNotFoundError:
            return None

    def put_bytes(self, name: str, data: bytes) -> None:
        write_bytes_atomically(self.root / name, data)


class DiskCache:
    """JSON values, one per (kind, key), under ``evaluation/`` of a store of small values.

    ``cache_dir`` is a folder, or any object with ``get_bytes(name)``/``put_bytes(name, data)`` —
    the service passes its artifact store, so every worker host shares one cache. ``None``
    caches nothing.
    """

    def __init__(self, cache_dir):
        if cache_dir is None or (hasattr(cache_dir, "get_bytes") and hasattr(cache_dir, "put_bytes")):
            self.values = cache_dir
        else:
            self.values = _FolderValues(Path(cache_dir))

    @property
    def enabled(self) -> bool:
        return self.values is not None

    def get(self, kind: str, key: str) -> Any | None:
        if self.values is None:
            return None
        data = self.values.get_bytes(f"evaluation/{kind}-{key[:40]}.json")
        try:
            record = json.loads(data) if data is not None else None
        except json.JSONDecodeError:
            return None
        return record["value"] if record is not None and record.get("key") == key else None

    def put(self, kind: str, key: str, value: Any) -> None:
        if self.values is not None:
            self.values.put_bytes(f"evaluation/{kind}-{key[:40]}.json",
                                  json.dumps({"key": key, "value": value}).encode("utf-8"))

    def memoize(self, kind: str, model, tokenizer, model_key: str | None, parts: tuple,
                compute: Callable[[], Any]) -> Any:
        """``compute()`` once per (kind, model identity, tokenizer, parts).

        The model is fingerprinted (one forward pass) only when caching and no ``model_key`` —
        a checkpoint checksum or an artifact hash — names it.
        """
        if not self.enabled:
            return compute()
        key = cache_key(kind, model_key or model_fingerprint(model, tokenizer), tokenizer_identity(tokenizer),
                        *parts)
        cached = self.get(kind, key)
        if cached is not None:
            return cached
        value = compute()
        self.put(kind, key, value)
        return value
