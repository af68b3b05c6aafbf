from django.contrib import admin
from django.urls import include, path

from flashsale.accounts import AdminLoginForm, login_rate_limited
from flashsale.metrics import metrics_view

# The admin's login is as much a brute-force target as the shop's.
admin.site.login = login_rate_limited(admin.site.login)
admin.site.login_form = AdminLoginForm
# The app sidebar took a quarter of a 1280 px screen and cut off the lists' right columns.
admin.site.enable_nav_sidebar = False

urlpatterns = [
    path("api/", include("flashsale.api_urls")),
    path("admin/", admin.site.urls),
    path("dashboard/", include("dashboard.urls")),
    path("accounts/", include("flashsale.accounts")),
    path("", include("orders.urls")),
    path("", include("waiting_room.urls")),
    path("", include("products.urls")),
    path("metrics", metrics_view, name="metrics"),
]

handler400 = "flashsale.error_views.bad_request"
handler403 = "flashsale.error_views.forbidden"
handler404 = "flashsale.error_views.not_found"
handler500 = "flashsale.error_views.server_failure"
