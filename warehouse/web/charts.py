"""Small inline SVG charts for the overview: horizontal bars and per-split histograms.

Drawn on the server, so the pages need no JavaScript library (and work offline); every label is
HTML-escaped. Colours: one per split, the same on every chart and the sky maps' captions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from markupsafe import Markup, escape

SPLIT_COLOURS = {"train": "#1f77b4", "validation": "#ff7f0e", "test": "#2ca02c"}
OTHER_COLOURS = ("#9467bd", "#8c564b", "#e377c2", "#7f7f7f")


def split_colour(split: str, k: int = 0) -> str:
    return SPLIT_COLOURS.get(split, OTHER_COLOURS[k % len(OTHER_COLOURS)])


def bar_chart(
    items: Sequence[tuple[str, int]], *, total: int | None = None, width: int = 640
) -> Markup:
    """Horizontal bars, one per (label, count); with ``total``, each count also as a percentage.

    >>> str(bar_chart([("no_pixelflags_bad", 12)], total=100)).startswith("<svg")
    True
    """
    row, label_w, pad = 22, 260, 120
    height = row * len(items) + 8
    top = max([n for _l, n in items] + [1])
    bar_w = width - label_w - pad
    parts = [
        f'<svg class="chart" role="img" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">'
    ]
    for k, (label, n) in enumerate(items):
        y = 4 + k * row
        w = round(bar_w * n / top, 1)
        text = f"{n:,}" + (f" ({100 * n / total:.1f}%)" if total else "")
        parts.append(
            f'<text x="{label_w - 6}" y="{y + 15}" text-anchor="end">{escape(label)}</text>'
            f'<rect x="{label_w}" y="{y + 3}" width="{w}" height="{row - 6}" fill="#c0392b">'
            f"<title>{escape(label)}: {escape(text)}</title></rect>"
            f'<text x="{label_w + w + 4}" y="{y + 15}">{escape(text)}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def histograms(
    edges: Sequence[float],
    counts: Mapping[str, Sequence[int]],
    *,
    x_label: str,
    width: int = 640,
    height: int = 240,
    normalise: bool = True,
) -> Markup:
    """Step histograms over shared ``edges``, one line per split (fractions of each split's
    objects when ``normalise``, so splits of different sizes compare), with a legend."""
    left, bottom, right, top_pad = 50, 36, 10, 24
    plot_w, plot_h = width - left - right, height - bottom - top_pad
    series: dict[str, list[float]] = {}
    for name, values in counts.items():
        total = sum(values) or 1
        series[name] = [v / total for v in values] if normalise else [float(v) for v in values]
    peak = max([max(v) for v in series.values() if v] + [1e-12])
    lo, hi = (edges[0], edges[-1]) if edges else (0.0, 1.0)
    span = (hi - lo) or 1.0

    def x(v: float) -> float:
        return round(left + plot_w * (v - lo) / span, 1)

    def y(v: float) -> float:
        return round(top_pad + plot_h * (1 - v / peak), 1)

    parts = [
        f'<svg class="chart" role="img" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">',
        f'<line x1="{left}" y1="{top_pad + plot_h}" x2="{left + plot_w}" '
        f'y2="{top_pad + plot_h}" stroke="#333"/>',
        f'<line x1="{left}" y1="{top_pad}" x2="{left}" y2="{top_pad + plot_h}" stroke="#333"/>',
    ]
    step = max(1, len(edges) // 8)
    for e in list(edges)[::step]:
        parts.append(
            f'<text x="{x(e)}" y="{top_pad + plot_h + 14}" text-anchor="middle">{e:g}</text>'
        )
    parts.append(
        f'<text x="{left + plot_w / 2}" y="{height - 4}" text-anchor="middle">'
        f"{escape(x_label)}</text>"
    )
    parts.append(
        f'<text x="{left - 4}" y="{top_pad - 8}" text-anchor="start">'
        f"{'fraction of split' if normalise else 'objects'} (peak {peak:.3g})</text>"
    )
    for k, (name, fractions) in enumerate(series.items()):
        points = []
        for i, v in enumerate(fractions):
            points += [f"{x(edges[i])},{y(v)}", f"{x(edges[i + 1])},{y(v)}"]
        colour = split_colour(name, k)
        parts.append(
            f'<polyline fill="none" stroke="{colour}" stroke-width="2" '
            f'points="{" ".join(points)}"><title>{escape(name)}</title></polyline>'
        )
        lx = left + plot_w - 150
        ly = top_pad + 14 + 16 * k
        parts.append(
            f'<rect x="{lx}" y="{ly - 9}" width="12" height="10" fill="{colour}"/>'
            f'<text x="{lx + 16}" y="{ly}">{escape(name)} ({sum(counts[name]):,})</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))
