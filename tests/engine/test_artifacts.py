"""Artifacts: standard PEFT layout, meta.json, identical reloads, refusal of foreign weights."""

from __future__ import annotations

import json

import pytest
import torch
from peft import PeftModel
from safetensors.torch import load_file

from disc_engine.adapters import new_lora_model
from disc_engine.artifacts import ArtifactError, artifact_kind, data_hash, load_artifact, read_meta, save_artifact
from disc_engine.models import load_model, load_tokenizer, model_checksum, resolve_model_path

DOCS = ["The Zorblat Company opened a factory in Lyon. It makes blue bicycles.",
        "Kelvin Ostrava won the chess open. He lives in Brno."]


def _ids(tiny_model):
    return torch.tensor([load_tokenizer(tiny_model)("Blue bicycles from Lyon.")["input_ids"]])


def _logits(model, ids):
    with torch.no_grad():
        return model(input_ids=ids).logits


def _nudge(model, amount=0.02):
    """Make a model's trainable weights differ from their initial values, deterministically."""
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(amount * torch.randn_like(p))


def _save(model, out_dir, tiny_model, **overrides):
    fields = dict(base_model=tiny_model, parent=None, method="disc", config={"method": "disc"},
                  data_hash=data_hash(DOCS), steps=2, metrics={"final_loss": 0.5},
                  report={"documents_total": 2}, tokenizer=load_tokenizer(tiny_model))
    fields.update(overrides)
    return save_artifact(model, out_dir, **fields)


@pytest.fixture
def lora_model(tiny_model):
    torch.manual_seed(0)
    model = new_lora_model(load_model(tiny_model), r=16, alpha=32, dropout=0.0)
    _nudge(model)
    return model.eval()


def test_lora_artifact_has_the_standard_peft_layout_and_meta(tiny_model, tmp_path, lora_model):
    path = _save(lora_model, tmp_path / "v1", tiny_model)

    assert artifact_kind(path) == "lora"
    config = json.loads((tmp_path / "v1" / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == tiny_model
    assert config["r"] == 16 and config["lora_alpha"] == 32
    assert {name.rsplit(".", 1)[-1] for name in config["target_modules"]} == {"q_proj", "k_proj", "v_proj", "o_proj",
                                             "gate_proj", "up_proj", "down_proj"}
    weights = load_file(tmp_path / "v1" / "adapter_model.safetensors")
    assert weights and all(key.startswith("base_model.model.") for key in weights)
    assert not any(".default." in key for key in weights)  # PEFT strips the adapter name

    meta = read_meta(path)
    assert meta["kind"] == "lora" and meta["base_model"] == tiny_model
    assert meta["base_model_checksum"] == model_checksum(tiny_model)
    assert meta["data_hash"] == data_hash(DOCS) != data_hash(list(reversed(DOCS)))
    assert meta["parent"] is None and meta["parent_meta"] is None
    assert (meta["method"], meta["steps"], meta["metrics"]) == ("disc", 2, {"final_loss": 0.5})
    assert meta["created_at"] and meta["engine_version"]
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left


def test_lora_artifact_reloads_to_identical_outputs(tiny_model, tmp_path, lora_model):
    path = _save(lora_model, tmp_path / "v1", tiny_model)
    ids = _ids(tiny_model)
    expected = _logits(lora_model, ids)
    assert not torch.allclose(expected, _logits(load_model(tiny_model), ids), atol=1e-4)

    plain = PeftModel.from_pretrained(load_model(tiny_model), path).eval()
    assert torch.equal(_logits(plain, ids), expected)
    loaded = load_artifact(path)
    assert isinstance(loaded, PeftModel) and not loaded.training
    assert torch.equal(_logits(loaded, ids), expected)


def test_an_adapter_is_never_applied_to_other_weights(tiny_model, tmp_path, lora_model):
    path = _save(lora_model, tmp_path / "v1", tiny_model)
    other = load_model(tiny_model)
    with torch.no_grad():
        other.model.norm.weight.mul_(1.5)
    other.save_pretrained(tmp_path / "other-base")

    with pytest.raises(ArtifactError, match="refusing to apply it to other weights"):
        load_artifact(path, base_model=str(tmp_path / "other-base"))


def test_full_artifact_reloads_and_detects_changed_weights(tiny_model, tmp_path):
    model = load_model(tiny_model)
    _nudge(model)
    path = _save(model, tmp_path / "full", tiny_model, method="sft")

    assert artifact_kind(path) == "full"
    assert (tmp_path / "full" / "config.json").is_file()
    assert (tmp_path / "full" / "tokenizer_config.json").is_file()
    meta = read_meta(path)
    assert meta["kind"] == "full" and meta["base_model_checksum"] == model_checksum(tiny_model)
    ids = _ids(tiny_model)
    loaded = load_artifact(path)
    assert not loaded.training
    assert torch.equal(_logits(loaded, ids), _logits(model.eval(), ids))

    other = load_model(tiny_model)
    other.save_pretrained(tmp_path / "full")  # same files, other weights
    with pytest.raises(ArtifactError, match="do not match the checksum"):
        load_artifact(path)


def test_child_meta_summarises_its_parent(tiny_model, tmp_path, lora_model):
    parent = _save(lora_model, tmp_path / "v1", tiny_model)
    child = _save(lora_model, tmp_path / "v2", tiny_model, parent=parent, data_hash=data_hash(["x"]))
    meta = read_meta(child)
    assert meta["parent"] == parent
    assert meta["parent_meta"]["data_hash"] == data_hash(DOCS)
    assert meta["parent_meta"]["kind"] == "lora"


def test_existing_artifacts_are_never_overwritten(tiny_model, tmp_path, lora_model):
    path = _save(lora_model, tmp_path / "v1", tiny_model)
    before = (tmp_path / "v1" / "meta.json").read_text()
    with pytest.raises(FileExistsError, match="already exists"):
        _save(lora_model, tmp_path / "v1", tiny_model, steps=99)
    assert (tmp_path / "v1" / "meta.json").read_text() == before
    (tmp_path / "empty").mkdir()
    assert read_meta(_save(lora_model, tmp_path / "empty", tiny_model))["kind"] == "lora"
    assert read_meta(path)["steps"] == 2


def test_a_directory_without_meta_is_not_an_artifact(tmp_path, tiny_model):
    with pytest.raises(ArtifactError, match="meta.json is missing"):
        read_meta(tmp_path)
    with pytest.raises(ArtifactError, match="not a DiSC artifact"):
        load_artifact(resolve_model_path(tiny_model))
