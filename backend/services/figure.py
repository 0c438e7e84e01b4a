"""Figure 2 of the paper as a publication-ready file: runs x epochs of CAMs and the difference row, drawn with
matplotlib (the Agg canvas, no pyplot state, so requests in threads do not share a figure).

Rows are the runs, then B - A; columns are the input and the epochs. CAMs use a sequential map on 0..1,
differences a diverging map centred at 0 on the row's own symmetric scale; each has its colour bar. The
object's outline (where the dataset has a known object mask) is drawn on every map, and the numbers of
the API are written under the cells: energy on the object, top-k % IoU and Spearman's rho.
"""

from __future__ import annotations

import io
import textwrap
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import matplotlib
import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import PathPatch, Rectangle
from matplotlib.path import Path

from backend.services import render

if TYPE_CHECKING:
    from backend.services.compare import Grid

matplotlib.use("Agg")

CAM_MAP, DIFF_MAP = "viridis", "RdBu_r"  # sequential for CAMs (0..1), diverging for B - A (centred at 0)
CELL_IN, DPI = 1.25, 200
META = {"png": {"Software": "PART Studio"}, "pdf": {"Creator": "PART Studio", "Title": "Figure 2: CAMs over epochs"}}


def difference_url(x: torch.Tensor, d: torch.Tensor, scale: float) -> str:
    """A PNG data URL of d [H,W] on the diverging map (blue < 0 < red, white at 0, +-scale at the ends),
    blended 80/20 with the grey image x [C,H,W] so the object stays visible."""
    colours = matplotlib.colormaps[DIFF_MAP](np.clip(0.5 + d.float().cpu().numpy() / (2 * scale), 0, 1))[..., :3]
    grey = x.detach().float().cpu().mean(0).clamp(0, 1).numpy()[..., None]
    blended = (0.8 * colours + 0.2 * grey) * 255
    array = np.ascontiguousarray(blended.round().clip(0, 255).astype(np.uint8))
    scale_px = render.scale_for(d.shape[-1])
    return render.data_url(array.repeat(scale_px, 0).repeat(scale_px, 1))


@dataclass
class Row:
    """One row of maps in one axes: cell j spans x in [j * (side + gap), + side], y in [0, side] (pixels)."""
    ax: object
    side: int
    gap: float
    lines: list = field(default_factory=list)  # outline segments of every map: drawn as one path at the end
    colour: str = "white"

    def left(self, j: int) -> float:
        return j * (self.side + self.gap)

    def put(self, j: int, values: np.ndarray, cmap: str, vmin: float, vmax: float, edges: list | None, colour: str):
        x = self.left(j)
        image = self.ax.imshow(values, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest",
                               extent=(x, x + self.side, self.side, 0))
        if edges is not None:
            self.lines += [[(a + x + 0.5, b + 0.5) for a, b in seg] for seg in edges]
            self.colour = colour
        self.ax.add_patch(Rectangle((x, 0), self.side, self.side, fill=False, linewidth=0.6, edgecolor="black"))
        return image

    def empty(self, j: int, text: str) -> None:
        x = self.left(j)
        self.ax.add_patch(Rectangle((x, 0), self.side, self.side, facecolor="#f2f2f2", edgecolor="#cccccc"))
        self.ax.text(x + self.side / 2, self.side / 2, text, ha="center", va="center", fontsize=7, color="#777777")

    def finish(self) -> None:
        """The outlines as one path (a collection of segments would write each one apart into a PDF)."""
        if self.lines:
            vertices = np.asarray(self.lines, dtype=float).reshape(-1, 2)
            codes = np.tile([Path.MOVETO, Path.LINETO], len(self.lines))
            self.ax.add_patch(PathPatch(Path(vertices, codes), fill=False, edgecolor=self.colour, linewidth=0.6))

    def under(self, j: int, text: str) -> None:
        self.ax.text(self.left(j) + self.side / 2, self.side * 1.03, text, ha="center", va="top", fontsize=7)


def draw(grid: "Grid", fmt: str) -> bytes:
    """The figure as PNG (200 dpi) or PDF bytes. The layout is fixed in inches, and each row of maps is one
    axes (an axes per map, or matplotlib's constrained layout, would take most of the time)."""
    names = grid.runs + (["difference"] if grid.difference else [])
    n, side = len(grid.epochs), grid.image.x.shape[-1]
    gap, label, row_gap, top, bar = 0.08, 0.42, 0.42, 0.6, 1.0  # inches
    width = CELL_IN * (n + 1) + label + gap * n + bar + 0.2
    height = top + len(names) * (CELL_IN + row_gap) + 0.05
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    x0, span = 0.1 + CELL_IN + label, CELL_IN * n + gap * (n - 1)
    rows = []
    for i in range(len(names)):
        bottom = height - top - i * (CELL_IN + row_gap) - CELL_IN
        ax = fig.add_axes((x0 / width, bottom / height, span / width, CELL_IN / height))
        ax.set_axis_off()
        row = Row(ax, side, side * gap / CELL_IN)
        ax.set_xlim(0, row.left(n) - row.gap)
        ax.set_ylim(side, 0)
        rows.append(row)
    edges = None if grid.mask is None else _edges(grid.mask.numpy())
    cam_image = diff_image = None
    for i, run_id in enumerate(grid.runs):
        for j, epoch in enumerate(grid.epochs):
            image = _cam_cell(grid, rows[i], j, grid.cells[i * n + j], grid.cams.get((run_id, epoch)), edges)
            cam_image = cam_image or image
    if grid.difference:
        diff_image = _difference_row(grid, rows[-1], edges)
    for row, name in zip(rows, names):
        row.finish()
        text = name if name != "difference" else f"{grid.pair[1]}\n− {grid.pair[0]}"
        row.ax.text(-row.gap * 2, side / 2, text, rotation=90, ha="right", va="center", fontsize=8)
    for j, epoch in enumerate(grid.epochs):
        rows[0].ax.text(rows[0].left(j) + side / 2, -side * 0.04, f"epoch {epoch}", ha="center", va="bottom", fontsize=9)
    _input(grid, fig, (0.1 / width, rows[0].ax.get_position().y0, CELL_IN / width, CELL_IN / height))
    if cam_image is not None:
        _colorbar(fig, cam_image, rows[0].ax, rows[len(grid.runs) - 1].ax, "CAM (0-1)")
    if diff_image is not None:
        _colorbar(fig, diff_image, rows[-1].ax, rows[-1].ax, f"{grid.pair[1]}\n− {grid.pair[0]}")
    fig.suptitle(textwrap.fill(_title(grid), int(width * 11)), fontsize=10, y=1 - 0.08 / height, va="top")
    buffer = io.BytesIO()
    fig.savefig(buffer, format=fmt, dpi=DPI, metadata=META[fmt], **({"pil_kwargs": {"compress_level": 3}}
                                                                   if fmt == "png" else {}))
    return buffer.getvalue()


def _cam_cell(grid: "Grid", row: Row, j: int, cell: dict, cam: torch.Tensor | None, edges):
    if cam is None:
        row.empty(j, "no checkpoint" if cell["source"] == "missing" else "not available")
        return None
    image = row.put(j, cam.numpy(), CAM_MAP, 0, 1, edges, "white")
    energy, pred = cell.get("energy_on_object"), cell["prediction"]
    ok = "" if grid.image.label is None else (" ✓" if pred["class_index"] == grid.image.label else " ✗")
    row.under(j, (f"on object {energy:.2f}\n" if energy is not None else "")
              + f"{pred['class_name']} {100 * pred['confidence']:.0f}%{ok}")
    return image


def _colorbar(fig, image, top_ax, bottom_ax, label: str) -> None:
    upper, lower = top_ax.get_position(), bottom_ax.get_position()
    cax = fig.add_axes((upper.x1 + 0.012, lower.y0, 0.008, upper.y1 - lower.y0))
    bar = fig.colorbar(image, cax=cax)
    bar.ax.tick_params(labelsize=7)
    bar.set_label(label, fontsize=7)


def _difference_row(grid: "Grid", row: Row, edges):
    scale, image = grid.difference["scale"], None
    for j, cell in enumerate(grid.difference["cells"]):
        d = grid.diffs.get(cell["epoch"])
        if d is None:
            row.empty(j, "one run has\nno CAM here")
            continue
        image = row.put(j, d.numpy(), DIFF_MAP, -scale, scale, edges, "#333333")
        rho = "–" if cell["spearman"] is None else f"{cell['spearman']:.2f}"
        row.under(j, f"IoU@{grid.top_k:g}% {cell['iou']:.2f}\nρ {rho} · |Δ| {cell['mean_abs']:.2f}")
    return image


def _input(grid: "Grid", fig, rect: tuple) -> None:
    ax = fig.add_axes(rect)
    ax.set_axis_off()
    x = grid.image.x[0].detach().float().cpu()
    ax.imshow(x.permute(1, 2, 0).numpy() if x.shape[0] == 3 else x[0].numpy(), cmap="gray", vmin=0, vmax=1,
              interpolation="nearest")
    ax.set_title("input", fontsize=9)
    label = grid.image.label
    text = str(grid.classes[label]) if label is not None and label < len(grid.classes) else ""
    if grid.mask is not None:
        text += ("\n" if text else "") + "outlined on the maps:\nthe object mask"
    ax.text(0.5, -0.05, text, transform=ax.transAxes, ha="center", va="top", fontsize=7)


def _edges(mask: np.ndarray) -> list | None:
    """The object's outline: the pixel edges between object and background, as line segments in
    imshow's coordinates (pixel centres at integers); None when the mask is empty or everything."""
    if not 0 < mask.sum() < mask.size:
        return None
    padded = np.pad(mask.astype(bool), 1)
    segments = []
    for r, c in zip(*np.nonzero(padded[1:, 1:-1] != padded[:-1, 1:-1])):  # horizontal edges above row r
        segments.append([(c - 0.5, r - 0.5), (c + 0.5, r - 0.5)])
    for r, c in zip(*np.nonzero(padded[1:-1, 1:] != padded[1:-1, :-1])):  # vertical edges left of column c
        segments.append([(c - 0.5, r - 0.5), (c - 0.5, r + 0.5)])
    return segments


def _title(grid: "Grid") -> str:
    info = grid.image.info
    where = {"probe": f"probe image (test #{info.get('index')})", "dataset": f"{info.get('dataset')} "
             f"{info.get('split')} #{info.get('index')}", "upload": "uploaded image"}.get(info.get("kind"), "image")
    methods = {grid.method_of(r) for r in grid.runs}
    method = methods.pop() if len(methods) == 1 else "each run's own method"
    return f"{method} CAMs of one {where}, explaining the {'true label' if grid.image.label is not None else 'prediction'}"
