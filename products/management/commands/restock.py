"""Add units to a product from the terminal, through the same service as the API and admin."""

from django.core.management.base import BaseCommand, CommandError

from flashsale.errors import DomainError
from products.models import Product
from products.services import MAX_RESTOCK, restock


class Command(BaseCommand):
    help = (
        "Atomically add QUANTITY units to the product with slug SLUG: stock and units received "
        "grow together under the product's row lock, so purchases running at the same time stay "
        "correct. Exits 1 on an unknown slug or a bad quantity, and when the product stays "
        "locked longer than LOCK_TIMEOUT_MS. Example: manage.py restock midnight-sneakers 50"
    )

    def add_arguments(self, parser):
        parser.add_argument("slug", help="the product's slug, as in /products/<slug>/")
        parser.add_argument("quantity", type=int, help=f"units to add (1 to {MAX_RESTOCK:,})")

    def handle(self, *args, slug, quantity, **options):
        product = Product.objects.filter(slug=slug).first()
        if product is None:
            raise CommandError(f"No product with slug {slug!r}.")
        before = product.stock
        try:
            product = restock(product=product, quantity=quantity)
        except DomainError as exc:
            messages = [exc.detail, *(m for field in (exc.errors or {}).values() for m in field)]
            raise CommandError(" ".join(messages)) from None
        self.stdout.write(self.style.SUCCESS(
            f"Restocked {product.name} ({product.slug}): +{quantity:,}, stock {before:,} -> {product.stock:,}, "
            f"units received {product.units_received:,}."
        ))
