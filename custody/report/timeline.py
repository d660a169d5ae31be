"""The report's picture of who held each exhibit when (docs/report.md, "Who held it").

One lane per exhibit, from the moment it was acquired (or made) to the report's
generation (or its disposal): a bar in the colour of each party that held it,
changing colour at each handoff, with the handoffs marked.  `layout` computes the
picture once, in fractions of the drawing's width, from the holdings the report
gathered (`Holding`); `svg` draws it for the HTML report and the PDF renderer
(`custody.report.court`) draws the same `Chart` with fpdf2's vector operators, so
the two pictures cannot differ.

Times are proportional: a bar's length is the time the party held the exhibit.  A
holding too short to see at that scale (a handoff seconds after an ingest, in a
case that ran for months) is drawn at `MIN_WIDTH` so that no holder is invisible;
the text beside the picture gives every exact time.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

__all__ = ["MIN_WIDTH", "PALETTE", "Chart", "Holding", "Lane", "Segment", "layout", "svg"]

#: The narrowest a holding is drawn, as a fraction of the time axis.
MIN_WIDTH = 0.012
#: Fill colours (RGB) given to holders in order of first appearance; repeats after 8.
PALETTE: tuple[tuple[int, int, int], ...] = (
    (78, 121, 167),
    (242, 142, 43),
    (89, 161, 79),
    (225, 87, 89),
    (176, 122, 161),
    (118, 183, 178),
    (237, 201, 72),
    (156, 117, 95),
)


@dataclass(frozen=True)
class Holding:
    """`holder` held `exhibit` from `start` until `end` (None: still, at the report's
    time); `entry` is the log entry that gave it to them."""

    exhibit: str
    holder: str
    start: datetime  # as drawn
    end: datetime | None
    entry: int
    # The entry's claimed time when it is earlier than the holding before it (out of
    # order) and the holding is drawn from that one's start instead; else None.
    claimed: datetime | None = None


@dataclass(frozen=True)
class Segment:
    """One holding on the picture: [x0, x1] in fractions of the time axis."""

    holder: str
    x0: float
    x1: float
    colour: tuple[int, int, int]
    entry: int
    start: str
    end: str | None


@dataclass(frozen=True)
class Lane:
    exhibit: str
    segments: tuple[Segment, ...]
    ended: str | None  # "disposed" when the lane stops before the report's time


@dataclass(frozen=True)
class Chart:
    """The picture: one lane per exhibit, the time axis's ends, and a legend."""

    lanes: tuple[Lane, ...]
    start: str
    end: str
    legend: tuple[tuple[str, tuple[int, int, int]], ...]


def _text(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def layout(
    holdings: Sequence[Holding], until: datetime, ended: dict[str, str] | None = None
) -> Chart:
    """The picture of `holdings` (in exhibit order, each exhibit's in time order) on an
    axis from the earliest start to `until` (the report's generation time).  `ended`
    maps an exhibit to why its lane stops early (e.g. "disposed")."""
    exhibits: list[str] = []
    for h in holdings:
        if h.exhibit not in exhibits:
            exhibits.append(h.exhibit)
    if not holdings:
        return Chart((), _text(until), _text(until), ())
    t0 = min(h.start for h in holdings)
    t1 = max([until, *(h.end for h in holdings if h.end is not None)])
    total = max((t1 - t0).total_seconds(), 1.0)
    colours: dict[str, tuple[int, int, int]] = {}
    for h in holdings:
        colours.setdefault(h.holder, PALETTE[len(colours) % len(PALETTE)])
    lanes = []
    for exhibit in exhibits:
        mine = [h for h in holdings if h.exhibit == exhibit]
        segments = []
        for h in mine:
            x0 = (h.start - t0).total_seconds() / total
            x1 = ((h.end or t1) - t0).total_seconds() / total
            x0 = min(max(x0, 0.0), 1.0 - MIN_WIDTH)
            x1 = min(max(x1, x0 + MIN_WIDTH), 1.0)
            end = _text(h.end) if h.end is not None else None
            segments.append(
                Segment(h.holder, x0, x1, colours[h.holder], h.entry, _text(h.start), end)
            )
        # A holding drawn wider than its time pushes the next one right, never over it.
        for i in range(1, len(segments)):
            prev, seg = segments[i - 1], segments[i]
            if seg.x0 < prev.x1:
                x0 = min(prev.x1, 1.0 - MIN_WIDTH)
                segments[i] = Segment(
                    seg.holder,
                    x0,
                    max(seg.x1, x0 + MIN_WIDTH),
                    seg.colour,
                    seg.entry,
                    seg.start,
                    seg.end,
                )
        lanes.append(Lane(exhibit, tuple(segments), (ended or {}).get(exhibit)))
    return Chart(tuple(lanes), _text(t0), _text(t1), tuple(colours.items()))


# -- SVG -------------------------------------------------------------------------------------

_LABEL_W = 110
_AXIS_W = 600
_LANE_H = 22
_BAR_H = 14
_CHAR_W = 6.2  # a 10 px sans character, about


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _hex(c: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*c)


def svg(chart: Chart, visible: Callable[[str], str] = str) -> str:
    """The picture as an inline SVG element (no script, no external reference); every
    text passes through `visible` (the report's control-character filter) and is
    escaped."""
    show = visible
    width = _LABEL_W + _AXIS_W + 10
    top = 6
    height = top + len(chart.lanes) * _LANE_H + 44
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="holdings" role="img" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        'font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="10">',
        f"<title>Who held each exhibit when, {_e(show(chart.start))} to "
        f"{_e(show(chart.end))}</title>",
    ]
    for n, lane in enumerate(chart.lanes):
        y = top + n * _LANE_H
        out.append(
            f'<text x="0" y="{y + _BAR_H - 3}" font-weight="bold">{_e(show(lane.exhibit))}</text>'
        )
        for seg in lane.segments:
            x = _LABEL_W + seg.x0 * _AXIS_W
            w = max((seg.x1 - seg.x0) * _AXIS_W, 1.0)
            until = seg.end or "the report's time"
            out.append(
                f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{_BAR_H}" '
                f'fill="{_hex(seg.colour)}" stroke="#333" stroke-width="0.6">'
                f"<title>{_e(show(lane.exhibit))}: held by {_e(show(seg.holder))} from "
                f"{_e(seg.start)} (log entry {seg.entry}) until {_e(until)}</title></rect>"
            )
            if w > len(seg.holder) * _CHAR_W + 6:
                out.append(
                    f'<text x="{x + 3:.1f}" y="{y + _BAR_H - 3}" fill="#fff">'
                    f"{_e(show(seg.holder))}</text>"
                )
        for seg in lane.segments[1:]:
            x = _LABEL_W + seg.x0 * _AXIS_W
            out.append(
                f'<line x1="{x:.1f}" y1="{y - 2}" x2="{x:.1f}" y2="{y + _BAR_H + 2}" '
                'stroke="#000" stroke-width="1.4"/>'
            )
        if lane.ended:
            x = _LABEL_W + lane.segments[-1].x1 * _AXIS_W if lane.segments else _LABEL_W
            out.append(
                f'<text x="{x + 3:.1f}" y="{y + _BAR_H - 3}" fill="#900">{_e(lane.ended)}</text>'
            )
    axis = top + len(chart.lanes) * _LANE_H + 2
    out.append(
        f'<line x1="{_LABEL_W}" y1="{axis}" x2="{_LABEL_W + _AXIS_W}" y2="{axis}" '
        'stroke="#555" stroke-width="1"/>'
    )
    out.append(f'<text x="{_LABEL_W}" y="{axis + 12}">{_e(chart.start)}</text>')
    out.append(
        f'<text x="{_LABEL_W + _AXIS_W}" y="{axis + 12}" text-anchor="end">{_e(chart.end)}</text>'
    )
    x = float(_LABEL_W)
    for holder, colour in chart.legend:
        out.append(
            f'<rect x="{x:.1f}" y="{axis + 20}" width="10" height="10" fill="{_hex(colour)}" '
            'stroke="#333" stroke-width="0.6"/>'
        )
        out.append(f'<text x="{x + 14:.1f}" y="{axis + 29}">{_e(show(holder))}</text>')
        x += 24 + len(holder) * _CHAR_W
    out.append("</svg>")
    return "".join(out)
