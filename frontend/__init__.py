"""PART Studio dashboard (Streamlit); it reaches the core library only through the HTTP API."""
