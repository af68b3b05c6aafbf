"""Staff admin for orders: read-only, searchable by shopper, filterable; cancel is an action.

Orders are made only by `purchase()` and changed only by `cancel_order()`, so the admin
can neither add, edit nor delete them. The cancel action asks once (a confirmation page,
like Django's own delete action) because the units go straight back on sale.
"""

from django.contrib import admin, messages
from django.shortcuts import render

from flashsale.errors import DomainError
from orders.models import Order, OrderStatus
from orders.services import cancel_order


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    # Few, narrow columns: the whole row fits a 1280 px screen next to the filter sidebar.
    list_display = ["id", "user", "product", "quantity", "total", "status", "created_at"]
    list_filter = ["status", ("product", admin.RelatedOnlyFieldListFilter), "created_at"]
    search_fields = ["user__username", "user__email", "=id"]
    date_hierarchy = "created_at"
    list_select_related = ["user", "product"]
    readonly_fields = ["user", "product", "quantity", "unit_price", "total", "status", "remaining_stock",
                       "created_at", "cancelled_at", "idempotency_key"]
    fields = readonly_fields
    actions = ["cancel_orders"]
    list_per_page = 50
    show_full_result_count = False  # no COUNT(*) over every order on each page view

    @admin.display(description="Total")
    def total(self, order):
        return order.total_price

    @admin.action(description="Cancel selected orders (units go back in stock)", permissions=["cancel"])
    def cancel_orders(self, request, queryset):
        if "confirm" not in request.POST:
            return render(request, "admin/orders/cancel_confirmation.html", {
                **self.admin_site.each_context(request),
                "title": "Cancel these orders?",
                "opts": self.model._meta,
                "orders": queryset.order_by("pk"),
                "confirmed": queryset.filter(status=OrderStatus.CONFIRMED).count(),
                "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
            })
        cancelled = skipped = 0
        already = queryset.exclude(status=OrderStatus.CONFIRMED).count()
        for order in queryset.filter(status=OrderStatus.CONFIRMED).order_by("pk"):
            try:
                cancel_order(order=order)
                cancelled += 1
            except DomainError as exc:
                skipped += 1
                self.message_user(request, f"Order #{order.pk}: {exc.detail}", messages.WARNING)
        summary = f"Cancelled {cancelled} order(s)."
        if already:
            summary += f" {already} were already cancelled."
        self.message_user(request, summary, messages.SUCCESS if cancelled or not skipped else messages.WARNING)

    def has_cancel_permission(self, request):
        return request.user.has_perm("orders.change_order")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False  # read-only: the cancel action is the one change staff can make

    def has_delete_permission(self, request, obj=None):
        return False
