"""Evaluation: accuracy under attack, AutoAttack, corruptions, the gradient-masking checks, the per-pixel
threat model, eps sweeps, the CAM's alignment and faithfulness, the evaluation job that writes a run's
eval folder, and the reports (Table 1, McNemar tests, HTML)."""

from part.evaluation.evaluate import ACCEPTED, DEFAULT_ATTACKS, AttackSpec, evaluate, parse_attack, parse_attacks
from part.evaluation.job import evaluate_checkpoint
from part.evaluation.report_html import write_reports
from part.evaluation.reports import load_results, markdown_report, mcnemar, table1

__all__ = ["ACCEPTED", "AttackSpec", "DEFAULT_ATTACKS", "evaluate", "evaluate_checkpoint", "load_results",
           "markdown_report", "mcnemar", "parse_attack", "parse_attacks", "table1", "write_reports"]
