"""Human-facing output: rich progress bars and terminal tables."""

from zoofit.report.console import RichProgress, prediction_rows, predictions_table, ranking_table, run_tables, zoo_table

__all__ = ["RichProgress", "prediction_rows", "predictions_table", "ranking_table", "run_tables", "zoo_table"]
