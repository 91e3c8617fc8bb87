"""The figures layer: pure functions from runs and results to Plotly figures, captions, tables and a report.

No Streamlit here: pages and `bnviz.watch` call these, and `bnviz.ui.page.show` draws what they return. Use it
as `from bnviz import figures` and `figures.loss_accuracy(runs)`; the names below are the layer's API, each
defined in the module that does one job:

    style               the shared look (colours, fonts, sizes) and the helpers every builder uses (`finish`, ...)
    run_facts           what a figure needs to know about a run: its blocks, stages and their names in words
    density             density heatmaps of histograms over steps (colour scale, raster images)
    training            loss and accuracy, Santurkar et al.'s gradient ICS
    distributions       value distributions over training: heatmaps, histograms, percentiles, drift, saturation
    gradients           gradient sizes and spreads, update / weight ratios
    norm_layers         gamma and beta, batch vs running statistics, train vs eval mode
    captions, catalog   a reading guide per kind of figure; every figure that makes sense for one run
    experiment_figures  the canned experiments of `bnviz.science` (figure1, santurkar, sweeps)
    normalization_axes  which values BN, LN, IN and GN normalize together
    lesson_figures      the "Beyond the basics" lessons (gradients by depth, the bias before BN, BN's Jacobian)
    shared_scales       one scale for the panels of runs side by side (`side_by_side`)
    result_words        a finished run's result in one or two sentences (`run_result`)
    tables, report      tables of runs; standalone HTML files of a saved run's figures
    summary             any figure in words (`describe`) and as tables of its numbers (`data_tables`)
    raster              heatmaps as small PNG images

Every builder returns a `Figure`: a `go.Figure`, or the same figure as a plain dict inside `plain_figures()`.
Importing this package imports plotly (and the engine's `History`); `import bnviz` alone does not import it.
"""

from .captions import CAPTIONS, caption
from .catalog import figure_catalog
from .density import DENSITY_SCALE
from .distributions import (
    distribution_grid,
    distribution_grid_warm_up,
    distribution_heatmap,
    drift,
    histogram_now_vs_start,
    percentile_lines,
    saturation,
)
from .experiment_figures import (
    batch_size_accuracy,
    batch_size_gap,
    figure1_accuracy,
    figure1_percentiles,
    figure1_pooled_percentiles,
    init_sweep_chart,
    lr_sweep_chart,
    santurkar_accuracy,
    santurkar_drift,
    santurkar_ics,
    santurkar_landscape,
    wu_he_published,
)
from .gradients import gradient_histogram, gradient_norms, update_ratios
from .lesson_figures import (
    bias_chart,
    correlation_heatmaps,
    depth_gradient_chart,
    ema_chart,
    jacobian_heatmaps,
    small_batch_chart,
    weight_norm_chart,
)
from .norm_layers import gamma_beta, running_vs_batch, train_eval_gap
from .normalization_axes import axes_figure, normalization_zoo
from .report import write_report
from .result_words import run_result
from .run_facts import ACT_INPUT, activation_input_stage, stage_label
from .shared_scales import shared_span, side_by_side
from .style import (
    FONT,
    GUIDE_COLOR,
    HEIGHT,
    MAX_POINTS,
    OKABE_ITO,
    PALETTE,
    PREVIEW_HEIGHT,
    TITLE_SIZE,
    WAITING,
    Figure,
    enlarge_text,
    even_rows,
    fit_width,
    plain_figures,
    preview,
    run_colors,
    run_styles,
)
from .summary import chart_title, data_tables, describe
from .tables import final_numbers
from .training import ics_measure, loss_accuracy

__all__ = [
    # run figures
    "loss_accuracy", "ics_measure", "distribution_heatmap", "distribution_grid", "distribution_grid_warm_up",
    "histogram_now_vs_start", "percentile_lines", "saturation", "drift", "gradient_norms", "gradient_histogram",
    "update_ratios", "gamma_beta", "running_vs_batch", "train_eval_gap", "figure_catalog", "CAPTIONS", "caption",
    # experiment and normalization figures
    "figure1_accuracy", "figure1_percentiles", "figure1_pooled_percentiles", "santurkar_accuracy", "santurkar_drift",
    "santurkar_ics", "santurkar_landscape", "lr_sweep_chart", "init_sweep_chart", "batch_size_accuracy",
    "batch_size_gap", "wu_he_published", "axes_figure", "normalization_zoo",
    # lessons beyond the basics
    "depth_gradient_chart", "bias_chart", "jacobian_heatmaps", "correlation_heatmaps", "ema_chart",
    "weight_norm_chart", "small_batch_chart",
    "side_by_side", "shared_span", "run_result",
    # tables and report; every figure in words and numbers
    "final_numbers", "write_report", "describe", "data_tables", "chart_title",
    # runs, style and sending
    "ACT_INPUT", "activation_input_stage", "stage_label", "Figure", "FONT", "GUIDE_COLOR", "HEIGHT", "MAX_POINTS",
    "OKABE_ITO", "PALETTE", "PREVIEW_HEIGHT", "TITLE_SIZE", "WAITING", "DENSITY_SCALE", "enlarge_text", "even_rows",
    "fit_width", "plain_figures", "preview", "run_colors", "run_styles",
]
