"""HTML (and PNG) reports of assessment runs: see :func:`terracarbon.report.build_report`."""

from terracarbon.report.report import build_report, render_figures

__all__ = ["build_report", "render_figures"]
