"""The Theory page's figures: the loss over the feasible perturbations, and the loss under attack as one
pixel's budget is lowered (Zhang et al., ICML 2024, Section 3.3)."""

from __future__ import annotations

import plotly.graph_objects as go

from frontend.charts import FONT, METHOD_COLORS

PIXEL_COLORS = {1: METHOD_COLORS["AT"], 2: METHOD_COLORS["PART"]}


def _layout(fig: go.Figure, title: str, height: int = 430) -> go.Figure:
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=50, b=10), font=FONT,
                      title=dict(text=title, font_size=14), legend=dict(orientation="h", y=-0.2))
    return fig


def landscape(theory: dict) -> go.Figure:
    """Heatmap of (y - f(x + Delta))^2 over |d1| <= eps1, |d2| <= eps2 (in /255), the optimum marked, and
    Theorem 3.2's case-(iii) points that lie on the box."""
    land, opt = theory["landscape"], theory["optimal"]
    fig = go.Figure(go.Heatmap(x=[255 * d for d in land["delta1"]], y=[255 * d for d in land["delta2"]],
                               z=land["loss"], colorscale="Viridis", colorbar=dict(title="loss", thickness=12),
                               hovertemplate="d1=%{x:.2f}/255, d2=%{y:.2f}/255<br>loss %{z:.4f}<extra></extra>"))
    fig.add_trace(go.Scatter(x=[255 * opt["delta1"]], y=[255 * opt["delta2"]], mode="markers+text",
                             name="optimal Delta* (case ii)", text=["Delta*"], textposition="top center",
                             marker=dict(symbol="star", size=18, color="#d62728", line=dict(color="white", width=1)),
                             hovertemplate="Delta* = (%{x:.2f}, %{y:.2f})/255<extra></extra>"))
    feasible = [p for p in theory["case_iii"] if p["feasible"]]
    if feasible:
        fig.add_trace(go.Scatter(x=[255 * p["delta1"] for p in feasible], y=[255 * p["delta2"] for p in feasible],
                                 mode="markers", name="Theorem 3.2 case (iii) points (loss 0)",
                                 marker=dict(symbol="x", size=12, color="white", line=dict(color="black", width=1)),
                                 hovertemplate="(%{x:.2f}, %{y:.2f})/255<extra>case (iii)</extra>"))
    fig.update_xaxes(title="d1 (/255): perturbation of pixel 1")
    fig.update_yaxes(title="d2 (/255): perturbation of pixel 2")
    return _layout(fig, "Loss over the feasible perturbations")


def tradeoff(theory: dict) -> go.Figure:
    """The loss under attack when one pixel's budget is scaled down from its eps to 0, the other kept."""
    t, e = theory["tradeoff"], theory["inputs"]
    fig = go.Figure()
    for i in (1, 2):
        fig.add_trace(go.Scatter(
            x=[100 * s for s in t["budget"]], y=t[f"lower_eps{i}"], mode="lines+markers", name=f"lower eps{i} "
            f"(|w{i}| = {abs(e[f'w{i}']):g}), keep eps{3 - i}", line_color=PIXEL_COLORS[i],
            hovertemplate=f"eps{i} at %{{x:.0f}}% of its value<br>loss under attack %{{y:.4f}}<extra></extra>"))
    fig.add_hline(y=theory["clean_loss"], line_dash="dot", line_color="#888", annotation_text="clean loss",
                  annotation_font_size=11)
    fig.update_xaxes(title="budget of the lowered pixel (% of its eps)", range=[-2, 102])
    fig.update_yaxes(title="loss under attack", rangemode="tozero")
    return _layout(fig, "The trade-off: what lowering one pixel's budget costs the attack")
