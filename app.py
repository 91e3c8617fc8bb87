"""bnviz: watch internal covariate shift and batch normalization happen. Run: streamlit run app.py"""

import streamlit as st

st.set_page_config(page_title="bnviz: batch normalization, live", page_icon=":material/monitoring:", layout="wide")

pages = {
    "Start": [st.Page("pages/home.py", title="Home", icon=":material/home:", default=True)],
    "Live lab": [
        st.Page("pages/train.py", title="Train & watch", icon=":material/play_circle:", url_path="train"),
        st.Page("pages/compare.py", title="Compare two runs", icon=":material/compare:", url_path="compare"),
        st.Page("pages/gradients.py", title="Gradients", icon=":material/trending_down:", url_path="gradients"),
        st.Page("pages/inside_bn.py", title="Inside BatchNorm", icon=":material/biotech:", url_path="inside-bn"),
        st.Page("pages/runs.py", title="Save & open runs", icon=":material/save:", url_path="runs"),
    ],
}
st.navigation(pages).run()
