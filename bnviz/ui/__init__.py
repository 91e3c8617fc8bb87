"""The only Streamlit-aware code in bnviz: session state, shared controls and live fragments."""
