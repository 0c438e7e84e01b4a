"""Plotly figures of the Evaluate and Who-wins pages: robustness vs eps, heatmaps of runs x classes and
runs x corruptions, the natural-vs-robust trade-off with labels placed apart, discordant images per class."""

from __future__ import annotations

import math

import plotly.graph_objects as go

from frontend.charts import FONT, METHOD_COLORS, PALETTE, run_colors, run_styles

CATEGORY_STYLE = {"baseline": ("circle", "baseline (AT, TRADES, MART)"), "PART": ("diamond", "PART"),
                  "control": ("x", "control (shuffled, uniform-mean)")}
CONTROL_COLOR = "#7f7f7f"
ACCURACY_SCALE = "Viridis"


def _layout(fig: go.Figure, height: int, title: str, **kw) -> go.Figure:
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=46, b=10), font=FONT,
                      title=dict(text=title, font_size=14), hoverlabel=dict(font_size=12), **kw)
    return fig


def eps_curves(curves: list[dict], *, methods: dict[str, str]) -> go.Figure:
    """Accuracy (%) vs eps (/255 on the axis, the fraction in the hover); one line per (run, attack)."""
    fig = go.Figure()
    styles = run_styles(list(dict.fromkeys(c["run"] for c in curves)), methods)
    dashes = ["solid", "dot", "dash", "dashdot"]
    kinds = list(dict.fromkeys(c["attack"] for c in curves))
    for c in curves:
        name = f"{c['run']} · {c['attack']} (n={c['n']})"
        fig.add_trace(go.Scatter(
            x=[255 * e for e in c["eps"]], y=[100 * a for a in c["accuracy"]], mode="lines+markers", name=name,
            line=dict(color=styles[c["run"]][0], dash=dashes[kinds.index(c["attack"]) % len(dashes)]),
            marker=dict(symbol=styles[c["run"]][1], size=8),
            customdata=c["eps"], hovertemplate=f"{name}<br>eps %{{customdata:.4g}} = %{{x:.1f}}/255: "
                                                f"%{{y:.2f}}%<extra></extra>"))
    fig.update_xaxes(title="eps (/255; pixels in [0, 1])")
    fig.update_yaxes(title="accuracy (%)", range=[0, 100])
    return _layout(fig, 400, "Robustness vs eps", legend=dict(orientation="h", y=-0.22), hovermode="closest")


def heatmap(rows: list[str], columns: list[str], values: list[list[float | None]], *, title: str,
            height: int | None = None, zmin: float | None = None, zmax: float | None = None) -> go.Figure:
    """Accuracies (in [0,1]) as a heatmap with the percent written in each cell; None stays blank."""
    z = [[None if v is None else 100 * v for v in row] for row in values]
    text = [["" if v is None else f"{v:.1f}" for v in row] for row in z]
    flat = [v for row in z for v in row if v is not None]
    fig = go.Figure(go.Heatmap(
        z=z, x=columns, y=rows, text=text, texttemplate="%{text}", textfont=dict(size=11),
        colorscale=ACCURACY_SCALE, zmin=zmin if zmin is not None else (min(flat) if flat else 0),
        zmax=zmax if zmax is not None else (max(flat) if flat else 100), xgap=2, ygap=2,
        colorbar=dict(title=dict(text="accuracy (%)", side="right"), thickness=12),
        hovertemplate="%{y}<br>%{x}: %{z:.2f}%<extra></extra>"))
    fig.update_yaxes(autorange="reversed", automargin=True)
    fig.update_xaxes(tickangle=-35, automargin=True, side="bottom")
    return _layout(fig, height or 140 + 34 * len(rows), title)


def tradeoff(points: list[dict], *, robust_name: str, width_px: int = 900) -> go.Figure:
    """Natural vs robust accuracy (%), one marker per run (colour: method, symbol: category), each label
    placed where it overlaps no other label or marker; axes fitted to the points shown."""
    fig = go.Figure()
    labels = list(dict.fromkeys(p["label"] for p in points))
    spare = iter(c for c in PALETTE if c not in METHOD_COLORS.values())
    colors = {label: METHOD_COLORS.get(label) or next(spare, CONTROL_COLOR) for label in labels}  # one per method
    for cat, (symbol, legend) in CATEGORY_STYLE.items():
        group = [p for p in points if p["category"] == cat]
        if not group:
            continue
        fig.add_trace(go.Scatter(
            x=[p["clean"] for p in group], y=[p["robust"] for p in group], mode="markers", name=legend,
            marker=dict(size=14, symbol=symbol, line=dict(width=1, color="#333"),
                        color=[CONTROL_COLOR if cat == "control" else colors[p["label"]] for p in group]),
            text=[p["run"] for p in group], customdata=[[p["label"], p["epoch"]] for p in group],
            hovertemplate="%{text} (%{customdata[0]}, epoch %{customdata[1]})<br>natural %{x:.2f}%, "
                          f"{robust_name} %{{y:.2f}}%<extra></extra>"))
    xr, yr = fitted([p["clean"] for p in points]), fitted([p["robust"] for p in points])
    height = 460
    for p, (ax, ay) in zip(points, label_offsets(points, xr, yr, width_px=width_px, height_px=height - 120)):
        fig.add_annotation(x=p["clean"], y=p["robust"], text=p["run"], ax=ax, ay=ay, showarrow=True,
                           arrowhead=0, arrowwidth=1, arrowcolor="#999", font=dict(size=11),
                           bgcolor="rgba(255,255,255,0.85)")
    fig.update_xaxes(title="natural accuracy (%)", range=xr)
    fig.update_yaxes(title=f"{robust_name} accuracy (%)", range=yr)
    return _layout(fig, height, f"Natural vs {robust_name} accuracy of the selected runs (upper right is better)",
                   legend=dict(orientation="h", y=-0.18, title="category"))


def fitted(values: list[float], pad: float = 0.25, least: float = 1.0) -> list[float]:
    """An axis range around the values: a quarter of their spread either side, at least `least` points wide."""
    if not values:
        return [0.0, 100.0]
    low, high = min(values), max(values)
    span = max(high - low, least)
    mid = (low + high) / 2
    return [max(0.0, mid - span / 2 - pad * span), min(100.0, mid + span / 2 + pad * span)]


def label_offsets(points: list[dict], xr: list[float], yr: list[float], *, width_px: float = 900,
                  height_px: float = 340) -> list[tuple[float, float]]:
    """(ax, ay) pixel offsets of each label from its marker, chosen greedily so that no two label boxes and no
    label and marker overlap (first the nearest free spot of 8 directions at growing distances)."""
    def px(p: dict) -> tuple[float, float]:
        return ((p["clean"] - xr[0]) / (xr[1] - xr[0]) * width_px, (yr[1] - p["robust"]) / (yr[1] - yr[0]) * height_px)

    markers = [px(p) for p in points]
    boxes: list[tuple[float, float, float, float]] = [(x - 8, y - 8, x + 8, y + 8) for x, y in markers]
    out = []
    for p, (x, y) in zip(points, markers):
        w, h = 7.0 * len(p["run"]) + 8, 18.0
        chosen = None
        for r in (30, 50, 75, 105, 140):
            for k in range(8):
                angle = -math.pi / 2 + k * math.pi / 4  # up first, then clockwise
                ax, ay = r * math.cos(angle), r * math.sin(angle)
                box = (x + ax - w / 2, y + ay - h / 2, x + ax + w / 2, y + ay + h / 2)
                inside = -20 <= box[0] and box[2] <= width_px + 20 and -10 <= box[1] and box[3] <= height_px + 10
                if inside and not any(_overlap(box, b) for b in boxes):
                    chosen = (ax, ay, box)
                    break
            if chosen:
                break
        if chosen is None:
            chosen = (0.0, -30.0, (x - w / 2, y - 39, x + w / 2, y - 21))
        boxes.append(chosen[2])
        out.append((chosen[0], chosen[1]))
    return out


def _overlap(a: tuple, b: tuple) -> bool:
    return not (a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1])


def discordant_by_class(rows: list[dict], name_a: str, name_b: str) -> go.Figure:
    """Per class: images only A keeps correct vs only B keeps correct (horizontal bars)."""
    classes = [r["class_name"] for r in rows]
    fig = go.Figure()
    fig.add_trace(go.Bar(y=classes, x=[r["only_a"] for r in rows], orientation="h", name=f"only {name_a}",
                         marker_color=METHOD_COLORS["AT"], hovertemplate="%{y}: %{x} images<extra></extra>"))
    fig.add_trace(go.Bar(y=classes, x=[r["only_b"] for r in rows], orientation="h", name=f"only {name_b}",
                         marker_color=METHOD_COLORS["PART"], hovertemplate="%{y}: %{x} images<extra></extra>"))
    fig.update_yaxes(autorange="reversed")
    fig.update_xaxes(title="images kept correct by one model only")
    return _layout(fig, 120 + 28 * len(classes), "Where they differ, per class", barmode="group",
                   legend=dict(orientation="h", y=-0.2))
