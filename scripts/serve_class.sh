#!/bin/sh
# Serve bnviz to a class on the local network: every address of this machine, port $PORT (default 8501), at most
# $BNVIZ_MAX_JOBS runs training at once (default: one per core). .streamlit/config.toml supplies the rest (no usage
# statistics, no tracebacks for viewers, XSRF and CORS protection on, 100 MB upload cap, file watcher off).
# Runs beyond the cap wait in a queue; identical runs are trained once (BNVIZ_CACHE_MB, BNVIZ_RUNS_PER_CLIENT).
# BNVIZ_WARM=presets: the first page opened (yours, before class) starts training every preset once in the
# background, so the class gets them from the cache at once.
# BNVIZ_BACKEND=ray BNVIZ_RAY_ADDRESS=auto: runs train in a Ray cluster (README, "Serve a course").
# No authentication and no TLS: see README, "Serve it for a class".
cd "$(dirname "$0")/.." || exit 1
exec python -m streamlit run app.py --server.address "${BNVIZ_ADDRESS:-0.0.0.0}" --server.port "${PORT:-8501}" \
    --server.headless true "$@"
