"""Staff admin for products: live numbers in the list, stock moved only by the restock action.

Units sold are what was received and is no longer in stock (guarantee 1), so the list needs
no join with orders (`products` never imports `orders`; revenue per sale is on the
dashboard). The form edits the window, limits and copy through `update_product`; new
products go through `create_product`.
"""

from django import forms
from django.contrib import admin, messages
from django.db import models
from django.db.models import F
from django.shortcuts import render
from django.utils import timezone
from django.utils.html import format_html

from flashsale.errors import DomainError
from products.models import Product, SaleStatus
from products.services import EDITABLE_FIELDS, MAX_RESTOCK, create_product, restock, update_product


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
    # Few, narrow columns: the whole row fits a 1280 px screen next to the filter sidebar.
    list_display = ["name", "status_badge", "stock", "units_sold", "price", "limit", "sale_window"]
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
            .annotate(units_sold_total=F("units_received") - F("stock"))
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
        status = SaleStatus(product.status)
        if status == SaleStatus.SOLD_OUT:
            return format_html("<strong>{}</strong>", status.label)
        return status.label

    @admin.display(description="Limit", ordering="max_per_user")
    def limit(self, product):
        return product.max_per_user or "–"

    @admin.display(description="Sale window (UTC)", ordering="sale_starts_at")
    def sale_window(self, product):
        def moment(at):
            return timezone.localtime(at).strftime("%-d %b %H:%M") if at else "…"

        if product.status == SaleStatus.ENDED:
            return f"ended {moment(product.sale_ends_at)}"
        return f"{moment(product.sale_starts_at)} → {moment(product.sale_ends_at)}"

    @admin.display(description="Sold", ordering="units_sold_total")
    def units_sold(self, product):
        return product.units_sold_total

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
