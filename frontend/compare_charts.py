"""Compare's plotly figures: the epoch player (A's CAM, B's CAM and B - A, with a slider and playback) and the
curves over epochs of the CAM energy on the object and of the pair's agreement (top-k IoU, Spearman)."""

from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from frontend import catalogue
from frontend.charts import FONT, run_colors

# matplotlib's RdBu_r, the backend's difference PNGs and Figure 2: blue < 0 < red, white at 0
DIFF_COLOURS = ["#053061", "#2166ac", "#4393c3", "#92c5de", "#d1e5f0", "#f7f7f7", "#fddbc7", "#f4a582",
                "#d6604d", "#b2182b", "#67001f"]
DIFF_SCALE = [[k / 10, c] for k, c in enumerate(DIFF_COLOURS)]


def _layout(fig: go.Figure, height: int, **kw) -> go.Figure:
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=60, b=10), font=FONT, hoverlabel=dict(font_size=12),
                      **kw)
    return fig


def _frame_title(epoch: int, numbers: dict) -> str:
    parts = [f"<b>epoch {epoch}</b>"]
    if numbers.get("iou") is not None:
        rho = "–" if numbers.get("spearman") is None else f"{numbers['spearman']:.3f}"
        parts.append(f"top-{numbers['top_k']:g}% IoU {numbers['iou']:.3f} · Spearman ρ {rho} · "
                     f"mean |B−A| {numbers['mean_abs']:.3f}")
    return " · ".join(parts)


def difference_player(epochs: list[int], a: dict[int, list], b: dict[int, list], diff: dict[int, list],
                      numbers: dict[int, dict], *, names: tuple[str, str], scale: float, start: int,
                      height: int = 470) -> go.Figure:
    """Three maps per epoch (A's CAM, B's CAM on jet 0..1, B - A on a diverging scale +-scale centred at 0),
    an epoch slider and a play button; hover shows each pixel's value. Epochs without both maps are left out."""
    shown = [e for e in epochs if e in a and e in b and e in diff]
    fig = make_subplots(rows=1, cols=3, horizontal_spacing=0.08,
                        subplot_titles=[f"A: {names[0]}", f"B: {names[1]}", "B − A (red: B puts more weight there)"])
    first = start if start in shown else shown[-1]

    def traces(e: int) -> list[go.Heatmap]:
        cam = dict(colorscale=catalogue.cam_scale(), zmin=0, zmax=1, hovertemplate="x=%{x}, y=%{y}<br>CAM %{z:.3f}<extra></extra>")
        return [go.Heatmap(z=a[e], showscale=False, **cam),
                go.Heatmap(z=b[e], colorbar=dict(x=0.645, xanchor="left", len=0.85, thickness=10), **cam),
                go.Heatmap(z=diff[e], colorscale=DIFF_SCALE, zmin=-scale, zmax=scale, zmid=0,
                           colorbar=dict(title=dict(text="B − A", side="right"), x=1.0, len=0.85, thickness=10),
                           hovertemplate="x=%{x}, y=%{y}<br>B − A %{z:+.3f}<extra></extra>")]

    for k, trace in enumerate(traces(first)):
        fig.add_trace(trace, row=1, col=k + 1)
    fig.frames = [go.Frame(name=str(e), data=traces(e), traces=[0, 1, 2],
                           layout=dict(title=dict(text=_frame_title(e, numbers.get(e, {}))))) for e in shown]
    for k in range(3):
        fig.update_yaxes(autorange="reversed", scaleanchor=f"x{k + 1 if k else ''}", showticklabels=False,
                         showgrid=False, zeroline=False, row=1, col=k + 1)
        fig.update_xaxes(showticklabels=False, showgrid=False, zeroline=False, constrain="domain", row=1, col=k + 1)
    step = dict(mode="immediate", frame=dict(duration=0, redraw=True), transition=dict(duration=0))
    fig.update_layout(
        sliders=[dict(active=shown.index(first), currentvalue=dict(prefix="epoch ", font_size=13), pad=dict(t=10, b=4),
                      steps=[dict(label=str(e), method="animate", args=[[str(e)], step]) for e in shown])],
        updatemenus=[dict(type="buttons", direction="left", x=0, y=-0.02, xanchor="right", yanchor="top",
                          pad=dict(r=10, t=10), showactive=False, buttons=[
                              dict(label="▶ play", method="animate",
                                   args=[None, dict(frame=dict(duration=700, redraw=True), fromcurrent=True,
                                                    transition=dict(duration=0), mode="immediate")]),
                              dict(label="❚❚ pause", method="animate", args=[[None], step])])])
    return _layout(fig, height, title=dict(text=_frame_title(first, numbers.get(first, {})), font_size=14))


def agreement_curves(epochs: list[int], energy: dict[str, list], pair_numbers: dict[int, dict], *,
                     methods: dict[str, str], names: tuple[str, str] | None, burn_in: dict[str, int],
                     marked: int | None = None, height: int = 360) -> go.Figure:
    """Over epochs: each run's CAM energy on the object (%), and A vs B: top-k IoU and Spearman rho (left panel
    empty with a note where no object mask is known)."""
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.1, subplot_titles=[
        "CAM energy on the object (%)", f"{names[1]} vs {names[0]}: agreement of the maps" if names else "agreement"])
    colors = run_colors(list(energy), methods)
    for run, values in energy.items():
        fig.add_trace(go.Scatter(x=epochs, y=[None if v is None else 100 * v for v in values], mode="lines+markers",
                                 name=run, line_color=colors[run], legendgroup=run,
                                 hovertemplate=f"{run}<br>epoch %{{x}}: %{{y:.1f}}% on the object<extra></extra>"),
                      row=1, col=1)
    if names:
        xs = [e for e in epochs if pair_numbers.get(e, {}).get("iou") is not None]
        k = next((pair_numbers[e]["top_k"] for e in xs), 20)
        for key, label, dash in (("iou", f"top-{k:g}% IoU", "solid"), ("spearman", "Spearman ρ", "dot")):
            fig.add_trace(go.Scatter(x=xs, y=[pair_numbers[e][key] for e in xs], mode="lines+markers", name=label,
                                     line=dict(color="#444", dash=dash),
                                     hovertemplate=f"epoch %{{x}}: {label} %{{y:.3f}}<extra></extra>"), row=1, col=2)
        fig.update_yaxes(range=[min([0.5] + [pair_numbers[e][key] or 0.5 for e in xs for key in ("iou", "spearman")])
                                - 0.05, 1.02], row=1, col=2)
    for epochs_ in sorted(set(burn_in.values())):
        if epochs_ > 0:
            fig.add_vline(x=epochs_ + 0.5, line_dash="dash", line_color="#888", annotation_text="end of burn-in",
                          annotation_font_size=11)
    if marked is not None:
        fig.add_vline(x=marked, line_color="rgba(120,120,120,0.25)", line_width=8)
    fig.update_xaxes(title_text="epoch", dtick=1 if len(epochs) <= 20 else None)
    return _layout(fig, height, legend=dict(orientation="h", y=-0.25), hovermode="closest")
