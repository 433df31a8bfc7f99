"""A lineage's scores over its versions for `disc models scores`: a table and sparklines for the
terminal, a PNG through matplotlib's Agg backend (imported only when one is written)."""

from __future__ import annotations

import math
from pathlib import Path

SPARK = "▁▂▃▄▅▆▇█"
MISSING = "·"
TABLE_VERSIONS = 8    # the table's columns: the newest versions; the sparklines and --json have them all
CHART_VERSIONS = 60   # one character per version


def fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.4g}"


def sparkline(values: list[float | None]) -> str:
    """One character per value, from ▁ (the lowest) to █ (the highest); · where a value is missing."""
    present = [v for v in values if v is not None]
    low, high = (min(present), max(present)) if present else (0.0, 0.0)
    top = len(SPARK) - 1

    def mark(value: float | None) -> str:
        if value is None:
            return MISSING
        if high == low:  # a flat series: the middle of the range
            return SPARK[top // 2]
        return SPARK[round((value - low) / (high - low) * top)]

    return "".join(mark(v) for v in values)


def _table(history) -> list[str]:
    points = history.data[-TABLE_VERSIONS:]
    header = ["metric", *(f"v{p.version}{'*' if p.is_latest else ''}" for p in points)]
    rows = [header, ["state", *(p.state for p in points)], ["created", *(f"{p.created_at:%Y-%m-%d}" for p in points)]]
    rows += [[name, *(fmt(p.scores.get(name)) for p in points)] for name in history.metrics]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths)))
             for row in rows]
    if len(history.data) > len(points):
        lines.append(f"(the newest {len(points)} of {len(history.data)} versions; the chart, --json and --png "
                     "have them all)")
    return lines


def _chart(history) -> list[str]:
    points = history.data[-CHART_VERSIONS:]
    span = f"v{points[0].version}…v{points[-1].version}"
    lines = [f"over versions {span}, each metric from its lowest (▁) to its highest (█); {MISSING} not measured"]
    width = max(len(name) for name in history.metrics)
    for name in history.metrics:
        values = [p.scores.get(name) for p in points]
        measured = [(p.version, p.scores[name]) for p in points if p.scores.get(name) is not None]
        if measured:
            (first, start), (last, end) = measured[0], measured[-1]
            summary = (f"v{first} {fmt(start)} → v{last} {fmt(end)}  (min {fmt(min(v for _, v in measured))}, "
                       f"max {fmt(max(v for _, v in measured))})")
        else:
            summary = "not measured"
        lines.append(f"{name:<{width}}  {sparkline(values)}  {summary}")
    return lines


def score_lines(history) -> list[str]:
    """The score history as text: a heading, the table (metrics down, versions across) and one sparkline a metric."""
    latest = f"latest v{history.latest_version}" if history.latest_version is not None else "no latest yet"
    count = len(history.data)
    lines = [f"{history.lineage}: {count} version{'' if count == 1 else 's'}, base {history.base_model}, {latest}"]
    if not history.data:
        return lines
    if not history.metrics:
        return [*lines, "no scores recorded"]
    return [*lines, "", *_table(history), "* latest", "", *_chart(history)]


def write_png(history, path: str | Path) -> Path:
    """One panel per metric over the versions (filled: promoted, hollow: candidate, ×: rejected, ★: latest)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    metrics = history.metrics if history.data else []
    figure = Figure(figsize=(8, 1.2 + 2.0 * max(1, len(metrics))), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(max(1, len(metrics)), 1, sharex=True, squeeze=False)[:, 0]
    figure.suptitle(f"{history.lineage}: scores over versions (base {history.base_model})")
    if not metrics:
        axes[0].text(0.5, 0.5, "no versions yet" if not history.data else "no scores recorded",
                     ha="center", va="center", transform=axes[0].transAxes)
        axes[0].set_axis_off()
    numbers = [p.version for p in history.data]
    styles = {"promoted": {"marker": "o", "facecolors": "C0", "edgecolors": "C0"},
              "candidate": {"marker": "o", "facecolors": "white", "edgecolors": "C0"},
              "rejected": {"marker": "x", "color": "C3"}}
    for ax, name in zip(axes, metrics):
        values = [math.nan if p.scores.get(name) is None else p.scores[name] for p in history.data]
        ax.plot(numbers, values, color="C0", linewidth=1.2, zorder=1)
        for state, style in styles.items():
            chosen = [(n, v) for n, v, p in zip(numbers, values, history.data) if p.state == state]
            if chosen:
                ax.scatter(*zip(*chosen), s=30, zorder=2, **style)
        ax.scatter([n for n, p in zip(numbers, history.data) if p.is_latest],
                   [v for v, p in zip(values, history.data) if p.is_latest], marker="*", s=180, color="C1", zorder=3)
        ax.set_title(name, loc="left", fontsize=9)
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if metrics:
        axes[-1].set_xlabel("version")
        legend = [Line2D([], [], marker="o", color="C0", markerfacecolor="C0", linestyle="", label="promoted"),
                  Line2D([], [], marker="o", color="C0", markerfacecolor="white", linestyle="", label="candidate"),
                  Line2D([], [], marker="x", color="C3", linestyle="", label="rejected"),
                  Line2D([], [], marker="*", color="C1", markersize=12, linestyle="", label="latest")]
        axes[0].legend(handles=legend, loc="best", fontsize=7, ncols=4)
    target = Path(path)
    figure.savefig(target, format="png", dpi=100)
    return target
