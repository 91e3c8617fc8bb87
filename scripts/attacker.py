"""The load test's hostile session (issue 13): it uploads the crafted files of the issue's rows 1, 2 and 4 while the
other sessions train, and records what the page answered and how long it took. Used by scripts/load_test.py.

    row 1  a saved-run zip whose arrays.npz carries one extra, highly compressed array declaring 1 GiB
    row 2  a CSV whose header has 400,000 commas
    row 4  an NPZ whose `classes` holds one 50 MB name
"""

from __future__ import annotations

import io
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import browser_support as bs
import numpy as np

MB = 1024 * 1024
ANSWER_S = 120  # how long the attacker waits for the page's message about one file


def _run_zip_with_huge_array(folder: Path) -> bytes:
    """A real saved run (a short training run saved by bnviz) whose arrays.npz gains a member declaring 1 GiB."""
    from bnviz.engine.config import RunConfig
    from bnviz.engine.trainer import train

    run_dir = train(RunConfig(steps=5, eval_every=5)).history.save(folder / "run")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(run_dir.iterdir()):
            data = path.read_bytes()
            if path.name == "arrays.npz":
                data = _npz_with_extra(data, "extra", (MB // 8 * 1024,))  # 1 GiB of float64 zeros
            zf.writestr(f"run/{path.name}", data)
    return buffer.getvalue()


def _npz_with_extra(original: bytes, member: str, shape: tuple[int, ...]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(original)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info))
        with dst.open(member + ".npy", "w", force_zip64=True) as stream:
            np.lib.format.write_array_header_1_0(stream, {"descr": "<f8", "fortran_order": False, "shape": shape})
            left = int(np.prod(shape)) * 8
            while left:
                stream.write(bytes(min(left, MB)))
                left -= min(left, MB)
    return out.getvalue()


def _wide_csv() -> bytes:
    return b"label" + b",p" * 400_000 + b"\n0" + b",0" * 400_000 + b"\n"


def _npz_with_long_class_name() -> bytes:
    buffer = io.BytesIO()
    x = np.zeros((20, 8, 8), dtype=np.uint8)
    y = np.arange(20) % 2
    np.savez_compressed(buffer, x=x, y=y, classes=np.array(["a" * (50 * MB), "b"]))
    return buffer.getvalue()


@dataclass
class Attack:
    row: int
    path: Path
    page: str  # "runs": Save & open runs; "train": the upload panel of Train & watch
    answer: str = ""
    seconds: float = 0.0


@dataclass
class Attacker:
    """One browser session that sends the three files, one at a time, between the load test's looks."""

    folder: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="bnviz-attacker-")))
    attacks: list[Attack] = field(default_factory=list)
    page: object = None

    def prepare(self) -> None:
        files = {1: ("run.zip", _run_zip_with_huge_array(self.folder), "runs"),
                 2: ("wide.csv", _wide_csv(), "train"), 4: ("names.npz", _npz_with_long_class_name(), "train")}
        for row, (name, data, page) in files.items():
            path = self.folder / name
            path.write_bytes(data)
            self.attacks.append(Attack(row, path, page))
            print(f"  attacker: row {row} file {name}, {len(data) / MB:.2f} MB", flush=True)

    def attack(self, index: int, url: str) -> None:
        """Send attack `index` (if any is left) and wait for the page's error message."""
        if index >= len(self.attacks):
            return
        a, page = self.attacks[index], self.page
        start = time.monotonic()
        if a.page == "runs":
            page.goto(f"{url}/runs", wait_until="commit")
            bs.wait_for_title(page, "Save & open runs", 120)
            page.locator('[data-testid="stMain"] input[type="file"]').set_input_files(str(a.path))
        else:
            page.goto(f"{url}/train", wait_until="commit")
            bs.wait_for_title(page, "Train & watch", 120)
            sidebar = page.locator('[data-testid="stSidebar"]')
            sidebar.get_by_text("Use your own images").click()
            sidebar.locator('input[type="file"]').set_input_files(str(a.path))
        try:
            bs.poll(lambda: bs.error_texts(page), ANSWER_S, what=f"the answer to row {a.row}'s file")
            a.answer = " ".join(bs.error_texts(page))[:160]
        except Exception as exc:  # noqa: BLE001 - no answer in time is a result of the test
            a.answer = f"no message within {ANSWER_S} s ({type(exc).__name__})"
        a.seconds = time.monotonic() - start
        print(f"  attacker: row {a.row} answered in {a.seconds:.1f} s: {a.answer[:100]}", flush=True)

    def refused_all(self) -> bool:
        """Every file got an error message and none a traceback."""
        return all(a.answer and not a.answer.startswith("no message") and "Traceback" not in a.answer
                   for a in self.attacks)
