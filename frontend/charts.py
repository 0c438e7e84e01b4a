"""Plotly figures with one look: jet for CAMs (0..1), one eps scale in /255 units, a colour per run."""

from __future__ import annotations

from typing import Any, Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from frontend import catalogue

EPS_SCALE = "Viridis"  # per-pixel budget, always 0..eps in /255 units
MASK_SCALE = [[0.0, "#1b1b1b"], [1.0, "#f5f5f5"]]
METHOD_COLORS = {"AT": "#1f77b4", "PART": "#d62728", "TRADES": "#2ca02c", "PART-T": "#ff7f0e",
                 "MART": "#9467bd", "PART-M": "#8c564b"}
PALETTE = ["#e377c2", "#17becf", "#bcbd22", "#7f7f7f", *METHOD_COLORS.values()]
MARKERS = ["circle", "square", "diamond", "triangle-up", "x", "star", "hexagon", "cross"]
FONT = dict(family="Inter, Segoe UI, Helvetica, Arial, sans-serif", size=13)
CURVES = [("test_clean_acc", "Clean accuracy (%)", 100), ("test_pgd_acc", "PGD accuracy (%)", 100),
          ("train_loss", "Training loss", 1), ("full_eps_fraction", "Pixels at full eps (%)", 100)]
# scheduled values, in metrics.jsonl only for runs with a schedule: (key, panel, factor, dash)
SCHEDULES = [("eps", "Budget schedule (/255)", 255, "solid"), ("eps_low", "Budget schedule (/255)", 255, "dash"),
             ("tau", "tau / threshold schedule", 1, "solid"), ("threshold", "tau / threshold schedule", 1, "dot")]


def run_styles(names: Sequence[str], methods: dict[str, str] | None = None) -> dict[str, tuple[str, str]]:
    """(colour, marker) per name: the first run of each method gets the method's colour, the rest the palette's;
    once every colour is taken the colours repeat with the next marker, so any number of runs stays apart."""
    methods, styles = methods or {}, {}
    pool = [(c, m) for m in MARKERS for c in PALETTE]
    for name in names:
        used = set(styles.values())
        own = METHOD_COLORS.get(methods.get(name, ""))
        if own and (own, MARKERS[0]) not in used:
            styles[name] = (own, MARKERS[0])
        else:  # past len(pool) runs (80) styles repeat rather than fail
            styles[name] = next((s for s in pool if s not in used), pool[len(styles) % len(pool)])
    return styles


def run_colors(names: Sequence[str], methods: dict[str, str] | None = None) -> dict[str, str]:
    """A colour per name (run_styles' colours; past the palette a colour comes back with another marker)."""
    return {name: colour for name, (colour, _) in run_styles(names, methods).items()}


def _layout(fig: go.Figure, height: int, **kw: Any) -> go.Figure:
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=40, b=10), font=FONT,
                      hoverlabel=dict(font_size=12), **kw)
    return fig


def pixel_map(values: list[list[float]], *, title: str, scale: Any, zmax: float, unit: str,
              colorbar: str, zmin: float = 0.0, factor: float = 1.0, height: int = 300) -> go.Figure:
    """A per-pixel map drawn as an image: row 0 at the top, square pixels, hover shows the value."""
    z = [[v * factor for v in row] for row in values]
    fig = go.Figure(go.Heatmap(z=z, colorscale=scale, zmin=zmin, zmax=zmax,
                               colorbar=dict(title=dict(text=colorbar, side="right"), thickness=12),
                               hovertemplate=f"x=%{{x}}, y=%{{y}}<br>%{{z:.2f}} {unit}<extra></extra>"))
    fig.update_yaxes(autorange="reversed", scaleanchor="x", showticklabels=False, showgrid=False, zeroline=False)
    fig.update_xaxes(showticklabels=False, showgrid=False, zeroline=False, constrain="domain")
    return _layout(fig, height, title=dict(text=title, font_size=14))


def eps_map(values: list[list[float]], eps: float, title: str = "eps-map") -> go.Figure:
    return pixel_map(values, title=title, scale=EPS_SCALE, zmax=eps * 255, factor=255, unit="/255",
                     colorbar="eps (/255)")


def heatmap(values: list[list[float]], title: str) -> go.Figure:
    return pixel_map(values, title=title, scale=catalogue.cam_scale(), zmax=1.0, unit="", colorbar="CAM")


def mask(values: list[list[float]], eps: float, fraction: float) -> go.Figure:
    binary = [[1.0 if v >= eps - 1e-6 else 0.0 for v in row] for row in values]
    fig = pixel_map(binary, title=f"Mask: {100 * fraction:.1f}% of pixels at full eps", scale=MASK_SCALE,
                    zmax=1.0, unit="(1 = full eps)", colorbar="")
    fig.update_traces(colorbar=dict(tickvals=[0, 1], ticktext=["eps_low", "eps"], thickness=12))
    return fig


def probabilities(classes: list[str], probs: list[float], *, label: int | None, title: str,
                  other: list[float] | None = None, other_name: str = "") -> go.Figure:
    """Horizontal bars of class probabilities (%); the true class is named in bold."""
    names = [f"<b>{c}</b>" if i == label else c for i, c in enumerate(classes)]
    fig = go.Figure(go.Bar(x=[100 * p for p in probs], y=names, orientation="h", name="clean",
                           marker_color="#1f77b4", hovertemplate="%{y}: %{x:.1f}%<extra></extra>"))
    if other is not None:
        fig.add_trace(go.Bar(x=[100 * p for p in other], y=names, orientation="h", name=other_name,
                             marker_color="#d62728", hovertemplate="%{y}: %{x:.1f}%<extra></extra>"))
    fig.update_xaxes(title="probability (%)", range=[0, 100])
    fig.update_yaxes(autorange="reversed")
    return _layout(fig, 320, title=dict(text=title, font_size=14), barmode="group",
                   legend=dict(orientation="h", y=-0.25))


def epoch_curves(series: list[dict], *, burn_in: dict[str, int], marked_epoch: int | None = None,
                 height: int = 520) -> go.Figure:
    """2x2 panels over epochs: clean and PGD accuracy, loss, full-eps fraction; one colour per run. Runs
    with schedules add a row: eps (solid) and eps_low (dashed) in /255, tau (solid) and threshold (dotted)."""
    keys = {k for s in series for row in s["metrics"] for k in row}
    extra = [c for c in SCHEDULES if c[0] in keys]
    panels = list(dict.fromkeys(c[1] for c in extra))
    fig = make_subplots(rows=2 + bool(panels), cols=2, subplot_titles=[c[1] for c in CURVES] + panels,
                        horizontal_spacing=0.08, vertical_spacing=0.2 if not panels else 0.13)
    styles = run_styles([s["run"] for s in series], {s["run"]: s.get("method", "") for s in series})
    colors = {run: colour for run, (colour, _) in styles.items()}
    for s in series:
        epochs = [row["epoch"] for row in s["metrics"]]
        for k, (key, name, factor) in enumerate(CURVES):
            ys = [None if row.get(key) is None else row[key] * factor for row in s["metrics"]]
            fig.add_trace(go.Scatter(x=epochs, y=ys, mode="lines+markers", name=s["label"],
                                     legendgroup=s["run"], showlegend=k == 0, line_color=colors[s["run"]],
                                     marker_symbol=styles[s["run"]][1],
                                     hovertemplate=f"{s['label']}<br>epoch %{{x}}: %{{y:.2f}}<extra>{name}</extra>"),
                          row=k // 2 + 1, col=k % 2 + 1)
        for key, panel, factor, dash in extra:
            if any(key in row for row in s["metrics"]):
                ys = [row[key] * factor if row.get(key) is not None else None for row in s["metrics"]]
                fig.add_trace(go.Scatter(x=epochs, y=ys, mode="lines+markers", name=s["label"], legendgroup=s["run"],
                                         showlegend=False, line=dict(color=colors[s["run"]], dash=dash),
                                         hovertemplate=f"{s['label']}<br>epoch %{{x}}: {key} %{{y:.4g}}<extra></extra>"),
                              row=3, col=panels.index(panel) + 1)
    for epochs in sorted(set(burn_in.values())):
        if epochs > 0:
            fig.add_vline(x=epochs + 0.5, line_dash="dash", line_color="#888",
                          annotation_text="end of burn-in", annotation_font_size=11)
    if marked_epoch is not None:
        fig.add_vline(x=marked_epoch, line_color="rgba(120,120,120,0.25)", line_width=8)
    fig.update_xaxes(dtick=1 if _max_epoch(series) <= 20 else None)
    fig.update_xaxes(title_text="epoch", row=2 + bool(panels))
    return _layout(fig, height + 260 * bool(panels), legend=dict(orientation="h", y=-0.12 + 0.04 * bool(panels)),
                   hovermode="closest")


def _max_epoch(series: list[dict]) -> int:
    return max((row["epoch"] for s in series for row in s["metrics"]), default=0)


def tradeoff(points: list[dict]) -> go.Figure:
    """Natural vs robust accuracy (%), one marker per run, labelled; the upper right is better."""
    fig = go.Figure()
    for label in sorted({p["method"] for p in points}):
        group = [p for p in points if p["method"] == label]
        fig.add_trace(go.Scatter(
            x=[100 * p["clean"] for p in group], y=[100 * p["robust"] for p in group], mode="markers+text",
            name=label, text=[p["run"] for p in group], textposition="top center",
            marker=dict(size=13, color=METHOD_COLORS.get(label, "#7f7f7f")),
            textfont=dict(size=11), customdata=[[p["epoch"], p["attack"]] for p in group],
            hovertemplate="%{text}<br>natural %{x:.1f}%, robust %{y:.1f}%<br>epoch %{customdata[0]}, "
                          "%{customdata[1]}<extra></extra>"))
    fig.update_xaxes(title="natural accuracy (%)", range=_padded([100 * p["clean"] for p in points]))
    fig.update_yaxes(title="robust (PGD) accuracy (%)", range=_padded([100 * p["robust"] for p in points]))
    return _layout(fig, 380, title=dict(text="Natural vs robust accuracy, newest epoch of every run",
                                        font_size=14), legend=dict(title="method"))


def _padded(values: list[float], pad: float = 2.0) -> list[float]:
    """An axis range around the values, at least `pad` points either side, so close runs stay apart."""
    return [max(0.0, min(values) - pad), min(100.0, max(values) + pad)]


def grouped_bars(categories: list[str], groups: dict[str, list[float | None]], *, title: str,
                 y_title: str, methods: dict[str, str] | None = None, height: int = 380) -> go.Figure:
    fig = go.Figure()
    colors = run_colors(list(groups), methods)
    for name, values in groups.items():
        fig.add_trace(go.Bar(x=categories, y=[None if v is None else 100 * v for v in values], name=name,
                             marker_color=colors[name], hovertemplate=f"{name}<br>%{{x}}: %{{y:.1f}}%<extra></extra>"))
    fig.update_yaxes(title=y_title, range=[0, 100])
    fig.update_xaxes(tickangle=-35)
    return _layout(fig, height, title=dict(text=title, font_size=14), barmode="group",
                   legend=dict(orientation="h", y=1.12, x=1, xanchor="right"))


def lines(groups: dict[str, tuple[list[float], list[float]]], *, title: str, x_title: str, y_title: str,
          x_factor: float = 1.0, x_dtick: float | None = None, methods: dict[str, str] | None = None,
          height: int = 320) -> go.Figure:
    """One line per group of (xs, accuracies in [0,1]); y in %."""
    fig = go.Figure()
    styles = run_styles(list(groups), methods)
    for name, (xs, ys) in groups.items():
        fig.add_trace(go.Scatter(x=[x * x_factor for x in xs], y=[100 * y for y in ys], mode="lines+markers",
                                 name=name, line_color=styles[name][0], marker_symbol=styles[name][1],
                                 hovertemplate=f"{name}<br>%{{x:.1f}}: %{{y:.1f}}%<extra></extra>"))
    fig.update_xaxes(title=x_title, dtick=x_dtick)
    fig.update_yaxes(title=y_title, range=[0, 100])
    return _layout(fig, height, title=dict(text=title, font_size=14), legend=dict(orientation="h", y=-0.3))
