"""Server-rendered SVG bar charts: the geometry here, the markup in the template. No JS needed.

An SVG scales with its panel, and its text with it, so the axis type size is chosen per
chart: about 12 px on a desktop panel, and (through a CSS variable the stylesheet applies
under 640 px) about 10 px on a 390 px phone, with every other x label dropped there. The
left margin is sized for the widest y label at the larger of the two.
"""

import math
from dataclasses import dataclass
from decimal import Decimal

WIDTH, HEIGHT = 900, 260
PAD_TOP, PAD_RIGHT = 14, 8
PHONE_PLOT_PX = 326  # a chart panel's inner width on a 390 px phone
PHONE_TYPE_PX = 10.5
CHAR_EM = 0.62  # average width of a label character, in font sizes


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str  # under the bar (may be blank to avoid crowding)
    label_x: float
    minor: bool  # a label hidden on phones, where only every other one fits
    title: str  # the tooltip / accessible text


def bar_chart(points: list[tuple[str, float, str]], *, max_labels: int = 10, width: int = WIDTH,
              integer: bool = False) -> dict:
    """`points` are (label, value, title); returns bars, gridlines, type sizes and the viewBox.

    `integer=True` is for counts (orders): the scale's top is a multiple of 4 so every
    gridline is a whole number.
    """
    top = max((float(value) for _label, value, _title in points), default=0) or 1
    if integer:
        top = max(4, math.ceil(top / 4) * 4)
    grid_values = [_short(Decimal(str(top)) * step / 4) for step in range(5)]

    axis_font = 11 if width >= WIDTH else 14
    phone_font = math.ceil(PHONE_TYPE_PX * width / PHONE_PLOT_PX)
    widest = max(len(value) for value in grid_values)
    left = max(40, math.ceil(widest * CHAR_EM * max(axis_font, phone_font)) + 10)
    bottom = phone_font + 12

    plot_w, plot_h = width - left - PAD_RIGHT, HEIGHT - bottom - PAD_TOP
    slot = plot_w / max(len(points), 1)
    every = max(1, -(-len(points) // max_labels))  # ceil: label at most max_labels bars
    bars = []
    for index, (label, value, title) in enumerate(points):
        height = plot_h * (float(value) / top)
        labelled = index % every == 0
        bars.append(Bar(
            x=round(left + index * slot + slot * 0.15, 1),
            y=round(PAD_TOP + plot_h - height, 1),
            width=round(max(slot * 0.7, 1), 1),
            height=round(height, 1),
            label=label if labelled else "",
            label_x=round(left + index * slot + slot / 2, 1),
            minor=labelled and (index // every) % 2 == 1,
            title=title,
        ))
    grid = [
        {"y": round(PAD_TOP + plot_h * (1 - step / 4), 1), "value": grid_values[step]}
        for step in range(5)
    ]
    return {"bars": bars, "grid": grid, "width": width, "height": HEIGHT, "left": left,
            "baseline": PAD_TOP + plot_h, "label_y": HEIGHT - 6,
            "axis_font": axis_font, "phone_font": phone_font}


def _short(value: Decimal) -> str:
    if value >= 1_000_000:
        return f"{value / 1_000_000:.1f}M"
    if value >= 1_000:
        return f"{value / 1_000:.1f}k"
    return f"{value:.0f}" if value >= 10 or value == value.to_integral() else f"{value:.1f}"
