"""Streamlit sessions without a browser: a stand-in for students whose browsers run on their own laptops.

`scripts/load_test.py --class --protocol N` uses this for N of its sessions. Each one speaks Streamlit's own
websocket protocol (the BackMsg / ForwardMsg protobufs of the installed streamlit) the way the browser does:

  open        a rerun request for the page's path and query string (`train?steps=...&seed=...`);
  Start       once the page's first script run has finished, a rerun with the Start button's trigger set (the
              button's widget id comes from the page itself);
  refresh     every `auto_rerun` the server sends (the live fragment's `run_every`) is answered with fragment
              reruns at that interval, until `stop_auto_rerun`, exactly as the browser's timer does;
  first chart the first moment after the click at which the newest status line names this run's Steps and a
              bnviz chart (the `bnviz_plot` component, or `st.plotly_chart` where the component is off) arrives
              whose first trace holds data.

What it does not do is draw: the time it reports is the server's answer as it reaches the client's socket, without
the browser's part (parsing the figure and Plotly's drawing, a fraction of a second on a laptop; the real Chromium
sessions of the same run measure that part, on this machine's busy cores). It sends no other widget values:
Streamlit keeps a widget's value from the previous script run when the client does not send it, so the page keeps
the link's settings.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import threading
import time
from dataclasses import dataclass

import websockets
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

FINISHED_SUCCESSFULLY = ForwardMsg.ScriptFinishedStatus.FINISHED_SUCCESSFULLY
STATUS_STEP = re.compile(r"step ([\d,]+) of ([\d,]+)")
TAGS = re.compile(r"<[^>]+>")


@dataclass
class ProtocolSession:
    """One session's timeline, in seconds on the caller's clock (time.monotonic() - t0)."""

    path: str  # "train"
    query: str  # "steps=3000&seed=7"
    steps: int  # the link's Steps: the status line must name it before a chart counts
    start_key: str = "train_start"  # the Start button's key (its widget id ends with it)
    queue_text: str = "Waiting for a free slot"
    opened: float = float("nan")
    clicked: float = float("nan")
    first_chart: float = float("nan")
    step_seen: int = 0
    queued_seen: bool = False
    bytes_received: int = 0
    problem: str = ""


def rerun(query: str, page_hash: str = "", page_name: str = "", trigger: str = "", fragment: str = "") -> bytes:
    """A BackMsg asking for a script run: the whole page, a button's click (trigger) or a fragment's refresh."""
    msg = BackMsg()
    state = msg.rerun_script
    state.query_string, state.page_script_hash, state.page_name = query, page_hash, page_name
    if trigger:
        widget = state.widget_states.widgets.add()
        widget.id, widget.trigger_value = trigger, True
    if fragment:
        state.fragment_id, state.is_auto_rerun = fragment, True
    return msg.SerializeToString()


def chart_has_data(element) -> bool:
    """True for a bnviz chart (component or st.plotly_chart) whose first trace has a non-empty x, y or z."""
    kind = element.WhichOneof("type")
    if kind == "bidi_component" and element.bidi_component.component_name.endswith("bnviz_plot"):
        try:
            component = element.bidi_component
            if component.WhichOneof("data") == "bytes":  # bnviz.ui.plot.pack: JSON, a newline, the figure's JSON
                spec = json.loads(component.bytes.decode("utf-8").split("\n", 1)[1])
            else:
                spec = json.loads(json.loads(component.json)["spec"])
        except (ValueError, KeyError, TypeError, IndexError):
            return False
    elif kind == "plotly_chart":
        try:
            spec = json.loads(element.plotly_chart.spec)
        except ValueError:
            return False
    else:
        return False
    traces = spec.get("data") or []
    return bool(traces) and any(_has_values(traces[0].get(axis)) for axis in ("x", "y", "z"))


def _has_values(values) -> bool:
    if isinstance(values, dict) and "bdata" in values:  # Plotly's base64-encoded typed array
        return len(base64.b64decode(values["bdata"])) > 0
    return isinstance(values, list) and len(values) > 0


def element_text(element) -> str:
    kind = element.WhichOneof("type")
    if kind == "markdown":
        return TAGS.sub(" ", element.markdown.body)
    if kind == "alert":
        return element.alert.body
    return ""


async def run_session(s: ProtocolSession, url: str, t0: float, stop: asyncio.Event, timeout: float) -> None:
    """Open the page, press Start as soon as it is drawn, refresh like a browser until `stop`; fills in s. Never
    raises: a failure becomes s.problem."""
    ticks: list[asyncio.Task] = []
    try:
        async with websockets.connect(f"{url.replace('http', 'ws', 1)}/_stcore/stream", subprotocols=["streamlit"],
                                      max_size=None, open_timeout=timeout, ping_interval=None) as ws:
            s.opened = time.monotonic() - t0
            await ws.send(rerun(s.query, page_name=s.path))
            page_hash, start_id, status = "", "", ""
            fragments: dict[str, asyncio.Task] = {}

            async def tick(fragment: str, interval: float) -> None:
                while True:
                    await asyncio.sleep(interval)
                    await ws.send(rerun(s.query, page_hash, fragment=fragment))

            while not stop.is_set():
                try:
                    data = await asyncio.wait_for(ws.recv(), 0.5)
                except TimeoutError:
                    continue
                s.bytes_received += len(data)
                msg = ForwardMsg()
                msg.ParseFromString(data)
                kind = msg.WhichOneof("type")
                if kind == "navigation":
                    for page in msg.navigation.app_pages:
                        if page.url_pathname == s.path:
                            page_hash = page.page_script_hash
                elif kind == "auto_rerun":
                    fragment = msg.auto_rerun.fragment_id
                    if fragment in fragments:
                        fragments.pop(fragment).cancel()
                    fragments[fragment] = asyncio.create_task(tick(fragment, msg.auto_rerun.interval))
                    ticks.append(fragments[fragment])
                elif kind == "stop_auto_rerun":
                    task = fragments.pop(msg.stop_auto_rerun.fragment_id, None)
                    if task is not None:
                        task.cancel()
                elif (kind == "script_finished" and msg.script_finished == FINISHED_SUCCESSFULLY and start_id
                      and s.clicked != s.clicked):  # the whole page drawn (not a run cut short by a rerun), not clicked
                    await ws.send(rerun(s.query, page_hash, trigger=start_id))
                    s.clicked = time.monotonic() - t0
                elif kind == "delta" and msg.delta.WhichOneof("type") == "new_element":
                    element = msg.delta.new_element
                    if element.WhichOneof("type") == "button" and element.button.id.endswith(s.start_key):
                        start_id = element.button.id
                    if s.clicked != s.clicked or s.first_chart == s.first_chart:
                        continue
                    text = element_text(element)
                    if s.queue_text in text:
                        s.queued_seen = True
                    if STATUS_STEP.search(text):
                        status = text
                    match = STATUS_STEP.search(status)
                    if match and int(match[2].replace(",", "")) == s.steps and chart_has_data(element):
                        s.first_chart = time.monotonic() - t0
                        s.step_seen = int(match[1].replace(",", ""))
    except Exception as exc:  # noqa: BLE001 - one session's failure is a result, not the end of the test
        s.problem = f"{type(exc).__name__}: {exc}"[:80]
    finally:
        for task in ticks:
            task.cancel()


class ProtocolClass:
    """Runs the sessions on an event loop in a thread of its own: start() opens them all at once, stop() closes
    them (asyncio.run cancels whatever is left, so nothing outlives stop())."""

    def __init__(self, sessions: list[ProtocolSession], url: str, timeout: float = 120.0):
        self.sessions, self.url, self.timeout = sessions, url, timeout
        self.thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None

    def start(self, t0: float) -> None:
        async def everyone():
            self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
            self._ready.set()
            await asyncio.gather(*(run_session(s, self.url, t0, self._stop, self.timeout) for s in self.sessions))

        self.thread = threading.Thread(target=asyncio.run, args=(everyone(),), name="protocol-sessions", daemon=True)
        self.thread.start()
        self._ready.wait(10)

    def stop(self, timeout: float = 15.0) -> None:
        if self._loop is not None and self.thread is not None and self.thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
            self.thread.join(timeout)
