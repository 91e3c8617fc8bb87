"""Placeholder: this page is being written."""
import streamlit as st

st.info("This page is coming soon.")
