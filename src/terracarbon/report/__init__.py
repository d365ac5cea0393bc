"""HTML (and PNG) reports of assessment runs: see :func:`terracarbon.report.build_report`.

The page is assembled in :mod:`terracarbon.report.report` from the layer map (:mod:`~terracarbon.report.maps`), the
figures (:mod:`~terracarbon.report.figures`), the HTML sections (:mod:`~terracarbon.report.sections`) and the
stock-change section (:mod:`~terracarbon.report.change`).
"""

from terracarbon.report.change import build_change_report, change_figure, change_section_html
from terracarbon.report.figures import render_figures
from terracarbon.report.report import build_report

__all__ = ["build_change_report", "build_report", "change_figure", "change_section_html", "render_figures"]
