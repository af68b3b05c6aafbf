from django.conf import settings
from django.db import models
from django.db.models import Q

from products.models import Product


class OrderStatus(models.TextChoices):
    CONFIRMED = "confirmed", "Confirmed"
    CANCELLED = "cancelled", "Cancelled"


MAX_QUANTITY = 100  # the contract's per-request ceiling


class Order(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="orders")
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="orders")
    quantity = models.PositiveIntegerField()
    unit_price = models.DecimalField(max_digits=10, decimal_places=2)
    status = models.CharField(max_length=16, choices=OrderStatus.choices, default=OrderStatus.CONFIRMED)
    # The product's stock right after this purchase committed (part of the order's answer).
    remaining_stock = models.IntegerField()
    created_at = models.DateTimeField(auto_now_add=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    # A retry with the same key returns this order; the hash tells a retry from a reuse.
    idempotency_key = models.CharField(max_length=255, null=True, blank=True)
    request_hash = models.CharField(max_length=64, blank=True, default="")

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(quantity__gte=1) & Q(quantity__lte=MAX_QUANTITY), name="order_quantity_in_range"
            ),
            models.CheckConstraint(condition=Q(unit_price__gt=0), name="order_unit_price_positive"),
            models.CheckConstraint(condition=Q(status__in=OrderStatus.values), name="order_status_valid"),
            models.CheckConstraint(
                condition=Q(status=OrderStatus.CANCELLED, cancelled_at__isnull=False)
                | Q(status=OrderStatus.CONFIRMED, cancelled_at__isnull=True),
                name="order_cancelled_at_matches_status",
            ),
            models.UniqueConstraint(
                fields=["user", "idempotency_key"],
                condition=Q(idempotency_key__isnull=False),
                name="order_idempotency_key_unique_per_user",
            ),
        ]
        indexes = [
            # The per-shopper limit sums a shopper's live units of one product under the lock.
            models.Index(
                fields=["product", "user"], condition=Q(status="confirmed"), name="order_live_units_by_user"
            ),
            models.Index(fields=["user", "-created_at"], name="order_user_newest"),
            models.Index(fields=["product", "status"], name="order_product_status"),
            models.Index(fields=["-created_at"], name="order_newest"),
            # The staff stats count confirmed orders by time, and by product and time; the
            # included columns let PostgreSQL answer from the index alone.
            models.Index(
                fields=["created_at"], include=["product", "quantity", "unit_price"],
                condition=Q(status="confirmed"), name="order_counted_by_time",
            ),
            models.Index(
                fields=["product", "created_at"], include=["quantity", "unit_price"],
                condition=Q(status="confirmed"), name="order_counted_by_product",
            ),
            # The order that took a product's stock to 0: its sell-out moment.
            models.Index(
                fields=["product", "created_at"], condition=Q(status="confirmed", remaining_stock=0),
                name="order_sold_out",
            ),
        ]

    def __str__(self) -> str:
        return f"Order #{self.pk}"

    @property
    def total_price(self):
        return self.unit_price * self.quantity

    @property
    def is_cancelled(self) -> bool:
        return self.status == OrderStatus.CANCELLED



