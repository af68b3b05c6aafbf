"""REST endpoints for orders: the purchase, the shopper's orders, the cancel."""

from decimal import Decimal

from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, permissions, status
from rest_framework.response import Response
from rest_framework.views import APIView

from flashsale import metrics
from flashsale.openapi import AUTH_ERRORS, INVALID, NO_SUCH_PAGE, UNAVAILABLE, error_responses
from flashsale.ratelimits import enforce_purchase_limits
from flashsale.serializers import path_id
from orders import selectors, services
from orders.errors import OrderNotFound
from orders.serializers import OrderFilterSerializer, OrderSerializer, PurchaseSerializer

PURCHASE_ERRORS = (
    *INVALID,
    *AUTH_ERRORS,
    (403, "admission_required"),
    (403, "admission_invalid"),
    (404, "not_found"),
    (409, "sale_not_started"),
    (409, "sale_ended"),
    (409, "purchase_limit_reached"),
    (409, "sold_out"),
    (409, "insufficient_stock"),
    (409, "idempotency_key_in_use"),
    (422, "idempotency_key_reused"),
    (429, "rate_limited"),
    (503, "busy"),
    *UNAVAILABLE,
)


CENTS = Decimal("0.01")


def order_answer(order) -> dict:
    """The contract's Order object, as OrderSerializer renders it, without a serializer pass.

    The purchase answers with it: building a ModelSerializer (its fields, their deep copies,
    their bindings) per request cost more than the rest of the view around the service call.
    orders/tests/test_api.py proves it equal to OrderSerializer for the same order.
    """
    created_at = timezone.localtime(order.created_at).isoformat()
    return {
        "id": order.pk,
        "product_id": order.product_id,
        "product_name": order.product.name,
        "quantity": order.quantity,
        "unit_price": f"{Decimal(order.unit_price).quantize(CENTS):f}",
        "total_price": f"{Decimal(order.total_price).quantize(CENTS):f}",
        "status": str(order.status),
        "created_at": created_at[:-6] + "Z" if created_at.endswith("+00:00") else created_at,
        "remaining_stock": order.remaining_stock,
    }


def _order(request, pk: str):
    return selectors.order_visible_to(request.user, path_id(pk, not_found=OrderNotFound))


class OrderListCreateApi(generics.GenericAPIView):
    permission_classes = [permissions.IsAuthenticated]
    serializer_class = OrderSerializer

    def dispatch(self, request, *args, **kwargs):
        if request.method != "POST":
            return super().dispatch(request, *args, **kwargs)
        # Counted after DRF has turned any failure into its answer, so every code is seen.
        with metrics.purchase_request() as record:
            return record("response", super().dispatch(request, *args, **kwargs))

    @extend_schema(
        summary="Your orders, newest first (staff: all orders, filterable)",
        parameters=[
            OpenApiParameter("product", int, description="Staff only: orders of this product id"),
            OpenApiParameter("user", str, description="Staff only: orders of this username"),
            OpenApiParameter("status", str, enum=["confirmed", "cancelled"], description="Staff only"),
        ],
        responses={200: OrderSerializer(many=True), **error_responses(*INVALID, *AUTH_ERRORS, *NO_SUCH_PAGE)},
    )
    def get(self, request):
        orders = selectors.orders_visible_to(request.user)
        if request.user.is_staff:
            filters = OrderFilterSerializer(data=request.query_params)
            filters.is_valid(raise_exception=True)
            orders = selectors.filter_orders(
                orders,
                product_id=filters.validated_data.get("product"),
                username=filters.validated_data.get("user"),
                status=filters.validated_data.get("status"),
            )
        page = self.paginate_queryset(orders)
        return self.get_paginated_response(OrderSerializer(page, many=True).data)

    @extend_schema(
        summary="Buy a product",
        description=(
            "Checked in this order: authentication, rate limits, input, product exists, admission "
            "(waiting-room products only: send the pass from the line in `Admission-Pass`), sale window, "
            "per-shopper limit, stock. Send an `Idempotency-Key` header to make retries safe: the same "
            "key and body return the same order; a different body is 422; a request still in flight "
            "with that key is 409."
        ),
        request=PurchaseSerializer,
        parameters=[
            OpenApiParameter("Idempotency-Key", str, OpenApiParameter.HEADER, required=False),
            OpenApiParameter("Admission-Pass", str, OpenApiParameter.HEADER, required=False,
                             description="The `pass` from `/api/products/{id}/queue/` (waiting-room products)."),
        ],
        responses={201: OrderSerializer, **error_responses(*PURCHASE_ERRORS)},
    )
    def post(self, request):
        enforce_purchase_limits(request)
        serializer = PurchaseSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        result = services.purchase(
            user=request.user,
            product_id=serializer.validated_data["product_id"],
            quantity=serializer.validated_data["quantity"],
            idempotency_key=request.headers.get("Idempotency-Key"),
            admission_pass=request.headers.get("Admission-Pass"),
        )
        return Response(order_answer(result.order), status=status.HTTP_201_CREATED)


class OrderDetailApi(APIView):
    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(summary="One order (yours, or any for staff)",
                   responses={200: OrderSerializer, **error_responses(*INVALID, *AUTH_ERRORS, (404, "not_found"))})
    def get(self, request, pk):
        return Response(OrderSerializer(_order(request, pk)).data)


class OrderCancelApi(APIView):
    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(
        summary="Cancel an order; its units go back in stock",
        request=None,
        responses={200: OrderSerializer, **error_responses(*INVALID, *AUTH_ERRORS, (404, "not_found"),
                                                             (409, "already_cancelled"), (503, "busy"), *UNAVAILABLE)},
    )
    def post(self, request, pk):
        order = services.cancel_order(order=_order(request, pk))
        return Response(OrderSerializer(order).data)
