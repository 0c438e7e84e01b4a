"""The runs x epochs grid of Compare as one HTML table: rows are the runs, then B - A; each cell has its map
at the chosen size and its numbers under it. Epochs that do not fit beside each other at that size continue
in a band below; a click on a map enlarges it (until the next click elsewhere)."""

from __future__ import annotations

import html

from frontend.compare_charts import DIFF_COLOURS

STYLE = """<style>
.cmp-wrap{padding:4px 0 10px 0}
.cmp{border-collapse:separate;border-spacing:6px 2px;font-family:"Source Sans Pro",sans-serif;color:#31333f}
.cmp th{font-size:14px;font-weight:600;text-align:center;white-space:nowrap;padding-bottom:2px}
.cmp td{vertical-align:top;text-align:center;font-size:12.5px;line-height:1.35;padding-bottom:8px}
.cmp td.who{text-align:left;position:sticky;left:0;background:#fff;z-index:2;min-width:150px;max-width:190px;
  font-size:13.5px;padding-right:8px}
.cmp td.who code{font-size:12px;background:#f0f2f6;padding:1px 4px;border-radius:4px;word-break:break-all}
.cmp tr.diff td{padding-bottom:18px}
.cmp img{image-rendering:pixelated;display:block;margin:0 auto;border-radius:3px;cursor:zoom-in;
  transition:transform .15s;position:relative}
.cmp img:focus{transform:scale(2.2);z-index:5;outline:2px solid #31333f;cursor:zoom-out;box-shadow:0 4px 18px #0005}
.cmp td:nth-child(2) img:focus{transform-origin:left center}
.cmp td:last-child img:focus{transform-origin:right center}
.cmp .phase{font-size:12px;color:#808495}.cmp .phase.rw{color:#d62728;font-weight:600}
.cmp .num{font-variant-numeric:tabular-nums}.cmp .bad{color:#d62728}
.cmp .empty{background:#f4f4f6;color:#9a9caa;display:flex;align-items:center;justify-content:center;border-radius:3px;
  margin:0 auto;font-size:12px}
.cmp .ol{position:relative;margin:0 auto}.cmp .ol img.edge{position:absolute;left:0;top:0;pointer-events:none;
  cursor:default;transition:none}.cmp .ol:focus-within img.edge{display:none}
.cmp-bar{display:flex;align-items:center;gap:8px;font-size:12.5px;color:#31333f;margin:2px 0}
.cmp-bar span.g{height:12px;flex:0 0 260px;border-radius:2px}
</style>"""


PAGE_WIDTH, LABEL_WIDTH = 980, 175  # px of Streamlit's centred main column at 1440 px, and the row labels


def _text(value: object) -> str:
    return html.escape(str(value))


def _image(url: str, size: int, title: str) -> str:
    return (f'<img src="{url}" width="{size}" height="{size}" tabindex="0" alt="{_text(title)}" '
            f'title="{_text(title)} (click to enlarge)">')


def _empty(size: int, text: str) -> str:
    return f'<div class="empty" style="width:{size}px;height:{size}px">{_text(text)}</div>'


def percent(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


def _outlined(image: str, size: int, outline: str | None) -> str:
    """The map with the object's outline drawn over it (hidden while the map is enlarged)."""
    if outline is None:
        return image
    return (f'<div class="ol" style="width:{size}px;height:{size}px">{image}'
            f'<img class="edge" src="{outline}" width="{size}" height="{size}" alt=""></div>')


def cam_cell(cell: dict, size: int, label: int | None, phase: str, reweighted: bool,
             outline: str | None = None) -> str:
    head = f'<div class="phase{" rw" if reweighted else ""}">{_text(phase)}</div>'
    if cell.get("source") == "size":  # the page says once which runs take which size
        side = (cell.get("input_size") or [0, "?"])[1]
        return head + _empty(size, f"takes {side}x{side}")
    if not cell["available"] or not cell.get("overlay_png"):
        return head + _empty(size, "no checkpoint" if cell.get("message") is None else "not available") + (
            f'<div style="max-width:{size}px">{_text(cell["message"])}</div>' if cell.get("message") else "")
    pred = cell["prediction"]
    right = label is None or pred["class_index"] == label
    mark = "" if label is None else (" ✓" if right else " ✗")
    energy = cell.get("energy_on_object")
    lines = [f'<span class="num">{percent(energy)}</span> on object' if energy is not None else "",
             f'<span class="{"" if right else "bad"}">{_text(pred["class_name"])} '
             f'<span class="num">{100 * pred["confidence"]:.0f}%</span>{mark}</span>']
    title = f"{cell['run']}, epoch {cell['epoch']}"
    return head + _outlined(_image(cell["overlay_png"], size, title), size, outline) + \
        "<br>".join(line for line in lines if line)


def diff_cell(cell: dict, size: int, top_k: float) -> str:
    if not cell["available"]:
        return _empty(size, "needs both maps")
    rho = "–" if cell.get("spearman") is None else f"{cell['spearman']:.2f}"
    change = cell.get("energy_change")
    lines = [f'IoU<sub>{top_k:g}%</sub> <span class="num">{cell["iou"]:.2f}</span> · ρ <span class="num">{rho}</span>',
             f'mean |Δ| <span class="num">{cell["mean_abs"]:.3f}</span>']
    if change is not None:
        lines.append(f'on object <span class="num">{100 * change:+.1f}</span> pt')
    return _image(cell["difference_png"], size, f"B − A, epoch {cell['epoch']}") + "<br>".join(lines)


def bands(count: int, size: int, width: int = PAGE_WIDTH) -> list[range]:
    """The epochs' columns split into bands that fit the page at this cell size, as even as can be."""
    per = max(1, (width - LABEL_WIDTH) // (size + 12))
    k = -(-count // per)  # bands needed
    even = -(-count // k)
    return [range(i, min(i + even, count)) for i in range(0, count, even)]


def table(result: dict, rows: list[dict], size: int, label: int | None, outline: str | None = None) -> str:
    """rows: per run {'id', 'title', 'note', 'phases': {epoch: (text, reweighted)}}, in the result's order.
    Epochs that do not fit beside each other continue in a band below, with every row again. `outline`: a
    transparent PNG of the object's edge, drawn over every map."""
    epochs, diff = result["epochs"], result.get("difference")
    out = [STYLE, '<div class="cmp-wrap"><table class="cmp">']
    for band in bands(len(epochs), size):
        out.append('<tr><th></th>' + "".join(f"<th>epoch {epochs[j]}</th>" for j in band) + "</tr>")
        for i, row in enumerate(rows):
            out.append(f'<tr><td class="who"><b>{_text(row["title"])}</b><br><code>{_text(row["id"])}</code>'
                       + (f'<br><span class="phase">{_text(row["note"])}</span>' if row.get("note") else "") + "</td>")
            for j in band:
                phase, reweighted = row["phases"].get(epochs[j], ("", False))
                cell = result["cells"][i * len(epochs) + j]
                out.append(f"<td>{cam_cell(cell, size, label, phase, reweighted, outline)}</td>")
            out.append("</tr>")
        if diff:
            out.append(f'<tr class="diff"><td class="who"><b>B − A</b><br><code>{_text(diff["run_b"])}</code><br>'
                       f'minus <code>{_text(diff["run_a"])}</code></td>')
            out += [f"<td>{diff_cell(diff['cells'][j], size, diff['top_k'])}</td>" for j in band]
            out.append("</tr>")
    out.append("</table></div>")
    return "".join(out)


def colour_bars(scale: float | None, cam_gradient: str) -> str:
    """The two scales of the grid: the CAM colormap (0..1, a CSS gradient), the diverging one for B - A (+-scale)."""
    jet = cam_gradient
    bars = [f'<div class="cmp-bar"><span style="width:150px">CAM (runs\' rows)</span><span>0</span>'
            f'<span class="g" style="background:{jet}"></span><span>1</span></div>']
    if scale is not None:
        diverging = f"linear-gradient(90deg,{','.join(DIFF_COLOURS)})"
        bars.append(f'<div class="cmp-bar"><span style="width:150px">B − A (last row)</span>'
                    f'<span class="num">−{scale:.3f}</span><span class="g" style="background:{diverging}"></span>'
                    f'<span class="num">+{scale:.3f}</span><span>white = no difference; red: B puts more weight '
                    f'there, blue: A does; the ends are the row\'s largest |B − A|</span></div>')
    return STYLE + "".join(bars)
