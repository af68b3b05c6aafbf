from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from dashboard.api import StatsApi
from flashsale.auth_api import TokenApi
from flashsale.health import HealthApi
from orders.api import OrderCancelApi, OrderDetailApi, OrderListCreateApi
from products.api import ProductDetailApi, ProductListCreateApi, ProductRestockApi, ProductStockApi, ProductStockListApi
from waiting_room.api import LineApi

urlpatterns = [
    path("auth/token/", TokenApi.as_view(), name="api-token"),
    path("health/", HealthApi.as_view(), name="api-health"),
    path("products/", ProductListCreateApi.as_view(), name="api-products"),
    path("products/stock/", ProductStockListApi.as_view(), name="api-products-stock"),
    path("products/<str:pk>/", ProductDetailApi.as_view(), name="api-product"),
    path("products/<str:pk>/stock/", ProductStockApi.as_view(), name="api-product-stock"),
    path("products/<str:pk>/restock/", ProductRestockApi.as_view(), name="api-product-restock"),
    path("products/<str:pk>/queue/", LineApi.as_view(), name="api-product-queue"),
    path("orders/", OrderListCreateApi.as_view(), name="api-orders"),
    path("orders/<str:pk>/", OrderDetailApi.as_view(), name="api-order"),
    path("orders/<str:pk>/cancel/", OrderCancelApi.as_view(), name="api-order-cancel"),
    path("stats/", StatsApi.as_view(), name="api-stats"),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("redoc/", SpectacularRedocView.as_view(url_name="api-schema"), name="api-redoc"),
]
