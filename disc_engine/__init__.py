"""DiSC — Distillation via Split Contexts — as a library.

A frozen teacher reads prefix + suffix, the trainable student reads the suffix alone, and the
student minimises KL(teacher ‖ student) over the suffix tokens: it absorbs what the context
told the teacher while staying close to the post-trained model everywhere else.

Public surface: ``disc_loss`` (and the baselines' losses), ``train`` with ``TrainConfig``,
artifacts (``save_artifact``, ``load_artifact``, ``read_meta``), model loading, and
``disc_engine.evaluation``. This package knows nothing of HTTP, SQL or Celery.
"""

from disc_engine.artifacts import artifact_kind, load_artifact, read_meta, save_artifact
from disc_engine.loss import disc_loss, disc_loss_reference, sft_kl_loss, sft_loss
from disc_engine.models import (DEFAULT_MODEL, TINY_MODEL, load_model, load_tokenizer, model_checksum,
                                resolve_model_path)
from disc_engine.splitting import EmptyDocumentError, choose_split_indices, prepare_document, split_sentences
from disc_engine.trainer import Progress, TrainConfig, TrainingCancelled, TrainReport, TrainResult, train

__all__ = [
    "DEFAULT_MODEL", "TINY_MODEL", "EmptyDocumentError", "Progress", "TrainConfig", "TrainReport", "TrainResult",
    "TrainingCancelled", "artifact_kind", "choose_split_indices", "disc_loss", "disc_loss_reference",
    "load_artifact", "load_model", "load_tokenizer", "model_checksum", "prepare_document", "read_meta",
    "resolve_model_path", "save_artifact", "sft_kl_loss", "sft_loss", "split_sentences", "train",
]
