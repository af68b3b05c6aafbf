"""Writes about products: create, edit and restock. Stock only ever moves through services."""

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.text import slugify

from flashsale.db import locked_transaction
from flashsale.errors import InvalidInput
from products import lock_objects, sold_out
from products.models import Product

MAX_RESTOCK = 1_000_000
# Fields staff may change after creation; stock is not among them (use restock).
EDITABLE_FIELDS = ("name", "slug", "description", "image_url", "price", "max_per_user", "sale_starts_at", "sale_ends_at",
                   "waiting_room", "admit_per_minute")


def create_product(*, name: str, price, stock: int, slug: str = "", description: str = "", image_url=None,
                   max_per_user=None, sale_starts_at=None, sale_ends_at=None,
                   waiting_room: bool = False, admit_per_minute: int = 60) -> Product:
    if stock < 0:
        raise InvalidInput(errors={"stock": ["Stock cannot be negative."]})
    _check_window(sale_starts_at, sale_ends_at)
    fields = dict(name=name, description=description, image_url=image_url or None, price=price,
                  stock=stock, units_received=stock, max_per_user=max_per_user,
                  sale_starts_at=sale_starts_at, sale_ends_at=sale_ends_at,
                  waiting_room=waiting_room, admit_per_minute=admit_per_minute)
    if slug:
        return _save_with_slug(Product(slug=slug, **fields), explicit_slug=True)
    return _save_with_slug(Product(slug=unique_slug(name), **fields), explicit_slug=False)


def update_product(*, product: Product, **changes) -> Product:
    unknown = set(changes) - set(EDITABLE_FIELDS)
    if unknown:
        raise InvalidInput(errors={field: ["This field cannot be changed here."] for field in sorted(unknown)})
    _check_window(changes.get("sale_starts_at", product.sale_starts_at),
                  changes.get("sale_ends_at", product.sale_ends_at))
    if "image_url" in changes:
        changes["image_url"] = changes["image_url"] or None
    if "slug" in changes and not changes["slug"]:
        # A blank slug would leave the product without a page: derive one, as on create.
        changes["slug"] = unique_slug(changes.get("name", product.name), exclude_pk=product.pk)
    changes["updated_at"] = timezone.now()  # .update() skips auto_now
    try:
        with locked_transaction():
            # Only the named columns are written, so a concurrent purchase's stock change is kept.
            Product.objects.filter(pk=product.pk).update(**changes)
            sold_out.clear_sold_out_on_commit(product.pk)  # the window or the limit may have changed
    except IntegrityError as exc:
        if "slug" in str(exc):
            raise InvalidInput(errors={"slug": ["A product with this slug already exists."]}) from None
        raise
    product.refresh_from_db()
    return product


def restock(*, product: Product, quantity: int) -> Product:
    """Add units atomically; units_received grows with stock so reconciliation holds."""
    if isinstance(quantity, bool) or not isinstance(quantity, int) or not 1 <= quantity <= MAX_RESTOCK:
        raise InvalidInput(errors={"quantity": [f"Restock quantity must be a whole number from 1 to {MAX_RESTOCK}."]})
    with locked_transaction():
        locked = lock_objects.product_for_update(product.pk)
        if locked.units_received + quantity > 2**31 - 1:
            raise InvalidInput(errors={"quantity": ["That would take the product past the largest stock we can hold."]})
        Product.objects.filter(pk=locked.pk).update(
            stock=F("stock") + quantity, units_received=F("units_received") + quantity, updated_at=timezone.now()
        )
        sold_out.clear_sold_out_on_commit(locked.pk)
    product.refresh_from_db()
    return product


def unique_slug(name: str, *, exclude_pk: int | None = None) -> str:
    base = slugify(name)[:200] or "product"
    taken = Product.objects.exclude(pk=exclude_pk) if exclude_pk else Product.objects.all()
    slug, n = base, 2
    while taken.filter(slug=slug).exists():
        slug, n = f"{base}-{n}", n + 1
    return slug


def _check_window(starts_at, ends_at) -> None:
    if starts_at is not None and ends_at is not None and ends_at <= starts_at:
        raise InvalidInput(errors={"sale_ends_at": ["The sale must end after it starts."]})


def _save_with_slug(product: Product, *, explicit_slug: bool) -> Product:
    for _attempt in range(5):
        try:
            with transaction.atomic():
                product.save()
            return product
        except IntegrityError as exc:
            if "slug" not in str(exc):
                raise
            if explicit_slug:
                raise InvalidInput(errors={"slug": ["A product with this slug already exists."]}) from None
            product.slug = unique_slug(product.name)  # someone took it in between; pick again
    raise InvalidInput(errors={"slug": ["Could not find a free slug; please give one."]})
