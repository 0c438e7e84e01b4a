"""Theory: Section 3.3's two-pixel linear model, interactive. The numbers come from the API (part.theory);
the page only draws them."""

from __future__ import annotations

import streamlit as st

from frontend import theory_charts, ui

DEFAULTS = {"x1": 0.5, "x2": 0.5, "w1": 2.0, "w2": 0.5, "b": 0.0, "y": 1.0, "eps1": 8.0, "eps2": 8.0}


def controls() -> dict[str, float]:
    """The section's quantities; eps in /255 on screen, fractions of 1 to the API."""
    st.markdown("**Budgets** (per pixel, L-inf) and **weights** of the model f(x) = w1·x1 + w2·x2 + b")
    c = st.columns(4)
    eps1 = c[0].slider("eps1 (/255)", 0.0, 32.0, DEFAULTS["eps1"], 0.5, key="th-eps1",
                       help="Budget of pixel 1: |d1| <= eps1")
    eps2 = c[1].slider("eps2 (/255)", 0.0, 32.0, DEFAULTS["eps2"], 0.5, key="th-eps2",
                       help="Budget of pixel 2: |d2| <= eps2")
    w1 = c[2].slider("w1", -4.0, 4.0, DEFAULTS["w1"], 0.1, key="th-w1", help="Weight of pixel 1 (its importance)")
    w2 = c[3].slider("w2", -4.0, 4.0, DEFAULTS["w2"], 0.1, key="th-w2", help="Weight of pixel 2 (its importance)")
    with st.expander("The data point and the bias (x1, x2, b, y)"):
        d = st.columns(4)
        x1 = d[0].slider("x1", 0.0, 1.0, DEFAULTS["x1"], 0.05, key="th-x1")
        x2 = d[1].slider("x2", 0.0, 1.0, DEFAULTS["x2"], 0.05, key="th-x2")
        b = d[2].slider("b", -2.0, 2.0, DEFAULTS["b"], 0.05, key="th-b")
        y = d[3].slider("y (label)", -2.0, 2.0, DEFAULTS["y"], 0.05, key="th-y")
    return {"x1": x1, "x2": x2, "w1": w1, "w2": w2, "b": b, "y": y, "eps1": eps1 / 255, "eps2": eps2 / 255}


def summary(t: dict) -> None:
    opt, e = t["optimal"], t["inputs"]
    c = st.columns(4)
    c[0].metric("residual y - f(x)", f"{t['residual']:+.4f}")
    c[1].metric("optimal perturbation Delta*", f"({255 * opt['delta1']:+.2g}, {255 * opt['delta2']:+.2g})/255",
                help=f"({opt['delta1']:+.4f}, {opt['delta2']:+.4f}) as fractions of 1")
    c[2].metric("loss under attack", f"{opt['loss']:.4f}", f"{opt['loss'] - t['clean_loss']:+.4f} vs clean",
                delta_color="inverse")
    ratio = t["sensitivity"]["eps1"] / t["sensitivity"]["eps2"] if t["sensitivity"]["eps2"] else None
    c[3].metric("d loss / d eps1 : d loss / d eps2", f"{ratio:.2f} : 1" if ratio is not None else "eps2 has no effect",
                help="= |w1| : |w2|: each budget counts in proportion to its pixel's weight")
    if not e["eps1"] and not e["eps2"]:
        st.info("Both budgets are 0: there is nothing to attack.", icon=":material/info:")


def conclusion(t: dict) -> None:
    e, tr, top = t["inputs"], t["tradeoff"], t["optimal"]["loss"]
    cut1, cut2 = top - tr["lower_eps1"][0], top - tr["lower_eps2"][0]
    st.markdown(
        f"**What the section concludes.** With these numbers the attacker's best move is a corner of the box "
        f"(Lemma 3.1, case ii): each pixel moves by its whole budget in the direction that pushes f away from y, "
        f"and the loss under attack is (|y - f(x)| + |w1|·eps1 + |w2|·eps2)² = **{top:.4f}**. The budgets enter "
        f"it weighted by the pixels' weights: taking pixel 2's budget away entirely (eps2 → 0) lowers the loss "
        f"under attack by **{cut2:.4f}**, taking pixel 1's away (eps1 → 0) by **{cut1:.4f}**. Section 3.3's "
        "takeaway (Theorem 3.2): *if two pixels have different influences on the model's prediction, this affects "
        "how adversarial examples are generated, leading to different optimal perturbations*, which is what "
        "PART acts on: it keeps the full eps on the pixels the CAM marks as important and gives the others "
        "eps_low, so the examples it trains on stay strong where the prediction is decided.")
    st.caption("Theorem 3.2's case (iii) points (×) hold one coordinate at its bound and solve for the other; "
               "there the residual y - f(x + Delta) is zero, so for this linear model with the square loss they "
               "satisfy the KKT conditions as the smallest loss along their edge, not the largest; the maximum is "
               "always the corner (★). The paper leaves how pixel importance affects the trained model's "
               "robustness to future work (its Remark).")


def page() -> None:
    st.title("Theory: why the budget of an unimportant pixel matters less")
    st.caption("Zhang et al., ICML 2024, Section 3.3: a linear model f(x) = w1·x1 + w2·x2 + b on two pixels "
               "with the square loss (y - f(x))², attacked by Delta = (d1, d2) with |d1| <= eps1, |d2| <= eps2 "
               "(Eq. 5). Move the budgets and the weights and watch the optimal perturbation and its loss.")
    params = controls()
    with ui.shown_errors():
        t = ui.api().theory(params)
        summary(t)
        left, right = st.columns(2)
        left.plotly_chart(theory_charts.landscape(t), key="th-landscape")
        right.plotly_chart(theory_charts.tradeoff(t), key="th-tradeoff")
        conclusion(t)


page()
