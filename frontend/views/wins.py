"""Who wins: for two runs and one attack, the test images one model keeps correct and the other loses (both
ways), with counts, the exact McNemar p, the per-class breakdown, and for each image both models' CAMs,
eps-maps and adversarial examples (GET /api/evaluations/wins; pictures from /api/explain and /api/attack)."""

from __future__ import annotations

import io
import re

import streamlit as st
from PIL import Image

from frontend import catalogue, eval_charts, images, reports, ui
from frontend.catalogue import as_255

NEWEST = "newest"
PAGE_SIZES = (4, 8, 12)
SIDE = 112  # px per picture; the 28x28 inputs are enlarged without smoothing
LOW, HIGH = (68, 1, 84), (253, 231, 37)  # viridis ends: eps_low dark, full eps yellow


@st.cache_data(ttl=60, show_spinner=False)
def fetch(url: str, params: tuple) -> dict:
    return ui.api()._json("GET", "/api/evaluations/wins", params=dict(params))


def default_pair(runs: list[dict], featured: list[str] | None, experiments: list[dict]) -> tuple[str, str]:
    """The featured pair when both runs are here; else the first PART run that has a baseline, and that
    baseline (as A); else the first two runs that saw the same test images."""
    ids = [r["id"] for r in runs]
    if featured and set(featured) <= set(ids):
        return featured[0], featured[1]
    for e in experiments:
        for run, base in e["baselines"].items():
            if base["run"] in ids and run in ids:
                return base["run"], run
    a = ids[0]
    return a, next((r["id"] for r in runs[1:] if same_images(runs[0], r)), a)


def same_images(a: dict, b: dict) -> bool:
    """Whether two runs were tested on the same images: the same dataset at the same input size."""
    return (a.get("dataset"), a.get("image_size") or 0) == (b.get("dataset"), b.get("image_size") or 0)


def controls(runs: list[dict]) -> dict:
    ids = [r["id"] for r in runs]
    a_default, b_default = default_pair(runs, catalogue.options().get("featured"), ui.experiments()["experiments"])
    c1, c2, c3, c4 = st.columns([3, 1, 3, 1])
    run_a = c1.selectbox("Run A", ids, index=ids.index(a_default), key="wn-run-a",
                         format_func=lambda i: ui.run_label(runs[ids.index(i)]))
    epoch_a = c2.selectbox("Epoch A", [NEWEST] + runs[ids.index(run_a)]["epochs"][::-1], key=f"wn-epoch-a-{run_a}",
                           help="newest: the newest epoch with an evaluation")
    first = runs[ids.index(run_a)]
    partners = [r["id"] for r in runs if r["id"] != run_a and same_images(first, r)]
    if not partners:
        st.info(f"No other run was tested on the images of {run_a} ({first.get('dataset')}): who wins image by "
                "image needs two runs of the same dataset and input size.", icon=":material/rule:")
        st.stop()
    run_b = c3.selectbox("Run B", partners, index=partners.index(b_default) if b_default in partners else 0,
                         key=f"wn-run-b-{first.get('dataset')}", format_func=lambda i: ui.run_label(runs[ids.index(i)]),
                         help=f"Runs tested on the same images as run A ({first.get('dataset')} test set)")
    epoch_b = c4.selectbox("Epoch B", [NEWEST] + runs[ids.index(run_b)]["epochs"][::-1], key=f"wn-epoch-b-{run_b}",
                           help="newest: the newest epoch with an evaluation")
    return {"run_a": run_a, "run_b": run_b, **({} if epoch_a == NEWEST else {"epoch_a": int(epoch_a)}),
            **({} if epoch_b == NEWEST else {"epoch_b": int(epoch_b)})}


def summary(w: dict) -> None:
    a, b = f"{w['label_a']} ({w['run_a']})", f"{w['label_b']} ({w['run_b']})"
    c = w["counts"]
    cols = st.columns(6)
    cols[0].metric("Test images", f"{w['n']}")
    cols[1].metric(f"{w['label_a']} accuracy", ui.percent(w["accuracy_a"], 2), help=a)
    cols[2].metric(f"{w['label_b']} accuracy", ui.percent(w["accuracy_b"], 2), help=b)
    cols[3].metric(f"Only {w['label_a']} correct", c["only_a"], help=f"{a} keeps them correct, {b} loses them")
    cols[4].metric(f"Only {w['label_b']} correct", c["only_b"], help=f"{b} keeps them correct, {a} loses them")
    cols[5].metric("McNemar p", reports.p_text(w["p"])[1:].lstrip("=") or "–",
                   help="exact two-sided McNemar test on the discordant images")
    lead = b if c["only_b"] > c["only_a"] else a
    verdict = (f"{lead} keeps more, a difference significant at the 5 % level" if w["p"] < 0.05
               else f"no detectable difference at n = {w['n']}")
    verdict += f" (B minus A: {w['difference']})" if w.get("difference") else ""
    st.markdown(f"Under **{w['heading']}**, of {w['n']} test images: **{c['only_a']}** are kept correct by {a} "
                f"only, **{c['only_b']}** by {b} only; {c['both']} by both, {c['neither']} by neither. Exact McNemar "
                f"{reports.p_text(w['p'])}: {verdict}. Epochs {w['epoch_a']} and {w['epoch_b']}; results from "
                f"`eval/{w['sources'][0]}` and `eval/{w['sources'][1]}`.")


def big(png: bytes, side: int = SIDE) -> bytes:
    with Image.open(io.BytesIO(png)) as image:
        return images.png(image.resize((side, side), Image.NEAREST))


def eps_map_png(values: list[list[float]], eps: float, eps_low: float, side: int = SIDE) -> bytes:
    """eps_low dark, eps yellow, in between a blend: the budget's own range, not 0..eps."""
    span = max(eps - eps_low, 1e-9)
    flat = [min(max((v - eps_low) / span, 0.0), 1.0) for row in values for v in row]
    image = Image.new("RGB", (len(values[0]), len(values)))
    image.putdata([tuple(round(lo + t * (hi - lo)) for lo, hi in zip(LOW, HIGH)) for t in flat])
    return images.png(image.resize((side, side), Image.NEAREST))


def attack_fields(attack: str, eps: float) -> dict | None:
    """/api/attack fields that redo `attack` on one image (None for clean: nothing to attack)."""
    base = attack.split("@")[0]
    budget = "eps-map" if base.endswith("-map") else "scalar"
    stem = base.removesuffix("-map")
    m = re.fullmatch(r"(pgd|mma)(\d*)", stem)
    if m:
        return {"attack": m.group(1), "steps": min(int(m.group(2) or 20), 200), "budget": budget}
    if stem == "fgsm":
        return {"attack": "pgd", "steps": 1, "step_size": str(eps), "random_start": False, "budget": "scalar"}
    if stem == "clean":
        return None
    return {"attack": "pgd", "steps": 20, "budget": "scalar"}  # aa and others: PGD-20 stands in


def replays_start(attack: str) -> bool:
    """Whether the stored evaluation's random start can be drawn again for one image: PGD at a scalar eps
    draws only its start from the seeded stream (maps and MMA draw more)."""
    return re.fullmatch(r"pgd\d*", attack) is not None


def pictures(run: str, epoch: int, item: dict, dataset: str | None, attack: str, seed: int | None) -> dict:
    index = item["index"]
    fields = {"run": run, "epoch": epoch, "index": index, "split": "test", "methods": "gradcam", "target": "label"}
    if dataset:
        fields["dataset"] = dataset
    explained = ui.explain(fields)
    extra = attack_fields(attack, explained["eps"])
    if extra and seed is not None:
        extra["seed"] = seed  # the evaluation's seed: the same picture on every visit
        if replays_start(attack):
            extra["start_position"] = item["position"]  # and the very start the evaluation drew for this image
    return {"explain": explained, "attack": ui.attack(fields | extra) if extra else None}


def verdict(correct: bool) -> str:
    return "✓ correct" if correct else "✗ wrong"


def image_row(item: dict, w: dict, kept_by: str) -> tuple[tuple[float, float], int]:
    """One image: the input, then per run its CAM, eps-map and adversarial example beside the stored verdict;
    returns (eps, eps_low) of A and how many re-attacked verdicts differ from the stored ones."""
    seeds = (w.get("seeds") or [None, None]) + [None, None]
    got = {side: pictures(w[f"run_{side}"], w[f"epoch_{side}"], item, w["dataset"], w["attack"], seed)
           for side, seed in zip(("a", "b"), seeds)}
    differ = 0
    cols = st.columns([1, 1, 1, 1, 0.2, 1, 1, 1])
    first = got["a"]["explain"]
    cols[0].image(big(images.decode(first["input"]["image_png"])), output_format="PNG", width=SIDE,
                  caption=f"test #{item['index']}: {item['label_name']}")
    for side, start in (("a", 1), ("b", 5)):
        ex, adv = got[side]["explain"], got[side]["attack"]
        res = ex["results"][0]
        cols[start].image(images.decode(res["overlay_png"]), output_format="PNG", width=SIDE,
                          caption=f"CAM ({ex['prediction']['class_name']} "
                                  f"{100 * ex['prediction']['confidence']:.0f}%)")
        cols[start + 1].image(eps_map_png(res["eps_map"], ex["eps"], ex["eps_low"]), output_format="PNG", width=SIDE,
                              caption=f"eps-map: {100 * res['mask_stats']['full_eps_fraction']:.0f}% at eps")
        stored = kept_by == side
        if adv is None:
            cols[start + 2].caption(f"clean: no adversarial example; stored: {verdict(stored)}")
        else:
            now = adv["after"]["class_index"] == item["label"]
            differ += now != stored
            note = "" if now == stored else " ⚠ differs from the stored verdict"
            cols[start + 2].image(big(images.decode(adv["adversarial_png"])), output_format="PNG", width=SIDE,
                                  caption=f"stored: {verdict(stored)} · this attack → {adv['after']['class_name']} "
                                          f"{'✓' if now else '✗'}{note}")
    return (first["eps"], first["eps_low"]), differ


def names(w: dict) -> tuple[str, str]:
    """How the two sides are called: their methods, or their run ids when both are the same method."""
    return (w["label_a"], w["label_b"]) if w["label_a"] != w["label_b"] else (w["run_a"], w["run_b"])


def gallery(w: dict) -> None:
    a, b = names(w)
    sides = {"only_a": f"Kept by {a} ({w['run_a']}) only: {w['counts']['only_a']}",
             "only_b": f"Kept by {b} ({w['run_b']}) only: {w['counts']['only_b']}"}
    c1, c2, c3 = st.columns([3, 1, 1])
    side = c1.radio("Images", list(sides), format_func=sides.get, horizontal=True, key="wn-side")
    size = c2.selectbox("Per page", PAGE_SIZES, key="wn-size")
    total = w["counts"][side]
    pages = max(1, -(-total // size))
    page = c3.number_input(f"Page (of {pages})", 1, pages, 1, key=f"wn-page-{side}-{size}")
    if not total:
        st.info("No image here: on every image one model keeps, the other keeps it too.", icon=":material/check:")
        return
    start = (int(page) - 1) * size
    found = fetch(ui.api_url(), tuple(sorted((st.session_state["wn-query"] | {"offset": start, "limit": size}).items())))
    hdr = st.columns([1, 1, 1, 1, 0.2, 1, 1, 1])
    for col, text in zip(hdr, ["**Test image**", f"**{a}: CAM**", f"**{a}: eps-map**", f"**{a}: attacked**", "",
                               f"**{b}: CAM**", f"**{b}: eps-map**", f"**{b}: attacked**"]):
        col.markdown(text)
    budgets, differ = (0.0, 0.0), 0
    with st.spinner("Computing the CAMs, eps-maps and adversarial examples of this page…"):
        for item in found[side]["items"]:
            budgets, d = image_row(item, found, side.removeprefix("only_"))
            differ += d
    eps = f"eps_low {as_255(budgets[1])}, eps {as_255(budgets[0])}"
    seeds = ", ".join(str(x) for x in dict.fromkeys(found.get("seeds") or []))
    st.caption(f"Images {start + 1}-{start + len(found[side]['items'])} of {total}. CAMs: GradCAM for the true class "
               f"(jet, red = important); eps-maps: each run's recipe on its own CAM, dark = eps_low, yellow = full eps "
               f"({eps}); AT trains with eps everywhere, its map shows what PART would make of its CAM.")
    stored = (f"Stored: the verdict of the evaluation this list comes from (`eval/{found['sources'][0]}`, "
              f"`eval/{found['sources'][1]}`, seed {seeds or 'not stored'}). ")
    if replays_start(found["attack"]) and found.get("seeds") and None not in found["seeds"]:
        why = stored + ("The pictures attack each image again from the random start that evaluation drew for it; "
                        "a verdict can still differ where one image alone is computed in another order than in "
                        "its batch and the image sits on the decision boundary.")
    else:
        why = stored + (f"The pictures are a new attack on each image alone: {found['heading']} draws more than one "
                        "random start from its stream (or none was stored), which one image cannot draw again, so "
                        "an image close to the boundary can flip, and more often than by chance: the list was "
                        "chosen by the stored draws.")
    if differ:
        st.warning(f"{differ} of the re-attacked verdicts on this page differ from the stored ones. {why}",
                   icon=":material/difference:")
    else:
        st.caption(why)


def page() -> None:
    st.title("Who wins")
    st.caption("The images one model keeps correct under an attack and the other loses, from the per-image "
               "results every evaluation stores.")
    runs = ui.runs_with_epochs()
    if len(runs) < 2:
        st.info("Two evaluated runs are needed: train and evaluate on the Train and Evaluate pages.",
                icon=":material/rule:")
        return
    query = controls(runs)
    first = fetch(ui.api_url(), tuple(sorted((query | {"limit": 1}).items())))
    attacks = first["attacks"]
    headings = first["headings"]
    attack = st.selectbox("Attack", attacks, index=attacks.index(first["attack"]), key="wn-attack",
                          format_func=headings.get,
                          help="Attacks both runs were evaluated with on the same images")
    query = query | {"attack": attack}
    st.session_state["wn-query"] = query
    w = fetch(ui.api_url(), tuple(sorted((query | {"limit": 1}).items())))
    summary(w)
    left, right = st.columns([1, 1])
    left.plotly_chart(eval_charts.discordant_by_class(w["per_class"], w["label_a"], w["label_b"]), key="wn-classes")
    with right:
        st.markdown("**Per class**")
        st.dataframe([{"class": r["class_name"], "images": r["n"], f"only {w['label_a']}": r["only_a"],
                       f"only {w['label_b']}": r["only_b"]} for r in w["per_class"]], hide_index=True,
                     width="stretch", key="wn-class-table")
    st.subheader("The images")
    gallery(w)


with ui.shown_errors():
    page()
