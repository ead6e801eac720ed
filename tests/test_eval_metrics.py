"""Metric functions against values computed by hand on small fixed score vectors."""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score

from eval.metrics import (
    MetricError,
    auc_fast,
    calibration,
    compute_metrics,
    confusion,
    equal_error_rate,
    false_positive_audit,
    tpr_at_fpr,
    wilson_interval,
)

# real scores 0.1, 0.4, 0.6 ; fake scores 0.4, 0.7, 0.9 (one real/fake tie at 0.4)
Y = [0, 0, 0, 1, 1, 1]
S = [0.1, 0.4, 0.6, 0.4, 0.7, 0.9]


def test_hand_computed_values_with_a_tie():
    m = compute_metrics(Y, S, threshold=0.5, bootstrap=0)
    # pairs (fake > real): 0.4 beats 0.1, ties 0.4 (half), loses to 0.6; 0.7 and 0.9 beat all -> 7.5 / 9
    assert m.auc == pytest.approx(7.5 / 9)
    # ranked: 0.9 F, 0.7 F, 0.6 R, {0.4 F, 0.4 R}, 0.1 R -> AP = 1/3*1 + 1/3*1 + 1/3*(3/5)
    assert m.ap == pytest.approx(1 / 3 + 1 / 3 + 1 / 5)
    # ROC vertices (fpr, fnr): (0,1) (0,2/3) (0,1/3) (1/3,1/3) ... -> EER 1/3 at score 0.6
    assert m.eer == pytest.approx(1 / 3)
    assert m.eer_threshold == pytest.approx(0.6)
    assert m.confusion == {"tn": 2, "fp": 1, "fn": 1, "tp": 2}
    assert (m.accuracy, m.real_accuracy, m.fake_accuracy) == pytest.approx((4 / 6, 2 / 3, 2 / 3))
    assert m.tpr_at_fpr_1pct == pytest.approx(2 / 3) and m.tpr_at_fpr_01pct == pytest.approx(2 / 3)
    assert (m.n_real, m.n_fake) == (3, 3)
    assert m.low_fpr_resolution == {"1pct": False, "01pct": False}
    assert m.auc_ci is None and m.accuracy_ci is None


def test_threshold_is_inclusive_like_detector_label():
    # score == threshold is called fake (Detector.label uses >=)
    assert confusion(Y, S, 0.4) == {"tn": 1, "fp": 2, "fn": 0, "tp": 3}
    m = compute_metrics(Y, S, threshold=0.4, bootstrap=0)
    assert (m.accuracy, m.real_accuracy, m.fake_accuracy) == pytest.approx((4 / 6, 1 / 3, 1.0))


def test_eer_interpolates_between_vertices():
    # real 0.5 ; fake 0.4, 0.6: vertices (fpr, fnr) = (0, 1), (0, .5), (1, .5) -> crossing halfway
    eer, thr = equal_error_rate([0, 1, 1], [0.5, 0.4, 0.6])
    assert eer == pytest.approx(0.5)
    assert thr == pytest.approx(0.55)


def test_perfect_separation():
    m = compute_metrics([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9], bootstrap=50)
    assert (m.auc, m.ap, m.eer, m.accuracy) == (1.0, 1.0, 0.0, 1.0)
    assert m.eer_threshold == pytest.approx(0.8)
    assert m.auc_ci == (1.0, 1.0) and m.accuracy_ci == (1.0, 1.0)


def test_all_tied_scores_are_chance_not_nan():
    m = compute_metrics([0, 0, 1, 1], [0.5] * 4, threshold=0.5, bootstrap=0)
    assert m.auc == 0.5 and m.eer == pytest.approx(0.5)
    assert m.confusion == {"tn": 0, "fp": 2, "fn": 0, "tp": 2}


def test_tpr_at_fpr_uses_only_vertices_at_or_below_target():
    y = [0] * 10 + [1] * 4
    s = [0.05 * i for i in range(10)] + [0.3, 0.44, 0.5, 0.95]  # best real 0.45
    assert tpr_at_fpr(y, s, 0.0) == pytest.approx(2 / 4)   # above every real: 0.5, 0.95
    assert tpr_at_fpr(y, s, 0.05) == pytest.approx(2 / 4)  # one FP would be 10%: not allowed
    assert tpr_at_fpr(y, s, 0.1) == pytest.approx(3 / 4)   # threshold 0.44 admits real 0.45 only
    assert tpr_at_fpr(y, s, 0.3) == pytest.approx(3 / 4)
    assert tpr_at_fpr(y, s, 0.4) == pytest.approx(4 / 4)   # threshold 0.3: reals 0.3..0.45


@pytest.mark.parametrize("y,s", [([0, 0, 0], [0.1, 0.5, 0.9]), ([1, 1], [0.2, 0.3])])
def test_one_class_raises_a_clear_error(y, s):
    with pytest.raises(MetricError, match="need both real and fake"):
        compute_metrics(y, s)
    with pytest.raises(MetricError, match="are (real|fake)"):
        equal_error_rate(y, s)


@pytest.mark.parametrize("y,s,msg", [
    ([], [], "empty"),
    ([0, 1], [0.1, float("nan")], "NaN"),
    ([0, 2], [0.1, 0.2], "0 \\(real\\) or 1 \\(fake\\)"),
    ([0, 1, 1], [0.1, 0.2], "3 labels but 2 scores"),
])
def test_bad_inputs(y, s, msg):
    with pytest.raises(MetricError, match=msg):
        compute_metrics(y, s)


def test_bootstrap_is_seeded_and_brackets_the_estimate():
    rng = np.random.default_rng(3)
    y = np.r_[np.zeros(200, int), np.ones(200, int)]
    s = np.r_[rng.normal(0.4, 0.15, 200), rng.normal(0.6, 0.15, 200)].clip(0, 1)
    a = compute_metrics(y, s, bootstrap=300, seed=5)
    b = compute_metrics(y, s, bootstrap=300, seed=5)
    c = compute_metrics(y, s, bootstrap=300, seed=6)
    assert a.auc_ci == b.auc_ci and a.accuracy_ci == b.accuracy_ci
    assert a.auc_ci != c.auc_ci
    assert a.auc_ci[0] < a.auc < a.auc_ci[1]
    assert a.accuracy_ci[0] < a.accuracy < a.accuracy_ci[1]
    assert 0.03 < a.auc_ci[1] - a.auc_ci[0] < 0.15  # ~ 4 standard errors of an AUC on 400 samples


def test_wilson_interval_known_values():
    lo, hi = wilson_interval(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.2775, abs=1e-4)
    lo, hi = wilson_interval(5, 10)
    assert (lo, hi) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    with pytest.raises(MetricError):
        wilson_interval(1, 0)


def test_false_positive_audit():
    a = false_positive_audit([0.1, 0.2, 0.7, 0.5, 0.3], threshold=0.5)
    assert (a.n_real, a.n_flagged, a.fpr) == (5, 2, 0.4)
    assert a.ci_low < 0.4 < a.ci_high
    with pytest.raises(MetricError, match="at least one"):
        false_positive_audit([], 0.5)


def test_calibration_hand_computed():
    cal = calibration([0, 1, 1, 0], [0.05, 0.95, 0.85, 0.15], n_bins=10)
    assert cal.ece == pytest.approx((0.05 + 0.05 + 0.15 + 0.15) / 4)
    assert cal.counts == [1, 1, 0, 0, 0, 0, 0, 0, 1, 1]
    assert cal.fraction_fake[2] is None and cal.fraction_fake[9] == 1.0
    assert calibration([0, 1], [0.0, 1.0]).ece == 0.0
    with pytest.raises(MetricError, match="probabilities"):
        calibration([0, 1], [0.2, 1.5])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 1), st.integers(0, 20)), min_size=2, max_size=40))
def test_rank_auc_matches_sklearn_with_ties(pairs):
    y = np.array([p[0] for p in pairs])
    s = np.array([p[1] / 20 for p in pairs])
    if y.min() == y.max():
        return
    assert math.isclose(auc_fast(y, s), roc_auc_score(y, s), abs_tol=1e-12)


def test_metrics_to_json_is_plain():
    import json

    d = compute_metrics(Y, S, bootstrap=20).to_json()
    json.dumps(d)
    for k in ("auc", "ap", "eer", "accuracy", "real_accuracy", "fake_accuracy", "tpr_at_fpr_1pct", "n_real",
              "n_fake", "confusion", "auc_ci", "accuracy_ci"):
        assert k in d
