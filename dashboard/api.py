"""GET /api/stats/: the staff's sales numbers, from the same selector as the dashboard."""

from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import permissions, serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from dashboard.forms import StatsFilterForm
from dashboard.selectors import MAX_DAYS, sales_summary
from flashsale.error_codes import ErrorCode
from flashsale.openapi import INVALID, STAFF_ERRORS, error_responses

_Money = serializers.DecimalField(max_digits=14, decimal_places=2)
StatsSerializer = inline_serializer("Stats", {
    "total_revenue": _Money,
    "units_sold": serializers.IntegerField(),
    "orders": serializers.IntegerField(),
    "top_products": inline_serializer("TopProduct", {
        "id": serializers.IntegerField(), "name": serializers.CharField(),
        "units_sold": serializers.IntegerField(), "revenue": _Money,
    }, many=True),
    "revenue_by_day": inline_serializer("RevenueByDay", {
        "date": serializers.DateField(), "units_sold": serializers.IntegerField(), "revenue": _Money,
    }, many=True),
    "query_time_ms": serializers.FloatField(),
})


class StatsApi(APIView):
    permission_classes = [permissions.IsAdminUser]

    @extend_schema(
        summary="Sales numbers (staff)",
        description="Confirmed orders of shop products only: cancelled orders never count. `days` counts "
                    "calendar days including today; `revenue_by_day` lists every one of them.",
        parameters=[
            OpenApiParameter("days", int, description=f"1 to {MAX_DAYS}, default 7"),
            OpenApiParameter("product", int, description="Only this product's orders"),
        ],
        responses={200: StatsSerializer, **error_responses(*INVALID, *STAFF_ERRORS, ErrorCode.NOT_FOUND)},
    )
    def get(self, request):
        stats_filter = StatsFilterForm(request.query_params).stats_filter()
        return Response(sales_summary(stats_filter), headers={"Cache-Control": "no-store"})
