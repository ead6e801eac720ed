"""Plot functions: PNG bytes out, files written atomically, undefined inputs refused."""
import io

import numpy as np
import pytest
from PIL import Image

from eval import plots
from eval.metrics import MetricError, calibration

Y = np.r_[np.zeros(50, int), np.ones(50, int)]
S = np.r_[np.linspace(0, 0.6, 50), np.linspace(0.4, 1, 50)]


@pytest.mark.parametrize("fn", [plots.roc_plot, plots.pr_plot, plots.det_plot,
                                lambda c, p=None: plots.roc_plot(c, p, log_fpr=True)])
def test_curve_plots_write_png(fn, tmp_path):
    out = tmp_path / "plot.png"
    png = fn([("detector", Y, S, False), ("baseline", Y, S[::-1], True)], out)
    assert out.read_bytes() == png
    im = Image.open(io.BytesIO(png))
    assert im.format == "PNG" and im.width > 300 and im.height > 300


def test_curves_refuse_one_class():
    with pytest.raises(MetricError, match="need both real and fake"):
        plots.roc_plot([("x", np.zeros(5, int), np.linspace(0, 1, 5), False)])


def test_histogram_reliability_heatmap():
    h = plots.histogram_plot(S[:50], {"g": S[50:]}, 0.5)
    r = plots.reliability_plot(calibration(Y, S))
    m = plots.heatmap_plot([[1.0, 0.6], [0.7, 0.9]], ["a", "b"], ["a", "b"], title="AUC")
    for png in (h, r, m):
        assert Image.open(io.BytesIO(png)).format == "PNG"
    # the heatmap is not blank: its colours span the colormap
    px = np.asarray(Image.open(io.BytesIO(m)).convert("RGB"))
    assert len(np.unique(px.reshape(-1, 3), axis=0)) > 50
