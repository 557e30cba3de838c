"""Human-facing output: rich progress bars and terminal tables."""

from zoofit.report.console import (
    RichProgress,
    domain_tables,
    prediction_rows,
    predictions_table,
    ranking_table,
    run_tables,
    suggestions_table,
    zoo_table,
)
from zoofit.report.html import html_report

__all__ = [
    "RichProgress",
    "domain_tables",
    "html_report",
    "prediction_rows",
    "predictions_table",
    "ranking_table",
    "run_tables",
    "suggestions_table",
    "zoo_table",
]
