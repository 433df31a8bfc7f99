"""The promotion policy: whether a new version becomes ``latest``."""

from __future__ import annotations

from dataclasses import dataclass

from store.settings import Settings
from worker.outcomes import JobFailed

POLICIES = ("auto", "always", "never")


@dataclass(frozen=True)
class PromotionDecision:
    promote: bool
    reason: str


def check_policy(promotion: dict | None) -> None:
    """Refuse an unknown policy before training, not after it."""
    if promotion and promotion.get("policy", "auto") not in POLICIES:
        raise JobFailed("invalid_input", f"promotion policy must be one of {', '.join(POLICIES)}")


def decide_promotion(promotion: dict | None, scores: dict[str, float | None],
                     settings: Settings) -> PromotionDecision:
    """Whether a new version becomes ``latest``.

    ``auto`` (the default) promotes only a version that kept the parent's and the base's
    behaviour within bounds (``retention_kl_vs_parent``/``_vs_base`` at most, format compliance
    at least); the job's ``promotion`` object may tighten or loosen each bound. A score that is
    missing counts as out of bounds: it cannot be shown to be within them.
    """
    promotion = promotion or {}
    policy = promotion.get("policy", "auto")
    if policy not in POLICIES:
        raise JobFailed("invalid_input", f"promotion policy must be one of {', '.join(POLICIES)}; got {policy!r}")
    if policy == "always":
        return PromotionDecision(True, "policy 'always'")
    if policy == "never":
        return PromotionDecision(False, "policy 'never'")

    def bound(key: str, default: float) -> float:
        value = promotion.get(key)
        return default if value is None else float(value)

    bounds = [
        ("retention_kl_vs_parent", "max", bound("max_retention_kl_vs_parent",
                                                settings.promote_max_retention_kl_vs_parent)),
        ("retention_kl_vs_base", "max", bound("max_retention_kl_vs_base", settings.promote_max_retention_kl_vs_base)),
        ("format_compliance", "min", bound("min_format_compliance", settings.promote_min_format_compliance)),
    ]
    misses = []
    for name, kind, limit in bounds:
        value = scores.get(name)
        if value is None:
            misses.append(f"{name} was not measured")
        elif kind == "max" and value > limit:
            misses.append(f"{name} {value:.4g} > {limit:g}")
        elif kind == "min" and value < limit:
            misses.append(f"{name} {value:.4g} < {limit:g}")
    if misses:
        return PromotionDecision(False, "kept as a candidate: " + "; ".join(misses))
    return PromotionDecision(True, "within the retention bounds of policy 'auto'")
