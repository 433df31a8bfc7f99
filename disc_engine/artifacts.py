"""Trained model artifacts: a PEFT adapter directory or a full transformers checkpoint, plus meta.json.

A LoRA artifact is PEFT's standard layout (adapter_config.json + adapter_model.safetensors,
adapter name "default"), so ``PeftModel.from_pretrained(base, dir)`` and vLLM's
``--lora-modules`` read it as is. ``meta.json`` beside the weights says what the artifact is:
the base model and its checksum (an adapter applied to other weights is refused), the parent,
the method and configuration, the training data's hash, metrics and the per-document report.
Artifacts are written into a temporary directory beside the target and renamed into place, so
a reader never sees half of one.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from disc_engine.files import atomic_directory

META_FILE = "meta.json"
ADAPTER_CONFIG_FILE = "adapter_config.json"
META_FORMAT = 1


class ArtifactError(ValueError):
    """An artifact directory is missing, malformed, or does not match the weights it needs."""


def engine_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("disc-update-service")
    except PackageNotFoundError:
        return "unknown"


def data_hash(documents: list[str]) -> str:
    """sha256 over the documents, each length-prefixed so that boundaries count."""
    digest = hashlib.sha256()
    for text in documents:
        encoded = text.encode("utf-8")
        digest.update(len(encoded).to_bytes(8, "big"))
        digest.update(encoded)
    return digest.hexdigest()


def read_meta(path: str | os.PathLike) -> dict:
    meta_path = Path(path) / META_FILE
    if not meta_path.is_file():
        raise ArtifactError(f"{path} is not a DiSC artifact: {META_FILE} is missing")
    try:
        return json.loads(meta_path.read_text())
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"{meta_path} is not valid JSON: {exc}") from exc


def artifact_kind(path: str | os.PathLike) -> str:
    """``"lora"`` for an adapter directory, ``"full"`` for a complete checkpoint."""
    meta_kind = read_meta(path).get("kind")
    if meta_kind in ("lora", "full"):
        return meta_kind
    if (Path(path) / ADAPTER_CONFIG_FILE).is_file():
        return "lora"
    if (Path(path) / "config.json").is_file():
        return "full"
    raise ArtifactError(f"{path} holds neither an adapter nor a model checkpoint")


def parent_summary(parent: str | None) -> dict | None:
    """The few facts about a parent artifact worth carrying into its child's meta.json."""
    if parent is None:
        return None
    meta = read_meta(parent)
    return {key: meta.get(key) for key in
            ("kind", "method", "base_model", "data_hash", "steps", "created_at", "parent")}


def save_artifact(model, out_dir: str | os.PathLike, *, base_model: str, parent: str | None,
                  method: str, config: dict, data_hash: str, steps: int, metrics: dict,
                  report: dict, tokenizer=None, base_model_checksum: str | None = None) -> str:
    """Write ``model`` (a PeftModel or a full model) and its meta.json to ``out_dir``, atomically.

    ``base_model`` is the name users know the base by (a hub id, a local path or one of the
    product's model names); it becomes the adapter's ``base_model_name_or_path``.
    ``base_model_checksum`` saves hashing the base again when the caller already has it.
    Returns the artifact directory as a string.
    """
    from peft import PeftModel

    from disc_engine.adapters import STUDENT_ADAPTER
    from disc_engine.models import model_checksum

    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"artifact directory {out} already exists and is not empty")
    with atomic_directory(out, replace="empty") as staging:
        meta: dict[str, Any] = {
            "format": META_FORMAT,
            "base_model": base_model,
            "base_model_checksum": base_model_checksum or model_checksum(base_model),
            "parent": os.path.abspath(parent) if parent is not None else None,
            "parent_meta": parent_summary(parent),
            "method": method,
            "config": config,
            "data_hash": data_hash,
            "steps": steps,
            "metrics": metrics,
            "report": report,
            "created_at": _dt.datetime.now(_dt.UTC).isoformat(),
            "engine_version": engine_version(),
        }
        if isinstance(model, PeftModel):
            meta["kind"] = "lora"
            _save_adapter(model, staging, base_model, STUDENT_ADAPTER)
            meta["lora"] = json.loads((staging / ADAPTER_CONFIG_FILE).read_text())
        else:
            meta["kind"] = "full"
            model.save_pretrained(staging)
            if tokenizer is not None:
                tokenizer.save_pretrained(staging)
            meta["weights_checksum"] = model_checksum(str(staging))
        (staging / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True))
    return str(out)


def load_artifact(path: str | os.PathLike, *, base_model: str | None = None,
                  device: str = "cpu", merged: bool = False):
    """Load an artifact for inference (eval mode).

    LoRA: the base (``base_model`` or the one named in meta.json) with the adapter applied, as a
    PeftModel; the base's checksum must equal the one recorded at training time. With
    ``merged`` the adapter is folded into (a private copy of) the base's weights instead: a plain
    model that computes the same function without the adapter's extra matrix products per layer
    — what scoring wants. Full: the checkpoint itself, after checking its weights against the
    recorded checksum.
    """
    from peft import PeftModel

    from disc_engine.models import load_model, model_checksum

    meta = read_meta(path)
    kind = artifact_kind(path)
    if kind == "full":
        recorded = meta.get("weights_checksum")
        if recorded is not None and model_checksum(str(path)) != recorded:
            raise ArtifactError(f"the weights in {path} do not match the checksum in its {META_FILE}")
        return load_model(str(path), device=device)
    base = base_model or meta.get("base_model")
    if not base:
        raise ArtifactError(f"{path}/{META_FILE} names no base model; pass base_model")
    recorded = meta.get("base_model_checksum")
    actual = model_checksum(base)
    if recorded is not None and actual != recorded:
        raise ArtifactError(
            f"adapter {path} was trained on a base with checksum {recorded[:12]}…, "
            f"but {base} has checksum {actual[:12]}…: refusing to apply it to other weights")
    model = PeftModel.from_pretrained(load_model(base, device=device), str(path))
    if merged:
        return model.merge_and_unload().to(device).eval()
    return model.to(device).eval()


def _save_adapter(model, staging: Path, base_model: str, adapter_name: str) -> None:
    peft_config = model.peft_config[adapter_name]
    original = peft_config.base_model_name_or_path
    # PEFT records the resolved local path of the base; readers (vLLM, other machines) need
    # the name the base is known by.
    peft_config.base_model_name_or_path = base_model
    try:
        # Embeddings are never adapted or resized here; "auto" would look the base up online.
        model.save_pretrained(staging, selected_adapters=[adapter_name], save_embedding_layers=False)
    finally:
        peft_config.base_model_name_or_path = original
