"""Server-rendered SVG bar charts: the geometry here, the markup in the template. No JS needed."""

from dataclasses import dataclass
from decimal import Decimal

WIDTH, HEIGHT = 900, 240
PAD_LEFT, PAD_BOTTOM, PAD_TOP = 56, 28, 12


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str  # under the bar (may be blank to avoid crowding)
    title: str  # the tooltip / accessible text


def bar_chart(points: list[tuple[str, float, str]], *, max_labels: int = 10, width: int = WIDTH) -> dict:
    """`points` are (label, value, title); returns bars, gridlines and the viewBox size."""
    top = max((value for _label, value, _title in points), default=0) or 1
    plot_w, plot_h = width - PAD_LEFT - 8, HEIGHT - PAD_BOTTOM - PAD_TOP
    slot = plot_w / max(len(points), 1)
    every = max(1, -(-len(points) // max_labels))  # ceil: label at most max_labels bars
    bars = []
    for index, (label, value, title) in enumerate(points):
        height = plot_h * (float(value) / float(top))
        bars.append(Bar(
            x=round(PAD_LEFT + index * slot + slot * 0.15, 1),
            y=round(PAD_TOP + plot_h - height, 1),
            width=round(max(slot * 0.7, 1), 1),
            height=round(height, 1),
            label=label if index % every == 0 else "",
            title=title,
        ))
    grid = [
        {"y": round(PAD_TOP + plot_h * (1 - step / 4), 1), "value": _short(Decimal(str(top)) * step / 4)}
        for step in range(5)
    ]
    return {"bars": bars, "grid": grid, "width": width, "height": HEIGHT, "left": PAD_LEFT,
            "baseline": PAD_TOP + plot_h, "label_y": HEIGHT - 8}


def _short(value: Decimal) -> str:
    if value >= 1_000_000:
        return f"{value / 1_000_000:.1f}M"
    if value >= 1_000:
        return f"{value / 1_000:.1f}k"
    return f"{value:.0f}" if value >= 10 or value == value.to_integral() else f"{value:.1f}"
