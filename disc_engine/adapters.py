"""LoRA setup for training: a fresh adapter on the base, or one that continues a parent adapter.

The teacher never costs a second copy of the base weights. For a first version the teacher is
the base with the adapter switched off (``teacher=None`` for the losses). For a chained version
the parent adapter is loaded a second time, frozen, under the name ``"parent"``; the trainable
copy keeps the name ``"default"`` so that the saved artifact has PEFT's standard layout.
"""

from __future__ import annotations

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from torch import nn

STUDENT_ADAPTER = "default"
PARENT_ADAPTER = "parent"


def new_lora_model(model, *, r: int, alpha: int, dropout: float) -> PeftModel:
    config = LoraConfig(
        r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules="all-linear",
        bias="none", task_type="CAUSAL_LM",
    )
    return get_peft_model(model, config, adapter_name=STUDENT_ADAPTER)


def chained_lora_model(model, parent_dir: str) -> PeftModel:
    """The base with the parent adapter twice: trainable (the student) and frozen (the teacher)."""
    peft_model = PeftModel.from_pretrained(model, parent_dir, adapter_name=STUDENT_ADAPTER,
                                           is_trainable=True)
    peft_model.load_adapter(parent_dir, adapter_name=PARENT_ADAPTER, is_trainable=False)
    peft_model.set_adapter(STUDENT_ADAPTER)
    return peft_model


class ParentAdapterTeacher(nn.Module):
    """The frozen parent adapter, run through the student's own PeftModel.

    Each call activates the parent adapter (frozen, eval mode) under ``no_grad`` and restores the
    student adapter and its training mode afterwards, even when the forward raises.
    """

    def __init__(self, peft_model: PeftModel, adapter_name: str = PARENT_ADAPTER):
        super().__init__()
        # Kept out of the module tree so the teacher never exposes the student's parameters.
        object.__setattr__(self, "_peft_model", peft_model)
        self.adapter_name = adapter_name

    @property
    def config(self):
        return self._peft_model.config

    def get_base_model(self):
        # Lets callers inspect the underlying forward's signature (e.g. for ``logits_to_keep``).
        return self._peft_model.get_base_model()

    def parameters(self, recurse: bool = True):
        # Where the teacher's weights live (callers read the device from them); never to train.
        return self._peft_model.parameters(recurse)

    def forward(self, *args, **kwargs):
        model = self._peft_model
        student_adapter = model.active_adapter
        was_training = model.training
        model.set_adapter(self.adapter_name, inference_mode=True)
        model.eval()
        try:
            with torch.no_grad():
                return model(*args, **kwargs)
        finally:
            model.set_adapter(student_adapter)
            model.train(was_training)

    def train(self, mode: bool = True):
        # The teacher is frozen: switching it to training mode must not touch the student.
        self.training = False
        return self
