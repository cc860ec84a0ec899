"""The report's charts, drawn with matplotlib's Agg canvas into PNG bytes.

No pyplot: each figure is a plain object that is dropped when drawn, so
nothing global piles up between reports in a long-lived worker. Everything
reads in grey-scale print: bars carry hatching, series differ by pattern and
marker shape rather than colour, and heat maps write their numbers in the
cells. Drawing is deterministic (no timestamps in the PNG), so the same
numbers give the same bytes.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from functools import lru_cache, wraps
from io import BytesIO

import matplotlib
from matplotlib import font_manager
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

DPI = 150
WIDTH = 6.6  # inches: the text width of an A4 page with 2 cm margins
INK = "#222222"
MID = "#9a9a9a"
LIGHT = "#d9d9d9"
# Series told apart without colour: fill, hatching and marker shape.
SERIES = [
    {"color": "#555555", "hatch": "", "edgecolor": INK},
    {"color": "white", "hatch": "////", "edgecolor": INK},
    {"color": LIGHT, "hatch": "....", "edgecolor": INK},
]
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "h"]
# Above this many sessions the timeline switches from dots to a heat map.
DOT_PLOT_MAX_SESSIONS = 45


@lru_cache(maxsize=1)
def _font() -> str:
    for family in ("Liberation Sans", "DejaVu Sans"):
        try:
            font_manager.findfont(font_manager.FontProperties(family=family), fallback_to_default=False)
            return family
        except ValueError:
            continue
    return "sans-serif"


def _style() -> dict:
    return {
        "font.family": _font(),
        "font.size": 8,
        "axes.titlesize": 9,
        "axes.labelsize": 8,
        "axes.edgecolor": INK,
        "axes.linewidth": 0.6,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "xtick.color": INK,
        "ytick.color": INK,
        "xtick.major.width": 0.6,
        "ytick.major.width": 0.6,
        "hatch.linewidth": 0.6,
        "legend.frameon": False,
        "legend.fontsize": 7.5,
        "image.cmap": "Greys",
    }


def _styled(draw):
    """Draw inside the report's style and return the figure as PNG bytes."""

    @wraps(draw)
    def wrapper(*args, **kwargs) -> bytes:
        with matplotlib.rc_context(_style()):
            figure = draw(*args, **kwargs)
            out = BytesIO()
            figure.savefig(out, format="png", dpi=DPI, bbox_inches="tight", pad_inches=0.06,
                           metadata={"Software": None}, facecolor="white")
            figure.clear()
        return out.getvalue()

    return wrapper


def _figure(width: float, height: float) -> Figure:
    figure = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(figure)
    return figure


def plain(text: str) -> str:
    """Text as typed: a "$" would otherwise start matplotlib's mathtext (and can fail to parse)."""
    return text.replace("$", r"\$")


def wrap(label: str, width: int = 30) -> str:
    return plain("\n".join(textwrap.wrap(label, width, break_long_words=True)) or label)


def _lines(label: str, width: int) -> int:
    return wrap(label, width).count("\n") + 1


# --- Bars ------------------------------------------------------------------------------


@_styled
def bar_chart(labels: Sequence[str], series: Sequence[tuple[str, Sequence[int], int]], *, unit: str) -> Figure:
    """Horizontal bars: the share of units carrying each label, one bar per series.

    `series` is [(name, counts, denominator)]; each bar is labelled "n/N".
    """
    rows = max(len(labels), 1)
    k = max(len(series), 1)
    wrapped = [wrap(label, 32) for label in labels]
    line_rows = sum(max(1, w.count("\n") + 1) for w in wrapped)
    height = max(1.3, 0.22 * max(rows * k * 1.15, line_rows * 1.2) + 0.8)
    figure = _figure(WIDTH, height)
    ax = figure.add_subplot()
    bar = 0.8 / k
    for s, (name, counts, denominator) in enumerate(series):
        style = SERIES[s % len(SERIES)]
        for i, count in enumerate(counts):
            share = 100 * count / denominator if denominator else 0
            y = i + (s - (k - 1) / 2) * bar
            ax.barh(y, share, height=bar * 0.92, color=style["color"], hatch=style["hatch"],
                    edgecolor=style["edgecolor"], linewidth=0.6, label=plain(name) if i == 0 else None)
            text = f"{count}/{denominator}" if denominator else "–"
            ax.text(share + 1.2, y, text, va="center", ha="left", fontsize=7, color=INK)
    ax.set_yticks(range(len(labels)), wrapped)
    ax.invert_yaxis()
    ax.set_xlim(0, 112)
    ax.set_xticks(range(0, 101, 20))
    ax.set_xlabel(f"% of {unit}")
    ax.xaxis.grid(True, color=LIGHT, linewidth=0.5)
    ax.set_axisbelow(True)
    ax.tick_params(axis="y", length=0)
    if len(series) > 1:
        ax.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), ncol=len(series))
    figure.tight_layout()
    return figure


# --- Heat maps ---------------------------------------------------------------------------


def _text_colour(value: float, top: float) -> str:
    return "white" if top and value > 0.55 * top else INK


@_styled
def heatmap(rows: Sequence[str], columns: Sequence[str], cells: Sequence[Sequence[int]], *,
            row_title: str, column_title: str) -> Figure:
    """A grey heat map with the count written in every cell."""
    n_rows, n_cols = max(len(rows), 1), max(len(columns), 1)
    col_labels = [wrap(c, 14) for c in columns]
    label_lines = max((_lines(c, 14) for c in columns), default=1)
    width = min(WIDTH, 2.4 + 0.95 * n_cols)
    height = 0.42 * n_rows + 0.55 + 0.13 * label_lines
    figure = _figure(width, height)
    ax = figure.add_subplot()
    top = max((max(r) for r in cells if r), default=0)
    ax.imshow(cells if cells and cells[0] else [[0]], cmap="Greys", vmin=0, vmax=max(top, 1) * 1.15,
              aspect="auto", interpolation="nearest")
    for i, row in enumerate(cells):
        for j, value in enumerate(row):
            ax.text(j, i, str(value), ha="center", va="center", fontsize=8.5, color=_text_colour(value, top),
                    fontweight="bold" if value else "normal")
    ax.set_xticks(range(len(columns)), col_labels)
    ax.set_yticks(range(len(rows)), [wrap(r, 30) for r in rows])
    ax.xaxis.tick_top()
    ax.xaxis.set_label_position("top")
    ax.set_xlabel(plain(column_title), labelpad=6, fontweight="bold")
    ax.set_ylabel(plain(row_title), fontweight="bold")
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.set_xticks([x - 0.5 for x in range(1, n_cols)], minor=True)
    ax.set_yticks([y - 0.5 for y in range(1, n_rows)], minor=True)
    ax.grid(which="minor", color="white", linewidth=1.5)
    ax.tick_params(which="minor", length=0)
    figure.tight_layout()
    return figure


# --- Codes across sessions ---------------------------------------------------------------


def _thin(labels: Sequence[str], most: int) -> list[tuple[int, str]]:
    step = max(1, math.ceil(len(labels) / most))
    return [(i, label) for i, label in enumerate(labels) if i % step == 0]


@_styled
def timeline(sessions: Sequence[str], codes: Sequence[str], categories: Sequence[str],
             segments: Sequence[Sequence[int]], present: Sequence[Sequence[bool]]) -> Figure:
    """Which code appears in which session, sessions in time order.

    Up to DOT_PLOT_MAX_SESSIONS sessions: a dot plot, one marker shape per
    category, the marker's area growing with the number of segments; an open
    marker is a code set on a case without a coded segment. More sessions: a
    grey heat map of segment counts.
    """
    n_codes, n_sessions = max(len(codes), 1), max(len(sessions), 1)
    category_names = list(dict.fromkeys(categories))
    height = min(9.0, 0.24 * n_codes + 1.2)
    figure = _figure(WIDTH, height)
    ax = figure.add_subplot()
    if n_sessions <= DOT_PLOT_MAX_SESSIONS:
        top = max((max(r) for r in segments if r), default=0) or 1
        for c, name in enumerate(category_names):
            marker = MARKERS[c % len(MARKERS)]
            for i, code_category in enumerate(categories):
                if code_category != name:
                    continue
                for j, here in enumerate(present[i]):
                    if not here:
                        continue
                    n = segments[i][j]
                    size = 14 + 70 * math.sqrt(n / top) if n else 18
                    ax.scatter(j, i, s=size, marker=marker, facecolor=INK if n else "white", edgecolor=INK,
                               linewidth=0.7, zorder=3)
        ax.set_xlim(-0.6, n_sessions - 0.4)
        ax.set_ylim(n_codes - 0.5, -0.5)
        ax.set_xticks(range(len(sessions)), [plain(s) for s in sessions], rotation=90 if n_sessions > 14 else 0,
                      fontsize=7)
        ax.xaxis.grid(True, color=LIGHT, linewidth=0.5)
        ax.yaxis.grid(True, color=LIGHT, linewidth=0.5)
        ax.set_axisbelow(True)
        handles = [Line2D([], [], marker=MARKERS[c % len(MARKERS)], linestyle="", markerfacecolor=INK,
                          markeredgecolor=INK, markersize=5, label=plain(name))
                   for c, name in enumerate(category_names)]
        handles.append(Line2D([], [], marker="o", linestyle="", markerfacecolor="white", markeredgecolor=INK,
                              markersize=5, label="set on a case only"))
        ax.legend(handles=handles, loc="lower left", bbox_to_anchor=(0.0, 1.0), ncol=len(handles))
    else:
        top = max((max(r) for r in segments if r), default=0) or 1
        ax.imshow(segments if segments and segments[0] else [[0]], cmap="Greys", vmin=0, vmax=top,
                  aspect="auto", interpolation="nearest")
        ticks = _thin(sessions, 40)
        ax.set_xticks([i for i, _ in ticks], [plain(label) for _, label in ticks], rotation=90, fontsize=6.5)
        for spine in ax.spines.values():
            spine.set_visible(False)
        ax.legend(handles=[Patch(facecolor=INK, label=f"darker: more segments (most {top})")],
                  loc="lower left", bbox_to_anchor=(0.0, 1.0))
    ax.set_yticks(range(len(codes)), [wrap(c, 34) for c in codes], fontsize=7)
    ax.tick_params(axis="y", length=0)
    # A rule between categories.
    for i in range(1, len(categories)):
        if categories[i] != categories[i - 1]:
            ax.axhline(i - 0.5, color=MID, linewidth=0.8)
    ax.set_xlabel("Session (in time order)")
    figure.tight_layout()
    return figure


@_styled
def saturation(sessions: Sequence[str], cumulative: Sequence[int], new: Sequence[int]) -> Figure:
    """Distinct codes seen so far (a stepped line) and new codes per session (bars)."""
    n = max(len(sessions), 1)
    figure = _figure(WIDTH, 2.7)
    ax = figure.add_subplot()
    xs = list(range(len(sessions)))
    if n <= DOT_PLOT_MAX_SESSIONS:
        ax.bar(xs, new, width=0.7, color="white", hatch="////", edgecolor=INK, linewidth=0.6,
               label="New codes in the session")
    else:
        # Hundreds of hatched bars draw slowly and print as a grey smear: thin stems instead.
        ax.vlines(xs, 0, new, color=MID, linewidth=0.8, label="New codes in the session")
    ax.step(xs, cumulative, where="mid", color=INK, linewidth=1.3, label="Distinct codes so far")
    if n <= DOT_PLOT_MAX_SESSIONS:
        ax.plot(xs, cumulative, linestyle="", marker="o", markersize=3.2 if n > 30 else 4, color=INK)
    ticks = _thin(sessions, 45)
    ax.set_xticks([i for i, _ in ticks], [plain(label) for _, label in ticks], rotation=90 if n > 14 else 0,
                  fontsize=7)
    ax.set_xlim(-0.7, n - 0.3)
    top = max([*cumulative, 1])
    ax.set_ylim(0, top * 1.15 + 0.5)
    ax.yaxis.get_major_locator().set_params(integer=True)
    ax.yaxis.grid(True, color=LIGHT, linewidth=0.5)
    ax.set_axisbelow(True)
    ax.set_ylabel("Codes")
    ax.set_xlabel("Session (in time order)")
    ax.legend(loc="lower left", bbox_to_anchor=(0.0, 1.0), ncol=2)
    figure.tight_layout()
    return figure
