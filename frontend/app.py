"""PART Studio dashboard: `streamlit run frontend/app.py` (the backend URL is PART_API_URL).

The entry script: page config, navigation over the six pages, and one backend check so every page
shows the same banner, never a traceback, when the API is down.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = str(Path(__file__).resolve().parents[1])
if ROOT not in sys.path:  # `streamlit run` puts frontend/ on the path, not the repository root
    sys.path.insert(0, ROOT)

import streamlit as st  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

from frontend import ui  # noqa: E402


def target_icon(side: int = 64) -> Image.Image:
    """The tab icon, drawn here: a material or emoji icon would be fetched from a font CDN (none offline)."""
    image = Image.new("RGBA", (side, side), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    for k, colour in enumerate(("#d62728", "#ffffff", "#d62728", "#ffffff", "#d62728")):
        r = side / 2 - 1 - k * side / 10
        draw.ellipse((side / 2 - r, side / 2 - r, side / 2 + r, side / 2 + r), fill=colour)
    return image


st.set_page_config(page_title="PART Studio", page_icon=target_icon(), layout="wide")

# views/, not pages/: a pages/ folder next to this script switches Streamlit to its legacy multipage
# mode, which runs the page files without this script.
PAGES = [
    st.Page("views/explore.py", title="Explore", icon=":material/search:", default=True),
    st.Page("views/compare.py", title="Compare", icon=":material/compare:"),
    st.Page("views/train.py", title="Train", icon=":material/model_training:"),
    st.Page("views/evaluate.py", title="Evaluate", icon=":material/analytics:"),
    st.Page("views/wins.py", title="Who wins", icon=":material/rule:", url_path="wins"),
    st.Page("views/theory.py", title="Theory", icon=":material/functions:"),
]
page = st.navigation(PAGES, position="top")

with st.sidebar:
    st.markdown("### :material/target: PART Studio")
    st.caption("Pixel-reweighted adversarial training (Zhang et al., ICML 2024): CAMs decide which pixels "
               "get the full attack budget eps and which get eps_low.")

health = ui.require_backend()
with st.sidebar:
    st.caption(f"Backend `{ui.api().base_url}` · v{health.get('version')} · {health.get('device')} · "
               f"{ui.runs_count(health)}")
    if health.get("supervising") is False:  # another server on this checkpoints folder launches the jobs
        st.caption(f"This backend does not launch jobs: the server with pid {health.get('supervisor_pid') or '?'} "
                   "supervises this checkpoints folder; jobs queued here start there.")
page.run()
