"""Every limit that protects a server shared by a class, in one place (README's "Limits" section lists them).

What one anonymous user can make the server do, they can do to everyone: each file they send and each run they
start is bounded here. The modules that apply a limit import it by name (tests lower them there with monkeypatch).
"""

from __future__ import annotations

import os

# ---- your own images (bnviz.engine.uploads and the modules it uses) ---------------------------------------------
MAX_FILE_BYTES = 100 * 1024 * 1024  # an uploaded file; .streamlit/config.toml's maxUploadSize matches
MAX_UNPACKED_BYTES = 400 * 1024 * 1024  # all members of a zip (or files of a folder, or arrays of an NPZ) together
MAX_IMAGES = 20_000
MAX_CLASSES = 100
MAX_CLASS_NAME = 64  # characters in a class name (a folder name or an entry of an NPZ's 'classes')
MAX_LABEL = 1_000_000  # labels (without names) are whole numbers of at most this size
MAX_IMAGE_PIXELS = 4096 * 4096  # one source image; larger ones are skipped (decompression bombs)
MAX_SOURCE_PIXELS = 500_000_000  # all source images together: bounds the decoding time of one upload
MAX_VALUES = 32_000_000  # images x channels x size x size after resizing: 128 MB as float32
SIZE_RANGE = (4, 64)
MAX_CSV_COLUMNS = SIZE_RANGE[1] ** 2 + 1  # a CSV's header: the label and the pixels of the largest square image
AUTO_SIZE_CAP = 32  # auto size never goes above this: a 64x64 image has 16 times the pixels of a 16x16 one

# ---- run files (bnviz.engine.runfile) -----------------------------------------------------------------------------
MAX_ZIP_BYTES = 100 * 1024 * 1024  # the upload cap; the app's server cap is set to match
MAX_RUN_UNPACKED_BYTES = 400 * 1024 * 1024
# Memory one opened run may take: twice the 32 MiB budget a recording's history is sized to (history.capacity_for;
# the largest run the app can train takes 34 MB), so an upload of up to 4 runs costs a session at most 256 MiB.
MAX_RUN_MEMORY = 64 * 1024 * 1024

# ---- a saved run's folder (bnviz.engine.history: CLI `report`, notebooks, and every run the app opens) ------------
MAX_RUN_FILE_BYTES = 200 * 1024 * 1024  # one file of a run folder; larger ones are refused before reading
MAX_LOAD_BYTES = 1024 * 1024 * 1024  # a run.json whose layout and capacity would need more memory is refused
MAX_JSON_DEPTH = 32  # run.json nests 5 levels deep; deeper files are refused (Download would recurse on them)
MAX_NAME_CHARS = 200  # a layer's, weight's or stage's name in a layout (module paths of watched models are shorter)

# ---- the parsing process (bnviz.engine.sandbox): every upload and run file the app opens is read there -------------
PARSE_MEMORY_BYTES = int(os.environ.get("BNVIZ_PARSE_MEMORY_MB", "1024")) * 1024 * 1024  # address space it may add
PARSE_SECONDS = float(os.environ.get("BNVIZ_PARSE_S", "60"))  # wall clock, then the process is killed
PARSE_WORKERS = 2  # files read at the same time; a third waits (at most PARSE_SECONDS) for a free one
