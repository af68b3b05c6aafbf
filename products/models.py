from decimal import Decimal

from django.db import models
from django.db.models import F, Q
from django.utils import timezone


class SaleStatus(models.TextChoices):
    UPCOMING = "upcoming", "Upcoming"
    ACTIVE = "active", "Active"
    SOLD_OUT = "sold_out", "Sold out"
    ENDED = "ended", "Ended"


def window_status(*, starts_at, ends_at, now) -> str | None:
    """The sale-window rule, the one Python home of it: UPCOMING before the start, ENDED at
    or after the end, None while open. `_window_conditions` is its SQL twin (a test proves
    them equal at the boundaries); the purchase and `sale_status` both ask this function."""
    if starts_at is not None and now < starts_at:
        return SaleStatus.UPCOMING
    if ends_at is not None and now >= ends_at:
        return SaleStatus.ENDED
    return None


def sale_status(*, stock: int, starts_at, ends_at, now=None) -> str:
    """The contract's status rule: window first, then stock."""
    window = window_status(starts_at=starts_at, ends_at=ends_at, now=now or timezone.now())
    if window is not None:
        return window
    return SaleStatus.SOLD_OUT if stock <= 0 else SaleStatus.ACTIVE


class ProductQuerySet(models.QuerySet):
    def in_window(self, now=None):
        """Sales open right now (active or sold out): `sale_status`'s window rule in SQL."""
        not_started, over = _window_conditions(now or timezone.now())
        return self.exclude(not_started).exclude(over)

    def with_status(self, status: str, now=None):
        """The rows whose `sale_status` is `status`, decided in SQL."""
        not_started, over = _window_conditions(now or timezone.now())
        if status == SaleStatus.UPCOMING:
            return self.filter(not_started)
        if status == SaleStatus.ENDED:
            return self.exclude(not_started).filter(over)
        in_window = self.in_window(now)
        return in_window.filter(stock__lte=0) if status == SaleStatus.SOLD_OUT else in_window.filter(stock__gt=0)


def _window_conditions(now):
    """`window_status` in SQL: (not started yet, over). NULL ends compare false: open on that side."""
    return Q(sale_starts_at__gt=now), Q(sale_ends_at__lte=now)


class Product(models.Model):
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=220, unique=True)
    description = models.TextField(blank=True, default="")
    image_url = models.URLField(max_length=500, blank=True, null=True)
    price = models.DecimalField(max_digits=10, decimal_places=2)
    stock = models.IntegerField(help_text="Units left to sell. Changed only by services.")
    # Initial stock plus every restock: guarantee 1 says
    # stock + units in non-cancelled orders == units_received.
    units_received = models.IntegerField()
    max_per_user = models.PositiveIntegerField(
        null=True, blank=True, help_text="Most units one shopper may hold; empty = no limit."
    )
    sale_starts_at = models.DateTimeField(null=True, blank=True)
    sale_ends_at = models.DateTimeField(null=True, blank=True)
    # The waiting room (contract section 8; the line itself lives in Redis, see waiting_room/).
    waiting_room = models.BooleanField(default=False, help_text="Buying needs an admission pass from the line.")
    admit_per_minute = models.PositiveIntegerField(default=60, help_text="Shoppers the line admits per minute.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ProductQuerySet.as_manager()

    class Meta:
        ordering = ["sale_starts_at", "id"]
        constraints = [
            models.CheckConstraint(condition=Q(stock__gte=0), name="product_stock_not_negative"),
            # A product without a slug has no page; the listing would fail to link it.
            models.CheckConstraint(condition=~Q(slug=""), name="product_slug_not_blank"),
            models.CheckConstraint(
                condition=Q(units_received__gte=F("stock")), name="product_stock_within_received"
            ),
            models.CheckConstraint(condition=Q(price__gt=Decimal("0")), name="product_price_positive"),
            models.CheckConstraint(
                condition=Q(max_per_user__isnull=True) | Q(max_per_user__gte=1),
                name="product_max_per_user_positive",
            ),
            models.CheckConstraint(condition=Q(admit_per_minute__gte=1), name="product_admit_per_minute_positive"),
            models.CheckConstraint(
                condition=Q(sale_starts_at__isnull=True)
                | Q(sale_ends_at__isnull=True)
                | Q(sale_ends_at__gt=F("sale_starts_at")),
                name="product_sale_ends_after_start",
            ),
        ]
        indexes = [models.Index(fields=["sale_starts_at", "id"], name="product_listing")]

    def __str__(self) -> str:
        return self.name

    @property
    def status(self) -> str:
        return sale_status(stock=self.stock, starts_at=self.sale_starts_at, ends_at=self.sale_ends_at)
