"""Child processes that do not import the parent's `__main__` script.

multiprocessing tells each new process (spawn and forkserver) to import the parent's `__main__` first. Under
`streamlit run` that is app.py (Streamlit installs each script run as `__main__`), so a child would run the app's
top level (Streamlit, a warm-up training, a page) before doing its own work: about 2.5 s a process, measured for
the parsing sandbox. Processes whose name is registered here skip it; they import only what their target needs.
"""

from __future__ import annotations

import threading
from multiprocessing import spawn

_NAMES: set[str] = set()
_LOCK = threading.Lock()


def skip_main_for(process_name: str) -> None:
    """From now on, processes named `process_name` start without importing the parent's `__main__`."""
    with _LOCK:
        if not _NAMES:
            spawn.get_preparation_data = _without_main(spawn.get_preparation_data)
        _NAMES.add(process_name)


def _without_main(get_preparation_data):
    def preparation_data(name):
        data = get_preparation_data(name)
        if name in _NAMES:
            data.pop("init_main_from_path", None)
            data.pop("init_main_from_name", None)
        return data

    return preparation_data
