"""Staff admin for products: live numbers in the list, stock moved only by the restock action.

The list's units sold and revenue come from one annotated query (no per-row queries). The
form edits the window, limits and copy through `update_product`; new products go through
`create_product`. Race-lab scratch rows are hidden here (they are the lab's business).
"""

from decimal import Decimal

from django import forms
from django.contrib import admin, messages
from django.db import models
from django.db.models import DecimalField, F, Q, Sum
from django.db.models.functions import Coalesce
from django.shortcuts import render

from flashsale.errors import DomainError
from orders.models import OrderStatus
from products.models import Product, SaleStatus
from products.services import EDITABLE_FIELDS, MAX_RESTOCK, create_product, restock, update_product

_LIVE = Q(orders__status=OrderStatus.CONFIRMED)
_MONEY = DecimalField(max_digits=14, decimal_places=2)


class SaleStatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return SaleStatus.choices

    def queryset(self, request, queryset):
        if self.value() not in SaleStatus.values:
            return queryset
        return queryset.with_status(self.value())


class ProductAddForm(forms.ModelForm):
    slug = forms.SlugField(max_length=220, required=False, help_text="Leave empty to derive it from the name.")
    image_url = forms.URLField(max_length=500, required=False, assume_scheme="https")
    stock = forms.IntegerField(min_value=0, max_value=MAX_RESTOCK, help_text="Units to put on sale.")

    class Meta:
        model = Product
        fields = ["name", "slug", "description", "image_url", "price", "stock", "max_per_user",
                  "sale_starts_at", "sale_ends_at", "waiting_room", "admit_per_minute"]


class RestockForm(forms.Form):
    quantity = forms.IntegerField(min_value=1, max_value=MAX_RESTOCK, label="Units to add to each product")


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ["name", "status_badge", "stock", "units_sold", "revenue", "price", "max_per_user",
                    "sale_starts_at", "sale_ends_at"]
    list_filter = [SaleStatusFilter, "waiting_room", "sale_starts_at"]
    search_fields = ["name", "slug"]
    ordering = ["-sale_starts_at", "-id"]
    prepopulated_fields = {"slug": ["name"]}
    readonly_fields = ["stock", "units_received", "created_at", "updated_at"]
    fieldsets = [
        (None, {"fields": ["name", "slug", "description", "image_url", "price"]}),
        ("Sale window and limits", {"fields": ["sale_starts_at", "sale_ends_at", "max_per_user"]}),
        ("Waiting room", {"fields": ["waiting_room", "admit_per_minute"]}),
        ("Stock (change it with the Restock action)", {"fields": ["stock", "units_received"]}),
        ("History", {"fields": ["created_at", "updated_at"], "classes": ["collapse"]}),
    ]
    actions = ["restock_products"]
    list_per_page = 50
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}

    def get_queryset(self, request):
        return (
            super().get_queryset(request)
            .filter(is_lab=False)
            .annotate(
                units_sold_total=Coalesce(Sum("orders__quantity", filter=_LIVE), 0),
                revenue_total=Coalesce(
                    Sum(F("orders__quantity") * F("orders__unit_price"), filter=_LIVE, output_field=_MONEY),
                    Decimal("0"), output_field=_MONEY,
                ),
            )
        )

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = ProductAddForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fieldsets(self, request, obj=None):
        if obj is None:
            return [(None, {"fields": ProductAddForm.Meta.fields})]
        return self.fieldsets

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields if obj is not None else []

    @admin.display(description="Status")
    def status_badge(self, product):
        return SaleStatus(product.status).label

    @admin.display(description="Units sold", ordering="units_sold_total")
    def units_sold(self, product):
        return product.units_sold_total

    @admin.display(description="Revenue", ordering="revenue_total")
    def revenue(self, product):
        return product.revenue_total

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        if change:
            changes = {field: data[field] for field in form.changed_data if field in EDITABLE_FIELDS}
            if changes:
                update_product(product=Product.objects.get(pk=obj.pk), **changes)
            obj.refresh_from_db()
        else:
            saved = create_product(**{field: data[field] for field in ProductAddForm.Meta.fields})
            obj.pk, obj.slug, obj.stock, obj.units_received = saved.pk, saved.slug, saved.stock, saved.units_received
            obj._state.adding, obj._state.db = False, saved._state.db

    @admin.action(description="Restock selected products", permissions=["change"])
    def restock_products(self, request, queryset):
        form = RestockForm(request.POST if "apply" in request.POST else None)
        if form.is_bound and form.is_valid():
            quantity = form.cleaned_data["quantity"]
            done = 0
            for product in queryset.order_by("pk"):  # primary-key order, like every lock we take
                try:
                    restock(product=product, quantity=quantity)
                    done += 1
                except DomainError as exc:
                    self.message_user(request, f"{product.name}: {exc.detail}", messages.ERROR)
            if done:
                self.message_user(request, f"Added {quantity} units to {done} product(s).", messages.SUCCESS)
            return None
        return render(request, "admin/products/restock.html", {
            **self.admin_site.each_context(request),
            "title": "Restock products",
            "opts": self.model._meta,
            "products": queryset,
            "form": form,
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
        })

    def has_delete_permission(self, request, obj=None):
        return False  # orders point at products; a sale is ended by its window, not deleted
