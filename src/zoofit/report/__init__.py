"""Human-facing output: rich progress bars and terminal tables."""

from zoofit.report.console import RichProgress, ranking_table, zoo_table

__all__ = ["RichProgress", "ranking_table", "zoo_table"]
