"""The API's hyperparameter allow-list agrees with the engine's TrainConfig, and the API never loads torch."""

from __future__ import annotations

import subprocess
import sys

import pytest
from pydantic import ValidationError

from service.schemas import Hyperparameters, UpdateCreate

# The widest values the API accepts for each option: the engine must accept every one of them.
API_EXTREMES = [
    {"learning_rate": 1.0}, {"learning_rate": 1e-9}, {"epochs": 1}, {"epochs": 20}, {"num_splits": 1},
    {"num_splits": 64}, {"num_splits": "all"}, {"temperature": 10}, {"temperature": 1e-6}, {"beta": 0},
    {"beta": 10}, {"full_finetune": True}, {"lora_r": 1}, {"lora_r": 256}, {"lora_alpha": 0.5},
    {"lora_dropout": 0}, {"lora_dropout": 0.999}, {"seed": 0},
]


@pytest.mark.parametrize("values", API_EXTREMES)
def test_every_value_the_api_accepts_the_engine_accepts(values):
    from disc_engine.trainer import TrainConfig

    accepted = Hyperparameters.model_validate(values).model_dump(exclude_none=True)
    assert TrainConfig.from_dict(accepted).to_dict().items() >= accepted.items()


def test_allow_list_is_a_subset_of_the_engine_options():
    from disc_engine.trainer import TrainConfig

    assert set(Hyperparameters.model_fields) <= set(TrainConfig.model_fields)
    for name, field in Hyperparameters.model_fields.items():
        assert field.description == TrainConfig.model_fields[name].description


@pytest.mark.parametrize("values", [{"learning_rate": float("inf")}, {"lora_alpha": float("nan")},
                                    {"epochs": True}, {"seed": -1}, {"seed": 2**63}, {"epochs": 21},
                                    {"checkpoint_every": 5}])
def test_values_the_engine_would_refuse_are_refused_up_front(values):
    with pytest.raises(ValidationError):
        Hyperparameters.model_validate(values)


def test_metadata_with_nan_is_refused():
    with pytest.raises(ValidationError, match="NaN"):
        UpdateCreate.model_validate({"documents": [{"text": "a", "metadata": {"x": float("nan")}}]})


def test_probes_the_engine_would_refuse_are_refused_up_front():
    document = {"text": "Paris is the capital of France.", "id": "d"}
    with pytest.raises(ValidationError, match="same answer"):
        UpdateCreate.model_validate({"documents": [document], "probes": [
            {"question": "Capital?", "options": ["Paris", "Paris "], "answer": 0}]})


def test_the_api_does_not_import_torch_or_the_worker():
    # The engine's torch-free modules (options, objectives) are the API's to use.
    code = ("import sys, service.app, service.api.routes.models; "
            "bad = [m for m in ('torch', 'transformers', 'peft', 'worker', 'disc_engine.trainer') "
            "if m in sys.modules]; assert not bad, bad; assert 'disc_engine.options' in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("document, field", [
    ({"text": "a\x00b"}, "text"), ({"text": "lone \ud800 half"}, "text"), ({"text": "ok", "id": "x\x00"}, "id"),
    ({"text": "ok", "metadata": {"k": ["\x00"]}}, "metadata"), ({"text": "ok", "metadata": {"\udc00": 1}}, "metadata"),
])
def test_text_a_database_cannot_store_is_refused_naming_its_field(document, field):
    with pytest.raises(ValidationError) as caught:
        UpdateCreate.model_validate({"documents": [document]})
    assert caught.value.errors()[0]["loc"] == ("documents", 0, field)


def test_nul_in_a_probe_is_refused():
    with pytest.raises(ValidationError, match="NUL"):
        UpdateCreate.model_validate({"documents": [{"text": "A. B."}], "probes": [
            {"question": "Q\x00?", "options": ["a", "b"], "answer": 0}]})
