"""The stats filter (`?days=` and `?product=`), shared by the dashboard page and /api/stats/."""

from django import forms

from dashboard.selectors import MAX_DAYS, StatsFilter, check_product
from flashsale.errors import InvalidInput
from flashsale.serializers import MAX_ID

DAY_CHOICES = [(1, "Today"), (7, "Last 7 days"), (30, "Last 30 days"), (90, "Last 90 days")]


class StatsFilterForm(forms.Form):
    days = forms.IntegerField(min_value=1, max_value=MAX_DAYS, required=False)
    product = forms.IntegerField(min_value=1, max_value=MAX_ID, required=False)

    def stats_filter(self) -> StatsFilter:
        """The validated filter; bad input is `InvalidInput`, an unknown product `ProductNotFound`."""
        if not self.is_valid():
            raise InvalidInput("The stats filter is not valid.", errors={k: list(v) for k, v in self.errors.items()})
        product_id = self.cleaned_data.get("product")
        if product_id is not None:
            check_product(product_id)
        return StatsFilter(days=self.cleaned_data.get("days") or 7, product_id=product_id)
