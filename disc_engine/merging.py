"""A LoRA artifact merged into its base: plain transformers weights for engines without adapters.

The base is the one named in the artifact's meta.json and must hash to the checksum recorded
at training time (``load_artifact`` refuses other weights). ``merge_and_unload`` folds
``B·A·alpha/r`` into each adapted weight, so the merged model computes what base + adapter
computes, up to float rounding.
"""

from __future__ import annotations

import os
from pathlib import Path

from disc_engine.artifacts import ArtifactError, artifact_kind, read_meta
from disc_engine.files import atomic_directory


def merge_adapter(artifact_dir: str | os.PathLike, out_dir: str | os.PathLike) -> str:
    """Write ``out_dir`` (absent or empty): the merged model as safetensors, its config and the tokenizer."""

    from peft import PeftModel

    from disc_engine.artifacts import load_artifact
    from disc_engine.models import load_tokenizer

    if artifact_kind(artifact_dir) != "lora":
        raise ArtifactError(f"{artifact_dir} is a full checkpoint already; it needs no merging")
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"{out} already exists and is not empty")
    out.parent.mkdir(parents=True, exist_ok=True)
    base = read_meta(artifact_dir)["base_model"]
    model = load_artifact(artifact_dir)
    assert isinstance(model, PeftModel)
    merged = model.merge_and_unload()
    with atomic_directory(out, replace="empty") as staging:
        # The config would otherwise carry the local folder the base was loaded from.
        merged.config.name_or_path = ""
        merged.save_pretrained(staging, safe_serialization=True)
        load_tokenizer(base).save_pretrained(staging)
    return str(out)
