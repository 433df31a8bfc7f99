"""The promotion policy on fixed scores, and the scores an evaluation yields."""

from __future__ import annotations

import pytest

from worker.evaluation import numeric_scores
from worker.outcomes import JobFailed
from worker.promotion import decide_promotion


class TestPromotionPolicy:
    """The auto policy on fixed scores (the tiny model's are random)."""

    GOOD = {"retention_kl_vs_parent": 0.1, "retention_kl_vs_base": 1.0, "format_compliance": 0.9}

    @pytest.fixture
    def settings(self, tmp_path):
        from store.settings import Settings

        return Settings(home=tmp_path, promote_max_retention_kl_vs_parent=0.5, promote_max_retention_kl_vs_base=2.0,
                        promote_min_format_compliance=0.8)

    def test_auto_promotes_within_every_bound(self, settings):
        assert decide_promotion(None, self.GOOD, settings).promote
        assert decide_promotion({"policy": "auto"}, self.GOOD, settings).promote

    @pytest.mark.parametrize("name, value", [("retention_kl_vs_parent", 0.51), ("retention_kl_vs_base", 2.5),
                                             ("format_compliance", 0.7), ("retention_kl_vs_parent", None)])
    def test_auto_keeps_a_candidate_outside_a_bound(self, settings, name, value):
        decision = decide_promotion(None, {**self.GOOD, name: value}, settings)
        assert not decision.promote and name in decision.reason

    def test_missing_score_counts_as_outside(self, settings):
        scores = dict(self.GOOD)
        del scores["format_compliance"]
        assert not decide_promotion(None, scores, settings).promote

    def test_the_job_may_move_the_bounds(self, settings):
        loose = {"policy": "auto", "max_retention_kl_vs_parent": 1.0, "min_format_compliance": None}
        scores = {**self.GOOD, "retention_kl_vs_parent": 0.9, "format_compliance": 0.8}
        assert decide_promotion(loose, scores, settings).promote
        strict = {"max_retention_kl_vs_base": 0.5}
        assert not decide_promotion(strict, self.GOOD, settings).promote

    def test_always_and_never_ignore_scores(self, settings):
        bad = {"retention_kl_vs_parent": 99.0}
        assert decide_promotion({"policy": "always"}, bad, settings).promote
        assert not decide_promotion({"policy": "never"}, self.GOOD, settings).promote
        with pytest.raises(JobFailed):
            decide_promotion({"policy": "sometimes"}, self.GOOD, settings)


def test_scores_keep_every_numeric_entry_and_mark_unmeasured():
    evaluation = {"retention_kl_vs_parent": 0.25, "probe_count": 3, "probe_accuracy_after": None,
                  "suffix_nll_after": float("nan"), "details": [1, 2], "flag": True}
    assert numeric_scores(evaluation) == {"retention_kl_vs_parent": 0.25, "probe_count": 3.0,
                                          "probe_accuracy_after": None, "suffix_nll_after": None}
