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

    assert set(Hyperparameters.model_fields) <= set(TrainConfig.help())


@pytest.mark.parametrize("values", [{"learning_rate": float("inf")}, {"lora_alpha": float("nan")},
                                    {"epochs": True}, {"seed": -1}, {"checkpoint_every": 5}])
def test_values_the_engine_would_refuse_are_refused_up_front(values):
    with pytest.raises(ValidationError):
        Hyperparameters.model_validate(values)


def test_metadata_with_nan_is_refused():
    with pytest.raises(ValidationError, match="NaN"):
        UpdateCreate.model_validate({"documents": [{"text": "a", "metadata": {"x": float("nan")}}]})


def test_the_api_does_not_import_torch_or_the_worker():
    code = ("import sys, service.app, service.api.routes.models; "
            "bad = [m for m in ('torch', 'transformers', 'worker', 'disc_engine') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)
