from django.urls import path

from products import views

app_name = "products"

urlpatterns = [
    path("", views.sale_list, name="list"),
    path("products/<slug:slug>/", views.product_detail, name="detail"),
]
