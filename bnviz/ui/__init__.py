"""What the pages share: the only Streamlit-aware code in bnviz.

    page.py            the page frame: title, intro, presenter mode, `show` (a figure sized for the page), the
                       workaround for Streamlit's legacy pages/ mode
    plot.py            draws a figure and updates it in place while training (a small component)
    controls.py        the settings widgets, bounded to valid values; they return a validated RunConfig
    live.py            Start/Stop and the live fragment that polls the training thread
    state.py           per-session objects (the session's Lab), released when the tab closes
    shared_link.py     the page's settings in its URL (open a shared link, keep the address bar in sync)
    upload_panel.py    "Use your own images"
    experiment_section.py   a canned experiment's Run button, progress and messages

Two modules here are plain Python, so they are tested without Streamlit: `choices.py` (what the widgets offer) and
`link_params.py` (settings <-> URL query parameters). Engine errors (`bnviz.errors.BnvizError`) become messages here.
"""
