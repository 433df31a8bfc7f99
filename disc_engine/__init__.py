"""DiSC — Distillation via Split Contexts — as a library.

A frozen teacher reads prefix + suffix, the trainable student reads the suffix alone, and the
student minimises KL(teacher ‖ student) over the suffix tokens: it absorbs what the context
told the teacher while staying close to the post-trained model everywhere else.

Public surface: ``disc_loss`` (and the baselines' losses), ``train`` with ``TrainConfig``,
artifacts (``save_artifact``, ``load_artifact``, ``read_meta``), model loading, and
``disc_engine.evaluation``. This package knows nothing of HTTP, SQL or Celery.

Names are resolved lazily (PEP 562) so that the light modules, ``disc_engine.options``
(``TrainConfig``, ``ProbeSpec``) and ``disc_engine.objectives`` (the method registry), can be
used for validation without importing torch.
"""

from importlib import import_module

_EXPORTS = {
    "disc_engine.loss": ("disc_loss", "disc_loss_reference", "per_position_kl", "sft_loss", "sft_kl_loss"),
    "disc_engine.options": ("ProbeSpec", "TrainConfig", "validate_probe"),
    "disc_engine.objectives": ("OBJECTIVES", "Objective", "get_objective"),
    "disc_engine.trainer": ("Progress", "TrainReport", "TrainResult", "TrainingCancelled", "train"),
    "disc_engine.artifacts": ("artifact_kind", "load_artifact", "read_meta", "save_artifact"),
    "disc_engine.models": ("DEFAULT_MODEL", "TINY_MODEL", "load_model", "load_tokenizer", "model_checksum",
                           "resolve_model_path"),
    "disc_engine.splitting": ("EmptyDocumentError", "choose_split_indices", "prepare_document", "split_sentences"),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_MODULE_OF)


def __getattr__(name: str):
    if name not in _MODULE_OF:
        raise AttributeError(f"module 'disc_engine' has no attribute {name!r}")
    value = getattr(import_module(_MODULE_OF[name]), name)
    globals()[name] = value  # resolve once
    return value
