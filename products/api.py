"""REST endpoints for products: one small view per operation; logic lives in services."""

from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import generics, permissions, status
from rest_framework.response import Response
from rest_framework.views import APIView

from flashsale.errors import InvalidInput
from flashsale.openapi import INVALID, NO_SUCH_PAGE, STAFF_ERRORS, UNAVAILABLE, error_responses
from flashsale.serializers import path_id
from products import selectors, services
from products.errors import ProductNotFound
from products.serializers import (
    ProductCreateSerializer,
    ProductSerializer,
    ProductUpdateSerializer,
    RestockSerializer,
    StockSerializer,
)
from products.stock_reads import FRESH_READ

NOT_FOUND = ((404, "not_found"),)


def _product(pk: str):
    return selectors.shop_product(path_id(pk, not_found=ProductNotFound))


class StaffWrites(permissions.BasePermission):
    """Anyone reads; only staff write."""

    def has_permission(self, request, view):
        return request.method in permissions.SAFE_METHODS or bool(request.user and request.user.is_staff)


class ProductListCreateApi(generics.GenericAPIView):
    permission_classes = [StaffWrites]
    serializer_class = ProductSerializer

    def get_queryset(self):
        return selectors.shop_products()

    @extend_schema(summary="List the sales",
                   responses={200: ProductSerializer(many=True), **error_responses(*NO_SUCH_PAGE)})
    def get(self, request):
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(ProductSerializer(page, many=True).data)

    @extend_schema(
        summary="Create a product (staff)",
        request=ProductCreateSerializer,
        responses={201: ProductSerializer, **error_responses(*INVALID, *STAFF_ERRORS)},
    )
    def post(self, request):
        serializer = ProductCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        product = services.create_product(**serializer.validated_data)
        return Response(ProductSerializer(product).data, status=status.HTTP_201_CREATED)


class ProductDetailApi(APIView):
    permission_classes = [StaffWrites]

    @extend_schema(summary="One product", responses={200: ProductSerializer, **error_responses(*INVALID, *NOT_FOUND)})
    def get(self, request, pk):
        return Response(ProductSerializer(_product(pk)).data)

    @extend_schema(
        summary="Edit a product (staff); stock changes only by restock",
        request=ProductUpdateSerializer,
        responses={200: ProductSerializer, **error_responses(*INVALID, *STAFF_ERRORS, *NOT_FOUND)},
    )
    def patch(self, request, pk):
        product = _product(pk)
        serializer = ProductUpdateSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        product = services.update_product(product=product, **serializer.validated_data)
        return Response(ProductSerializer(product).data)


class ProductStockApi(APIView):
    """The cheapest call in the API: no authentication, one three-column read.

    Never cached by clients or proxies (`no-store`). Under gunicorn a known answer is
    replayed before Django (products.stock_reads) and this view only runs to refresh it,
    reading the row; elsewhere each process reuses a read for at most STOCK_READ_CACHE_MS.
    Either way the figure is at most 1 s old, as the contract allows.
    """

    authentication_classes = []
    permission_classes = [permissions.AllowAny]

    @extend_schema(summary="Live stock of one product", responses={200: StockSerializer, **error_responses(*INVALID, *NOT_FOUND)})
    def get(self, request, pk):
        product_id = path_id(pk, not_found=ProductNotFound)
        if request.META.get(FRESH_READ):
            level = selectors.stock_level(product_id)  # refills the replay: the row, not a copy
        else:
            level = selectors.stock_level_for_readers(product_id)
        return Response(level, headers={"Cache-Control": "no-store"})


class ProductRestockApi(APIView):
    permission_classes = [permissions.IsAdminUser]

    @extend_schema(
        summary="Add units to a product (staff)",
        request=RestockSerializer,
        responses={200: ProductSerializer, **error_responses(*INVALID, *STAFF_ERRORS, *NOT_FOUND, (503, "busy"), *UNAVAILABLE)},
    )
    def post(self, request, pk):
        product = _product(pk)
        serializer = RestockSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        product = services.restock(product=product, quantity=serializer.validated_data["quantity"])
        return Response(ProductSerializer(product).data)


class ProductStockListApi(APIView):
    """Live stock of several products in one call (`?ids=1,2,3`, at most 100): the sale list's poll.

    Same rules as the single stock read (no authentication, `no-store`, the per-process
    micro-cache); one query for every id the cache does not hold. Unknown ids are left out.
    """

    authentication_classes = []
    permission_classes = [permissions.AllowAny]

    @extend_schema(
        summary="Live stock of several products",
        operation_id="products_stock_list",
        parameters=[OpenApiParameter("ids", str, required=True, description="Comma-separated product ids, at most 100.")],
        responses={200: inline_serializer("StockList", {"results": StockSerializer(many=True)}), **error_responses(*INVALID)},
    )
    def get(self, request):
        raw = request.query_params.get("ids", "")
        parts = [part.strip() for part in raw.split(",") if part.strip()]
        if not parts or len(parts) > selectors.MAX_STOCK_IDS:
            raise InvalidInput(
                f"Give 1 to {selectors.MAX_STOCK_IDS} product ids, comma-separated.",
                errors={"ids": [f"1 to {selectors.MAX_STOCK_IDS} comma-separated ids."]},
            )
        ids = []
        for part in parts:
            try:
                ids.append(path_id(part, not_found=ProductNotFound))
            except ProductNotFound:
                continue  # past bigint: no such product, left out like any unknown id
        levels = selectors.stock_levels_for_readers(ids)
        return Response({"results": levels}, headers={"Cache-Control": "no-store"})
