"""Idempotent demo data: four sales in every state, a staff login and shopper logins."""

from datetime import timedelta
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from products.models import Product
from products.services import create_product, update_product

STAFF = ("staff", "staff-demo-pass")
SHOPPERS = [("alice", "shopper-demo-pass"), ("bob", "shopper-demo-pass")]


def demo_products(now):
    """(slug, fields, window); windows are re-anchored to `now` on every run."""
    return [
        ("midnight-sneakers", dict(name="Midnight Sneakers", price=Decimal("89.00"), stock=25, max_per_user=2,
                                   description="Hand-stitched runners in midnight blue. 25 pairs, two per shopper."),
         (now - timedelta(hours=1), now + timedelta(days=7))),
        ("wireless-earbuds", dict(name="Wireless Earbuds", price=Decimal("39.99"), stock=5000, max_per_user=5,
                                  description="Noise-cancelling earbuds with 30 hours of battery."),
         (now - timedelta(hours=2), now + timedelta(days=7))),
        ("limited-vinyl", dict(name="Limited Vinyl Pressing", price=Decimal("24.50"), stock=100, max_per_user=1,
                               description="A numbered pressing of 100 copies. One per shopper."),
         (now + timedelta(minutes=3), now + timedelta(days=2))),
        ("summer-tee", dict(name="Summer Tee", price=Decimal("15.00"), stock=40, max_per_user=None,
                            description="Last season's tee. This sale has ended."),
         (now - timedelta(days=3), now - timedelta(days=1))),
    ]


class Command(BaseCommand):
    help = (
        "Create the demo shop: an active sale with small stock, one with large stock, an upcoming one "
        "(starts in 3 minutes, so the countdown shows) and an ended one, plus a staff login and shopper "
        "logins. Safe to run again: nothing is duplicated and stock is never reset; sale windows are "
        "re-anchored to now."
    )

    def handle(self, *args, **options):
        now = timezone.now()
        with transaction.atomic():
            created = self._products(now)
            self._users()
        self.stdout.write(self.style.SUCCESS(f"Demo data ready ({created} new products)."))
        self.stdout.write("  staff login:    {} / {}  (admin, dashboard)".format(*STAFF))
        for username, password in SHOPPERS:
            self.stdout.write(f"  shopper login:  {username} / {password}")

    def _products(self, now) -> int:
        created = 0
        for slug, fields, (starts, ends) in demo_products(now):
            product = Product.objects.filter(slug=slug).first()
            if product is None:
                create_product(slug=slug, sale_starts_at=starts, sale_ends_at=ends, **fields)
                created += 1
            else:
                update_product(product=product, sale_starts_at=starts, sale_ends_at=ends)
        return created

    def _users(self) -> None:
        User = get_user_model()
        username, password = STAFF
        staff, made = User.objects.get_or_create(username=username, defaults={"is_staff": True, "is_superuser": True})
        if made:
            staff.set_password(password)
            staff.save()
        for username, password in SHOPPERS:
            shopper, made = User.objects.get_or_create(username=username)
            if made:
                shopper.set_password(password)
                shopper.save()
