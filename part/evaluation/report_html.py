"""A self-contained HTML report of evaluation results, with plotly charts that work offline.

Charts after the PART paper (Zhang et al., ICML 2024): accuracy per attack (Table 1), accuracy as
eps grows (Appendix H.3, check 5), accuracy as attack steps grow (PGD-K / MMA-K sweeps, Tables 7 and
11) and accuracy per corruption type (Table 4). plotly.js is embedded once (include_plotlyjs=True);
the page loads nothing from the network. The page itself is the Jinja2 template templates/report.html.j2
(autoescaped; only the charts' own HTML goes in unescaped).
"""

from __future__ import annotations

import statistics
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import jinja2

from part.evaluation.corruptions import CORRUPTIONS, title
from part.evaluation.reports import (TABLE1, _baseline_in, accuracies, accuracy_rows, attack_columns, checks_rows,
                                     corruption_rows, group, images_line, markdown_report, sweep_rows)
from part.experiments import results_by_experiment
from part.runs import EvalDir, write_text

@lru_cache(maxsize=1)
def _template() -> jinja2.Template:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
                             autoescape=True, undefined=jinja2.StrictUndefined)
    return env.get_template("report.html.j2")


def _mean(values: Sequence[float]) -> float | None:
    return statistics.fmean(values) if values else None


def _attack_figure(groups: dict, go):
    cols = attack_columns([r for runs in groups.values() for r in runs])
    fig = go.Figure([go.Bar(name=label, x=[h for _, h in cols], y=[_mean(accuracies(runs, a)) for a, _ in cols])
                     for label, runs in groups.items()])
    return fig.update_layout(title="Accuracy per attack (%)", barmode="group", yaxis_title="accuracy (%)")


def _eps_figure(groups: dict, go):
    traces = []
    for label, runs in groups.items():
        curves = [r["attacks"]["checks"]["eps_curve"] for r in runs if "checks" in r.get("attacks", {})]
        if curves:
            accs = [statistics.fmean(c["accuracy"][i] for c in curves) * 100 for i in range(len(curves[0]["eps"]))]
            traces.append(go.Scatter(name=label, x=curves[0]["eps"], y=accs, mode="lines+markers"))
    if not traces:
        return None
    return go.Figure(traces).update_layout(title="Accuracy under PGD-20 as eps grows (eps = 0: clean)",
                                           xaxis_title="eps (L-inf, pixel range [0,1])", yaxis_title="accuracy (%)")


def _steps_figure(groups: dict, go):
    traces = []
    for label, runs in groups.items():
        for kind in ("pgd", "mma"):
            points = sorted({(_steps(a, kind), a) for r in runs for a in r.get("attacks", {}) if _steps(a, kind)})
            if len(points) >= 2:
                traces.append(go.Scatter(name=f"{label} {kind.upper()}", x=[k for k, _ in points],
                                         y=[_mean(accuracies(runs, a)) for _, a in points], mode="lines+markers"))
    if not traces:
        return None
    return go.Figure(traces).update_layout(title="Accuracy as attack steps grow", xaxis_title="steps",
                                           yaxis_title="accuracy (%)")


def _steps(attack: str, kind: str) -> int:
    if attack == "mma" and kind == "mma":
        return 20
    rest = attack[len(kind):]
    return int(rest) if attack.startswith(kind) and rest.isdigit() else 0


def _corruption_figures(groups: dict, go):
    groups = {k: v for k, v in groups.items() if any("corruptions" in r.get("attacks", {}) for r in v)}
    if not groups:
        return []
    bars, lines = [], []
    for label, runs in groups.items():
        recs = [r["attacks"]["corruptions"] for r in runs if "corruptions" in r.get("attacks", {})]
        bars.append(go.Bar(name=label, x=[title(c) for c in CORRUPTIONS],
                           y=[_mean([100 * rec["types"][c]["accuracy"][0] for rec in recs if c in rec["types"]])
                              for c in CORRUPTIONS]))
        sev = recs[0]["severities"]
        lines.append(go.Scatter(name=label, x=sev, mode="lines+markers",
                                y=[statistics.fmean(100 * rec["mean_by_severity"][i] for rec in recs)
                                   for i in range(len(sev))]))
    return [go.Figure(bars).update_layout(title="Accuracy per corruption at severity 1 (%)", barmode="group",
                                          yaxis_title="accuracy (%)"),
            go.Figure(lines).update_layout(title="Mean corruption accuracy per severity (%)",
                                           xaxis=dict(title="severity", dtick=1), yaxis_title="accuracy (%)")]


def html_report(results: Sequence[dict], baseline: str | None = None,
                heading: str = "PART Studio robustness report") -> str:
    """The whole page as one string: tables, then charts; plotly.js inlined in the first chart."""
    import plotly.graph_objects as go

    split = results_by_experiment(results)
    many = len(split) > 1
    # charts group by label: with several experiments each label names its experiment, so nothing pools
    shown = [{**r, "label": f"{r['label']} · {e.id}" if many else r["label"]} for e, found in split for r in found]
    groups = group(shown)
    figs = [_attack_figure(groups, go), _eps_figure(groups, go), _steps_figure(groups, go),
            *_corruption_figures(groups, go)]
    charts = [f.to_html(full_html=False, include_plotlyjs=(i == 0), default_height="420px")
              for i, f in enumerate(f for f in figs if f is not None)]
    eps = ", ".join(sorted({str(r.get("eps_text", r.get("eps"))) for r in results}))
    models = ", ".join(sorted({f"{r.get('model')} on {r.get('dataset')}" for r in results}))
    corrupted = any("corruptions" in r.get("attacks", {}) for r in results)
    checks = [{"label": r.get("label"), "epoch": r.get("epoch"), "rows": checks_rows(r)}
              for r in shown if "checks" in r.get("attacks", {})]
    experiments = []
    for exp, found in split:
        base = _baseline_in(found, baseline)
        experiments.append({"id": exp.id, "description": exp.description,
                            "table1": accuracy_rows(found, TABLE1, base),
                            "all_attacks": accuracy_rows(found, attack_columns(found), base)})
    return _template().render(heading=heading, models=models, eps=eps, images=images_line(results),
                              experiments=experiments, many=many,
                              corruptions=corruption_rows(shown, 1) if corrupted else None,
                              sweeps=sweep_rows(shown),
                              checks=checks, charts=charts)


def write_reports(out_dir: str | Path, results: Sequence[dict], baseline: str | None = None) -> dict[str, Path]:
    """OUT/report.md and OUT/report.html (self-contained, opens offline)."""
    paths = EvalDir(out_dir).report_paths()
    text = {"markdown": markdown_report(results, baseline), "html": html_report(results, baseline)}
    for key, path in paths.items():
        write_text(path, text[key])
    return paths
