"""PART Studio dashboard: `streamlit run frontend/app.py` (the backend URL is PART_API_URL).

The entry script: page config, navigation over the five pages, and one backend check so every page
shows the same banner, never a traceback, when the API is down.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = str(Path(__file__).resolve().parents[1])
if ROOT not in sys.path:  # `streamlit run` puts frontend/ on the path, not the repository root
    sys.path.insert(0, ROOT)

import streamlit as st  # noqa: E402

from frontend import ui  # noqa: E402

st.set_page_config(page_title="PART Studio", page_icon=":material/target:", layout="wide")

# views/, not pages/: a pages/ folder next to this script switches Streamlit to its legacy multipage
# mode, which runs the page files without this script.
PAGES = [
    st.Page("views/explore.py", title="Explore", icon=":material/search:", default=True),
    st.Page("views/compare.py", title="Compare", icon=":material/compare:"),
    st.Page("views/train.py", title="Train", icon=":material/model_training:"),
    st.Page("views/evaluate.py", title="Evaluate", icon=":material/analytics:"),
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
               f"{health.get('runs')} run{'' if health.get('runs') == 1 else 's'}")
page.run()
