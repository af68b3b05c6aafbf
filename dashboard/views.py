"""The staff dashboard page: the same selectors as /api/stats/, drawn as server-side SVG."""

from django.shortcuts import render

from dashboard import charts
from dashboard.forms import DAY_CHOICES, StatsFilterForm
from dashboard.selectors import dashboard_stats, product_choices
from flashsale.accounts import staff_required
from flashsale.errors import DomainError
from waiting_room.selectors import line_figures


@staff_required
def dashboard(request):
    form = StatsFilterForm(request.GET)
    try:
        stats_filter = form.stats_filter()
    except DomainError as exc:
        context = {"error": exc.detail, "form": form, "day_choices": DAY_CHOICES, "products": product_choices()}
        return render(request, "dashboard/dashboard.html", context, status=exc.code.status)
    stats = dashboard_stats(stats_filter)
    revenue_chart = charts.bar_chart([
        (day["date"][5:], float(day["revenue"]), f'{day["date"]}: {day["revenue"]} revenue, {day["units_sold"]} units')
        for day in stats["revenue_by_day"]
    ])
    pace_chart = None
    if stats["last_sale"] and stats["last_sale"]["series"]:
        pace_chart = charts.bar_chart([
            (point["minute"].strftime("%H:%M"), point["orders"], f'{point["minute"]:%H:%M}: {point["orders"]} orders')
            for point in stats["last_sale"]["series"]
        ], max_labels=8, width=600, integer=True)
    return render(request, "dashboard/dashboard.html", {
        "stats": stats,
        "filter": stats_filter,
        "form": form,
        "day_choices": DAY_CHOICES,
        "products": product_choices(),
        "revenue_chart": revenue_chart,
        "pace_chart": pace_chart,
        "lines": line_figures(),
    })
