"""The model card written beside a pulled artifact (``README.md``), from the version's record.

It follows the Hugging Face conventions: YAML front matter with ``base_model``,
``library_name`` (``peft`` for an adapter, ``transformers`` for merged weights), ``tags`` and
``pipeline_tag``, then a short text. What DiSC knows about the version — lineage, version,
parent, method, state, checksum, scores — sits under a ``disc`` key of its own. The card names
models, never files: a base recorded as a local path of the training machine is shown by its
folder name only.
"""

from __future__ import annotations

import json
from pathlib import PurePosixPath, PureWindowsPath

from service.schemas import VersionPublic

CARD_FILE = "README.md"

# Scores shown in the card's table, in reading order: what was learned, then what was kept.
CARD_SCORES = (
    ("probe_accuracy_before", "probe accuracy, parent"),
    ("probe_accuracy_after", "probe accuracy, this version"),
    ("knowledge_gap_closed_fraction", "share of the closed-book gap closed"),
    ("retention_kl_vs_parent", "KL to the parent (lower is better)"),
    ("retention_kl_vs_base", "KL to the base (lower is better)"),
    ("general_mc_accuracy", "general questions answered"),
    ("format_compliance", "instruction format followed"),
)


def model_name(base_model: str) -> str:
    """A model's name as a card may show it: hub ids and product names as they are, paths by their last part."""
    looks_like_path = base_model.startswith(("/", "~", ".", "\\")) or ":\\" in base_model \
        or base_model.count("/") > 1 or "\\" in base_model
    if not looks_like_path:
        return base_model
    path = PureWindowsPath(base_model) if "\\" in base_model else PurePosixPath(base_model)
    return path.name or "unnamed-base-model"


def _yaml(value) -> str:
    # JSON scalars and flow collections are valid YAML; they keep quoting and escapes exact.
    return json.dumps(value, ensure_ascii=False, allow_nan=False)


def render_model_card(version: VersionPublic, *, merged: bool = False) -> str:
    base = model_name(version.base_model)
    kind = "merged weights" if merged else ("a LoRA adapter" if version.artifact_kind == "lora" else "a checkpoint")
    tags = ["disc", "knowledge-update", version.method]
    if merged:
        tags.append("merged")
    elif version.artifact_kind == "lora":
        tags += ["lora", "peft"]
    tags = list(dict.fromkeys(tags))  # the method "disc" is also the product's tag
    library = "peft" if version.artifact_kind == "lora" and not merged else "transformers"
    scores = {name: value for name, value in sorted(version.scores.items())
              if value is None or value == value}  # NaN has no YAML spelling the hub reads
    front = [
        "---",
        f"base_model: {_yaml(base)}",
        f"base_model_relation: {_yaml('adapter' if library == 'peft' else 'finetune')}",
        f"library_name: {_yaml(library)}",
        "pipeline_tag: \"text-generation\"",
        f"tags: {_yaml(tags)}",
        "disc:",
        f"  lineage: {_yaml(version.lineage)}",
        f"  version: {version.version}",
        f"  parent_version: {_yaml(version.parent_version)}",
        f"  method: {_yaml(version.method)}",
        f"  state: {_yaml(version.state)}",
        f"  artifact_kind: {_yaml(version.artifact_kind)}",
        f"  artifact_sha256: {_yaml(version.artifact_sha256)}",
        f"  merged: {_yaml(merged)}",
        f"  job_id: {_yaml(version.job_id)}",
        f"  created_at: {_yaml(version.created_at.isoformat())}",
        f"  scores: {_yaml(scores)}",
        "---",
    ]
    parent = f"version {version.parent_version}" if version.parent_version is not None else f"the base model {base}"
    body = [
        "",
        f"# {version.lineage} v{version.version}",
        "",
        f"Version {version.version} of the lineage `{version.lineage}`, {kind} over `{base}`, trained with "
        f"`{version.method}` from {parent} by the DiSC update service (Distillation via Split Contexts: "
        "the parent reads each document with its preceding context and the new version learns to "
        "predict the same text without it).",
        "",
    ]
    if merged:
        body += ["The adapter is merged into the base: load it as a plain `transformers` model.", ""]
    elif library == "peft":
        body += ["Load it with `PeftModel.from_pretrained(base, this_folder)`, or serve it with vLLM's "
                 "`--enable-lora --lora-modules NAME=this_folder`.", ""]
    rows = [(label, version.scores.get(key)) for key, label in CARD_SCORES if key in version.scores]
    if rows:
        body += ["| score | value |", "|---|---|"]
        body += [f"| {label} | {'—' if value is None else f'{value:.4g}'} |" for label, value in rows]
        body.append("")
    body.append(f"State when pulled: {version.state}{', latest' if version.is_latest else ''}. "
                f"Artifact sha256 `{version.artifact_sha256}`.")
    return "\n".join(front + body) + "\n"
