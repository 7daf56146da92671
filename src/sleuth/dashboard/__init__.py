"""The dashboard (`sleuth dashboard`, Streamlit) and the HTML report (`sleuth report`).

Needs the ``dashboard`` extra (streamlit, plotly). :mod:`.data` holds the frames and figures both
show; :mod:`.app` is the thin Streamlit script; :mod:`.report` writes the self-contained HTML.
"""
