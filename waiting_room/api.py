"""REST endpoints of the line: POST to join, GET to look up one's place (section 8)."""

from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import permissions, status
from rest_framework.response import Response
from rest_framework.views import APIView

from flashsale.openapi import INVALID, UNAVAILABLE, error_responses
from flashsale.serializers import path_id
from products.errors import ProductNotFound
from waiting_room import services
from waiting_room.serializers import StandingSerializer

SHOPPERS_ONLY = ((401, "not_authenticated"), (403, "permission_denied"))


class ShoppersOnly(permissions.BasePermission):
    """Lines are for shoppers: anonymous callers get 401, staff 403."""

    message = "Staff do not queue; the line is for shoppers."

    def has_permission(self, request, view):
        if not (request.user and request.user.is_authenticated):
            return False  # DRF answers 401 for an unauthenticated caller
        return not request.user.is_staff


_WAITING = {"ticket": "10000000000003-5f2a9c1e", "position": 41, "admitted": False, "pass": None,
            "pass_expires_at": None, "retry_after": 30, "status": "active"}
_ADMITTED = {"ticket": "10000000000003-5f2a9c1e", "position": 0, "admitted": True,
             "pass": "eyJzIjo0MiwicCI6NywiZSI6MTc2NDYwOTIwMDAwMH0:1XoNBP:9kF…",
             "pass_expires_at": "2026-12-01T18:05:00Z", "retry_after": None, "status": "active"}
_BEFORE_START = {**_WAITING, "ticket": "0a3f29c4e81b07-c41d07aa", "position": 12, "retry_after": 30,
                 "status": "upcoming"}
_CLOSED = {**_WAITING, "retry_after": None, "status": "sold_out"}
_EXAMPLES = [
    OpenApiExample("waiting", value=_WAITING, response_only=True),
    OpenApiExample("joined before the start", value=_BEFORE_START, response_only=True),
    OpenApiExample("admitted", value=_ADMITTED, response_only=True),
    OpenApiExample("line closed (sold out)", value=_CLOSED, response_only=True, status_codes=[200]),
]


class LineApi(APIView):
    permission_classes = [ShoppersOnly]

    @extend_schema(
        summary="Join the waiting room's line",
        description=(
            "201 with a new ticket, or 200 with the ticket already held. Shoppers who join before the sale "
            "starts are put in a uniformly random order at the start; later joiners queue behind them in "
            "arrival order. Poll with GET after `retry_after` seconds; once `admitted`, buy with the `pass`."
        ),
        request=None,
        responses={
            201: StandingSerializer, 200: StandingSerializer,
            **error_responses(*INVALID, *SHOPPERS_ONLY, (404, "not_found"), (409, "waiting_room_off"),
                              (409, "sale_ended"), (409, "sold_out"), *UNAVAILABLE),
        },
        examples=_EXAMPLES,
    )
    def post(self, request, pk):
        standing = services.join_line(user=request.user, product_id=path_id(pk, not_found=ProductNotFound))
        return Response(StandingSerializer(standing).data,
                        status=status.HTTP_201_CREATED if standing.created else status.HTTP_200_OK)

    @extend_schema(
        summary="Your place in the waiting room's line",
        description="200 with your ticket (its `status` tells a sale that is over); 404 if you hold none.",
        responses={
            200: StandingSerializer,
            **error_responses(*INVALID, *SHOPPERS_ONLY, (404, "not_found"), (409, "waiting_room_off"), *UNAVAILABLE),
        },
        examples=_EXAMPLES,
    )
    def get(self, request, pk):
        standing = services.line_standing(user=request.user, product_id=path_id(pk, not_found=ProductNotFound))
        return Response(StandingSerializer(standing).data, headers={"Cache-Control": "no-store"})
