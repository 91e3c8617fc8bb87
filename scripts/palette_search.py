"""How bnviz's line colours were chosen (style.PALETTE), and the numbers behind them.

Prints, for Okabe-Ito's palette as bnviz used it and for style.PALETTE: each colour's WCAG contrast on white, and the
smallest CAM02-UCS distance between two palette colours with normal vision and under simulated deuteranopia,
protanopia and tritanopia (colorspacious, severity 100). Then searches sRGB (steps of 4) for the stand-ins: colours
with 3:1 on white (WCAG 2.2 SC 1.4.11), at least --distinct apart from the kept colours under every simulation, in the
hue range of the colour they replace. Needs colorspacious (requirements-dev.txt).

    python scripts/palette_search.py [--distinct 11]
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import colorspacious
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bnviz.figures import style  # noqa: E402

CVD = (None, "deuteranomaly", "protanomaly", "tritanomaly")
OLD = {"blue": "#0072B2", "vermillion": "#D55E00", "green": "#009E73", "purple": "#CC79A7", "black": "#000000",
       "orange": "#E69F00", "sky": "#56B4E9", "grey": "#888888"}  # bnviz's line colours before issue 16
KEPT = ("blue", "vermillion", "green", "purple", "black")  # BN blue, no BN vermillion: kept as users know them


def rgb(colour: str) -> np.ndarray:
    return np.array([int(colour[i:i + 2], 16) for i in (1, 3, 5)]) / 255


def contrast_on_white(c: np.ndarray) -> np.ndarray:
    linear = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    return 1.05 / (linear @ [0.2126, 0.7152, 0.0722] + 0.05)


def simulate(c: np.ndarray, cvd: str | None) -> np.ndarray:
    if cvd is None:
        return c
    return np.clip(colorspacious.cspace_convert(c, {"name": "sRGB1+CVD", "cvd_type": cvd, "severity": 100}, "sRGB1"),
                   0, 1)


def ucs(c: np.ndarray) -> np.ndarray:
    return colorspacious.cspace_convert(c, "sRGB1", "CAM02-UCS")


def nearest(candidates: np.ndarray, others: list[str]) -> np.ndarray:
    """Per candidate: its smallest distance to any of `others`, over normal vision and the three simulations."""
    out = np.full(len(candidates), np.inf)
    for cvd in CVD:
        a = ucs(simulate(candidates, cvd))
        for other in others:
            b = ucs(simulate(rgb(other)[None], cvd))[0]
            out = np.minimum(out, np.linalg.norm(a - b, axis=1))
    return out


def distance(a: str, b: str, cvd: str | None) -> float:
    pair = ucs(simulate(np.stack([rgb(a), rgb(b)]), cvd))
    return float(np.linalg.norm(pair[0] - pair[1]))


def report(name: str, palette: dict[str, str]) -> None:
    print(f"\n{name}")
    for key, colour in palette.items():
        print(f"  {key:>12} {colour}  {contrast_on_white(rgb(colour)):5.2f}:1 on white")
    for cvd in CVD:
        d, ka, kb = min((distance(a, b, cvd), ka, kb)
                        for (ka, a), (kb, b) in itertools.combinations(palette.items(), 2))
        print(f"  closest pair, {cvd or 'normal vision'}: {ka} / {kb} {d:.1f}")


def search(distinct: float, shown: int = 5) -> None:
    """For each replaced colour: the candidates nearest to it (CAM02-UCS) with 3:1 on white and at least `distinct`
    from every kept colour under every simulation. bnviz's picks were made by hand from these lists (a burnt
    orange from a darker variant of the first, periwinkle next to the first sky, a darker grey), then checked
    together by `report`."""
    grid = np.array(list(itertools.product(range(0, 256, 4), repeat=3))) / 255
    grid = grid[contrast_on_white(grid) >= 3.05]
    coords = ucs(grid)
    apart = nearest(grid, [OLD[k] for k in KEPT]) >= distinct
    for name in ("orange", "sky", "grey"):
        near = np.linalg.norm(coords - ucs(rgb(OLD[name])[None])[0], axis=1)
        idx = np.flatnonzero(apart)
        idx = idx[np.argsort(near[idx])][:shown]
        found = ", ".join("#" + "".join(f"{round(v * 255):02X}" for v in grid[i])
                          + f" ({contrast_on_white(grid[i]):.2f}:1, {near[i]:.0f} from it)" for i in idx)
        print(f"  {name} {OLD[name]}: {found}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--distinct", type=float, default=11.0)
    args = parser.parse_args()
    report("before (Okabe-Ito)", OLD)
    report("now (style.PALETTE)", style.PALETTE)
    print(f"\nsearch (>= {args.distinct} apart, 3:1 on white):")
    search(args.distinct)


if __name__ == "__main__":
    main()
