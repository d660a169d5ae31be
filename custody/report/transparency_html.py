"""The HTML version of a transparency report (docs/transparency.md): the counts as tables,
a bar chart per month (inline SVG), and the signed note itself, which
`custody transparency --check` reads back out of the file.

One self-contained page: no script, no style sheet or font from elsewhere, no network.
The page's tables are a rendering of the signed note: every number sits in a
`<td data-count="NAME">` cell (`data-month="YYYY-MM"` for a month's), which the check
compares with the note, so an edited table fails the check like an edited note.
"""

from __future__ import annotations

import html

from custody.model.entry import format_time
from custody.model.oversight import COUNTS, LABELS, Report, encode_indices

#: The element holding the signed note (custody.app.transparency.HTML_NOTE_ID).
NOTE_ID = "custody-transparency-note"

_GROUPS: tuple[tuple[str, str], ...] = (
    ("requests.", "Requests and owners' answers"),
    ("received.", "Items received, by legal basis"),
    ("emergency.", "Emergency disclosures and their reviews"),
    ("access.", "Accesses"),
    ("handoff.", "Handoffs"),
    ("analysis.", "Automated analyses, by kind"),
    ("disposals", "Disposals and retention"),
    ("retention.", "Disposals and retention"),
)

_STYLE = """
body{font-family:sans-serif;max-width:60em;margin:2em auto;padding:0 1em;color:#111}
table{border-collapse:collapse;margin:0.5em 0 1.5em}
th,td{border:1px solid #999;padding:0.25em 0.6em;text-align:left;vertical-align:top}
td.n{text-align:right;font-variant-numeric:tabular-nums}
td.ix{font-family:monospace;font-size:90%;max-width:30em;overflow-wrap:anywhere}
pre{background:#f4f4f4;padding:0.8em;overflow-x:auto;font-size:85%}
.note{color:#444;font-size:90%}
"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _group(name: str) -> str:
    for prefix, title in _GROUPS:
        if name.startswith(prefix):
            return title
    return "Other"  # pragma: no cover - every count has a group


def _chart(label: str, row: dict[str, int]) -> str:
    """A horizontal bar chart of one month's counts (inline SVG, no script)."""
    bar_h, gap, label_w, bar_w = 14, 4, 400, 300
    top = max([1, *row.values()])
    height = len(COUNTS) * (bar_h + gap) + gap
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{label_w + bar_w + 60}" '
        f'height="{height}" aria-label="{_e("counts of " + label)}">'
    ]
    for n, name in enumerate(COUNTS):
        y = gap + n * (bar_h + gap)
        value = row.get(name, 0)
        width = round(bar_w * value / top)
        parts.append(
            f'<text x="{label_w - 6}" y="{y + bar_h - 3}" font-size="11" '
            f'text-anchor="end">{_e(LABELS[name])}</text>'
            f'<rect x="{label_w}" y="{y}" width="{width}" height="{bar_h}" fill="#36c"/>'
            f'<text x="{label_w + width + 4}" y="{y + bar_h - 3}" font-size="11">{value}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def render(note: bytes, report: Report) -> bytes:
    """The HTML page of a signed report `note` whose content is `report`."""
    title = f"Transparency report of {report.origin}, {report.start} to {report.end}"
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'\">",
        f"<title>{_e(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        f"<p>Computed from the log <b>{_e(report.origin)}</b> at its checkpoint of "
        f"<b>{report.size}</b> entries (root <code>{_e(_root(report))}</code>), as of "
        f"{_e(format_time(report.as_of))}. Each number counts the log entries listed next "
        "to it; anyone with the entries can recompute it (<code>custody transparency "
        "--check FILE</code>), and anyone can check that each listed entry is in the "
        "published log. docs/transparency.md says what each count means and what no "
        "count here can show.</p>",
    ]
    current = None
    for name in COUNTS:
        group = _group(name)
        if group != current:
            if current is not None:
                out.append("</table>")
            out.append(f"<h2>{_e(group)}</h2>")
            out.append("<table><tr><th>count</th><th>number</th><th>log entries</th></tr>")
            current = group
        indices = report.counts[name]
        out.append(
            f"<tr><th>{_e(LABELS[name])}<br><code>{_e(name)}</code></th>"
            f'<td class="n" data-count="{_e(name)}">{len(indices)}</td>'
            f'<td class="ix">{_e(encode_indices(indices))}</td></tr>'
        )
    out.append("</table>")
    out.append("<h2>By month</h2>")
    out.append("<table><tr><th>count</th>")
    out.extend(f"<th>{_e(label)}</th>" for label in report.monthly)
    out.append("</tr>")
    for name in COUNTS:
        out.append(f"<tr><th><code>{_e(name)}</code></th>")
        for label, row in report.monthly.items():
            out.append(
                f'<td class="n" data-count="{_e(name)}" data-month="{_e(label)}">{row[name]}</td>'
            )
        out.append("</tr>")
    out.append("</table>")
    for label, row in report.monthly.items():
        out.append(f"<h3>{_e(label)}</h3>")
        out.append(_chart(label, dict(row)))
    out.append("<h2>The signed report</h2>")
    out.append(
        '<p class="note">The text below, signed with the log key, is the report; the '
        "tables above show its numbers. Checking the file checks this text's signature "
        "and every number in the tables against it.</p>"
    )
    out.append(f'<pre id="{NOTE_ID}">{_e(note.decode("utf-8"))}</pre>')
    out.append("</body></html>")
    return ("\n".join(out) + "\n").encode("utf-8")


def _root(report: Report) -> str:
    import base64

    return base64.b64encode(report.root).decode()
