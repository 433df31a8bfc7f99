"""Evaluation of a model version: knowledge gained from the update's documents, capabilities kept.

``evaluate_update`` gives every version its scores (``RESULT_KEYS``, described in ``METRICS``);
the individual measures are exported for benchmarks.
"""

from ._common import model_fingerprint
from .compliance import CHECKERS, check_reply, compliance_results, format_compliance
from .knowledge import GapScore, closed_book_gap, closed_book_gaps
from .probes import option_scores, probe_accuracy, probe_predictions, validate_probe
from .retention import base_correct_questions, general_mc_accuracy, reference_responses, retention_kl
from .suite import KNOWLEDGE_KEYS, METRICS, RESULT_KEYS, RETENTION_KEYS, evaluate_update

__all__ = [
    "CHECKERS", "GapScore", "KNOWLEDGE_KEYS", "METRICS", "RESULT_KEYS", "RETENTION_KEYS",
    "base_correct_questions", "check_reply", "closed_book_gap", "closed_book_gaps", "compliance_results",
    "evaluate_update", "format_compliance", "general_mc_accuracy", "model_fingerprint", "option_scores",
    "probe_accuracy", "probe_predictions", "reference_responses", "retention_kl", "validate_probe",
]
