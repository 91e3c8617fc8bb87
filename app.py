"""bnviz: watch internal covariate shift and batch normalization happen. Run: streamlit run app.py"""

from pathlib import Path

import streamlit as st

# A local favicon: without one, Streamlit fetches the page's material icon from fonts.gstatic.com (offline: fails).
FAVICON = Path(__file__).parent / "assets" / "favicon.png"
st.set_page_config(page_title="bnviz: batch normalization, live", page_icon=str(FAVICON), layout="wide")

pages = {
    # Every page file is named like its url_path: a fresh server that is first asked for /bn-steps looks the page up
    # by file name before app.py has run once, and says "Page not found" if they differ.
    "Start": [st.Page("pages/home.py", title="Home", icon=":material/home:", default=True)],
    "Live lab": [
        st.Page("pages/train.py", title="Train & watch", icon=":material/play_circle:", url_path="train"),
        st.Page("pages/compare.py", title="Compare two runs", icon=":material/compare:", url_path="compare"),
        st.Page("pages/gradients.py", title="Gradients", icon=":material/trending_down:", url_path="gradients"),
        st.Page("pages/inside-bn.py", title="Inside BatchNorm", icon=":material/biotech:", url_path="inside-bn"),
        st.Page("pages/runs.py", title="Save & open runs", icon=":material/save:", url_path="runs"),
    ],
    "Understand": [
        st.Page("pages/bn-steps.py", title="BatchNorm step by step", icon=":material/calculate:", url_path="bn-steps"),
        st.Page("pages/zoo.py", title="The normalization zoo", icon=":material/grid_view:", url_path="zoo"),
        st.Page("pages/evidence.py", title="Is it really ICS?", icon=":material/science:", url_path="evidence"),
        st.Page("pages/learn.py", title="Quiz and glossary", icon=":material/school:", url_path="learn"),
    ],
    "Beyond the basics": [
        st.Page("pages/inference.py", title="Inference and depth", icon=":material/layers:", url_path="inference"),
        st.Page("pages/backprop.py", title="Backprop through BN", icon=":material/undo:", url_path="backprop"),
        st.Page("pages/statistics.py", title="Running statistics", icon=":material/query_stats:",
                url_path="statistics"),
        st.Page("pages/scale.py", title="Scale and weight decay", icon=":material/straighten:", url_path="scale"),
        st.Page("pages/remedies.py", title="Small batches, dropout", icon=":material/healing:",
                url_path="remedies"),
    ],
}
# expanded: every page listed (more than 12 would fold to 10 behind 'View more').
# Before anything slow: the sidebar and deep links must not wait for torch.
page = st.navigation(pages, expanded=True)

from bnviz.ui.page import mark_app_run  # noqa: E402

mark_app_run()  # page_header tells this run from one in Streamlit's legacy pages/ mode (see style.py)

from bnviz.ui.shared_link import SharedLink  # noqa: E402
from bnviz.ui.state import warm_up  # noqa: E402 - imports torch: seconds on a cold server

link = SharedLink(page.url_path)  # the URL's settings -> the widgets, before the page draws them
warm_up()
page.run()
link.publish()  # the widgets' settings -> the URL (copying the address bar shares the experiment)
