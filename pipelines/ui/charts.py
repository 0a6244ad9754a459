"""Charts as inline SVG: matplotlib for plots (cached by their data), plain SVG for a run's step graph."""
from __future__ import annotations

import html
import io
import threading
from functools import lru_cache
from typing import Sequence

STATUS_COLOURS = {"Succeeded": "#16a34a", "Failed": "#dc2626", "Executing": "#2563eb", "Running": "#2563eb",
                  "NotExecuted": "#9ca3af", "Stopped": "#f59e0b", "Starting": "#2563eb"}
_lock = threading.Lock()  # pyplot is not thread-safe


def _svg(figure: object) -> str:
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight")  # type: ignore[attr-defined]
    text = buffer.getvalue()
    return text[text.index("<svg"):]


def _pyplot():  # type: ignore[no-untyped-def]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams["svg.fonttype"] = "none"  # text stays text: smaller, searchable
    return plt


def warm_up() -> None:
    """Import pyplot in the background (about a second) so the first page with a chart does not wait for it."""
    threading.Thread(target=_pyplot, name="ui-charts-warm-up", daemon=True).start()


@lru_cache(maxsize=256)
def paired_bars(title: str, labels: tuple[str, ...], first: tuple[float | None, ...], second: tuple[float | None, ...],
                names: tuple[str, str]) -> str:
    """Two bars per label (A and B), e.g. each suite's metric for two versions."""
    with _lock:
        plt = _pyplot()
        figure, axes = plt.subplots(figsize=(6.4, 0.45 * len(labels) + 1.0))
        positions = range(len(labels))
        axes.barh([p + 0.2 for p in positions], [v or 0 for v in first], height=0.4, label=names[0], color="#2563eb")
        axes.barh([p - 0.2 for p in positions], [v or 0 for v in second], height=0.4, label=names[1], color="#9ca3af")
        axes.set_yticks(list(positions), labels, fontsize=8)
        axes.invert_yaxis()
        axes.set_title(title, fontsize=10)
        axes.legend(fontsize=8, loc="lower right")
        svg = _svg(figure)
        plt.close(figure)
    return svg


@lru_cache(maxsize=256)
def lines(title: str, x_labels: tuple[str, ...], series: tuple[tuple[str, tuple[float | None, ...]], ...],
          ylabel: str = "") -> str:
    """One line per series over the x labels (versions, or report times); gaps where a value is missing."""
    with _lock:
        plt = _pyplot()
        figure, axes = plt.subplots(figsize=(6.4, 2.6))
        for name, values in series:
            axes.plot(range(len(x_labels)), [float("nan") if v is None else v for v in values], marker="o",
                      markersize=3, label=name)
        step = max(1, len(x_labels) // 12)
        axes.set_xticks(list(range(0, len(x_labels), step)), list(x_labels[::step]), fontsize=7, rotation=30)
        axes.set_title(title, fontsize=10)
        axes.set_ylabel(ylabel, fontsize=8)
        if series:
            axes.legend(fontsize=7, loc="best")
        svg = _svg(figure)
        plt.close(figure)
    return svg


def step_graph(steps: Sequence[dict], levels: dict[str, int]) -> str:
    """Boxes per step, one column per graph level, coloured by status (hand-written SVG: no plotting needed)."""
    columns: dict[int, list[dict]] = {}
    for step in steps:
        columns.setdefault(levels.get(step["name"], 0), []).append(step)
    width, height, gap_x, gap_y = 170, 38, 24, 10
    rows = max((len(items) for items in columns.values()), default=1)
    total_w = (max(columns, default=0) + 1) * (width + gap_x)
    total_h = rows * (height + gap_y)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="graph" width="{total_w}" height="{total_h}" '
             f'viewBox="0 0 {total_w} {total_h}" role="img" aria-label="step graph">']
    for level, items in sorted(columns.items()):
        for row, step in enumerate(items):
            x, y = level * (width + gap_x), row * (height + gap_y)
            colour = STATUS_COLOURS.get(step.get("status", ""), "#6b7280")
            seconds = step.get("seconds")
            label = html.escape(step["name"])
            detail = html.escape(f"{step.get('status', '')}" + (f" · {float(seconds):.1f}s" if seconds else ""))
            parts.append(f'<g data-step="{label}"><rect x="{x}" y="{y}" width="{width}" height="{height}" rx="6" '
                         f'fill="white" stroke="{colour}" stroke-width="2"/>'
                         f'<text x="{x + 8}" y="{y + 16}" font-size="11" font-family="sans-serif">{label}</text>'
                         f'<text x="{x + 8}" y="{y + 31}" font-size="10" fill="{colour}" '
                         f'font-family="sans-serif">{detail}</text></g>')
    parts.append("</svg>")
    return "".join(parts)
