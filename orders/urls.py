from django.urls import path

from orders import views

app_name = "orders"

# Included at the site's root: the buy form posts under its sale's address.
urlpatterns = [
    path("orders/", views.order_list, name="list"),
    path("orders/<int:pk>/", views.order_detail, name="detail"),
    path("orders/<int:pk>/cancel/", views.order_cancel, name="cancel"),
    path("products/<slug:slug>/buy/", views.buy, name="buy"),
]
