"""Writes about orders: the purchase (the shop's one critical section) and the cancel."""

import hashlib
from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone
from rest_framework.authtoken.models import Token

from flashsale.db import lock_timeout_is_busy, set_lock_timeout
from flashsale.errors import InvalidInput
from flashsale.serializers import MAX_ID
from orders import lock_objects as order_locks
from orders.errors import (
    AlreadyCancelled,
    IdempotencyKeyInUse,
    IdempotencyKeyReused,
    PurchaseLimitReached,
)
from orders.models import MAX_QUANTITY, Order, OrderStatus
from orders.selectors import order_for_key, purchase_snapshot, units_held
from products import lock_objects as product_locks
from products.errors import (
    InsufficientStock,
    ProductNotFound,
    SaleEnded,
    SaleNotStarted,
    SoldOut,
)
from products.models import Product
from waiting_room.admission import check_admission

MAX_IDEMPOTENCY_KEY_LENGTH = 255


@dataclass(frozen=True)
class PurchaseResult:
    order: Order
    created: bool  # False when an Idempotency-Key retry returned the order made earlier


def purchase(*, user, product_id: int, quantity: int = 1, idempotency_key: str | None = None,
             admission_pass: str | None = None) -> PurchaseResult:
    """Buy `quantity` units of a product for `user`: the only way an order is made.

    Checks run in the contract's order (input, product, admission, window, per-shopper
    limit, stock); `admission_pass` is the waiting room's pass (section 8). An unlocked
    read turns most losers away first (sold out, not started…) so they never queue on
    the row lock; the winners then repeat every check under the
    lock, where the answer is authoritative.
    """
    _validate_purchase_input(product_id, quantity, idempotency_key)
    if idempotency_key is None:
        _reject_early(user_id=user.pk, product_id=product_id, quantity=quantity, admission_pass=admission_pass)
        with lock_timeout_is_busy(), transaction.atomic():
            set_lock_timeout()
            return PurchaseResult(_buy_locked(user.pk, product_id, quantity, None, ""), created=True)
    return _purchase_once(user, product_id, quantity, idempotency_key, admission_pass)


def _purchase_once(user, product_id: int, quantity: int, key: str, admission_pass: str | None) -> PurchaseResult:
    """An Idempotency-Key purchase: at most one order per (shopper, key), retries see it again."""
    request_hash = hashlib.sha256(f"{product_id}:{quantity}".encode()).hexdigest()
    try:
        with lock_timeout_is_busy(), transaction.atomic():
            set_lock_timeout()
            _claim_idempotency_key(user.pk, key)
            earlier = order_for_key(user_id=user.pk, idempotency_key=key)
            if earlier is not None:
                return _replay(earlier, request_hash)
            _reject_early(user_id=user.pk, product_id=product_id, quantity=quantity, admission_pass=admission_pass)
            return PurchaseResult(_buy_locked(user.pk, product_id, quantity, key, request_hash), created=True)
    except IntegrityError:
        # Belt and braces behind the advisory lock: the unique (user, key) constraint won.
        earlier = order_for_key(user_id=user.pk, idempotency_key=key)
        if earlier is None:
            raise
        return _replay(earlier, request_hash)


def _claim_idempotency_key(user_id: int, key: str) -> None:
    # A transaction-scoped advisory lock marks the key "in flight" until this commits.
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock(hashtextextended(%s, 0))", [f"order-key:{user_id}:{key}"])
        (claimed,) = cursor.fetchone()
    if not claimed:
        raise IdempotencyKeyInUse()


def _replay(order: Order, request_hash: str) -> PurchaseResult:
    if order.request_hash != request_hash:
        raise IdempotencyKeyReused()
    return PurchaseResult(order, created=False)


def _buy_locked(user_id: int, product_id: int, quantity: int, key: str | None, request_hash: str) -> Order:
    """The critical section: lock, check, decrement, insert. Nothing else happens here."""
    product = product_locks.product_for_purchase(product_id)
    # Only limited products pay for the extra round trip inside the lock.
    held = units_held(product_id=product_id, user_id=user_id) if product.max_per_user is not None else 0
    _ensure_purchasable(
        stock=product.stock,
        max_per_user=product.max_per_user,
        starts_at=product.sale_starts_at,
        ends_at=product.sale_ends_at,
        units_held=held,
        quantity=quantity,
        now=timezone.now(),
    )
    Product.objects.filter(pk=product.pk).update(stock=F("stock") - quantity)
    order = Order.objects.create(
        user_id=user_id,
        product=product,
        quantity=quantity,
        unit_price=product.price,
        remaining_stock=product.stock - quantity,
        idempotency_key=key,
        request_hash=request_hash,
    )
    return order


def _reject_early(*, user_id: int, product_id: int, quantity: int, admission_pass: str | None = None) -> None:
    snapshot = purchase_snapshot(product_id=product_id, user_id=user_id)
    if snapshot is None:
        raise ProductNotFound()
    # Waiting room (contract section 8): after "product exists", before the window, never under the row lock.
    check_admission(waiting_room=snapshot["waiting_room"], product_id=product_id, user_id=user_id,
                    admission_pass=admission_pass)
    _ensure_purchasable(
        stock=snapshot["stock"],
        max_per_user=snapshot["max_per_user"],
        starts_at=snapshot["sale_starts_at"],
        ends_at=snapshot["sale_ends_at"],
        units_held=snapshot["units_held"],
        quantity=quantity,
        now=timezone.now(),
    )


def _ensure_purchasable(
    *, stock: int, max_per_user: int | None, starts_at: datetime | None, ends_at: datetime | None,
    units_held: int, quantity: int, now: datetime,
) -> None:
    if starts_at is not None and now < starts_at:
        raise SaleNotStarted()
    if ends_at is not None and now >= ends_at:
        raise SaleEnded()
    if max_per_user is not None and units_held + quantity > max_per_user:
        raise PurchaseLimitReached(limit=max_per_user, held=units_held)
    if stock <= 0:
        raise SoldOut()
    if stock < quantity:
        raise InsufficientStock(available=stock, requested=quantity)


def _validate_purchase_input(product_id, quantity, idempotency_key) -> None:
    errors = {}
    if not _is_int(product_id) or not 1 <= product_id <= MAX_ID:
        errors["product_id"] = ["A product id is a positive integer."]
    if not _is_int(quantity) or not 1 <= quantity <= MAX_QUANTITY:
        errors["quantity"] = [f"Quantity must be a whole number from 1 to {MAX_QUANTITY}."]
    if idempotency_key is not None and not _valid_key(idempotency_key):
        errors["idempotency_key"] = [
            f"An Idempotency-Key is 1 to {MAX_IDEMPOTENCY_KEY_LENGTH} printable ASCII characters."
        ]
    if errors:
        raise InvalidInput("The purchase request is not valid.", errors=errors)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _valid_key(key) -> bool:
    return (
        isinstance(key, str)
        and 1 <= len(key) <= MAX_IDEMPOTENCY_KEY_LENGTH
        and all(32 < ord(ch) < 127 for ch in key)
    )


def cancel_order(*, order: Order) -> Order:
    """Cancel a confirmed order and put its units back, once, atomically.

    Permission is the caller's business (see `orders_visible_to`); this only changes state.
    """
    with lock_timeout_is_busy(), transaction.atomic():
        set_lock_timeout()
        product_locks.product_for_update(order.product_id)  # product first, as everywhere
        locked = order_locks.order_for_update(order.pk)
        if locked.status == OrderStatus.CANCELLED:
            raise AlreadyCancelled()
        locked.status = OrderStatus.CANCELLED
        locked.cancelled_at = timezone.now()
        locked.save(update_fields=["status", "cancelled_at"])
        Product.objects.filter(pk=locked.product_id).update(stock=F("stock") + locked.quantity)
    return Order.objects.select_related("product").get(pk=locked.pk)


SHOPPER_BATCH = 1000


def create_shoppers(*, count: int, prefix: str = "shopper", password: str = "loadtest-pass",
                    on_progress=None) -> list[tuple[str, str]]:
    """Bulk-create `count` load-test shoppers with API tokens; return `(username, token)` pairs.

    Usernames are PREFIX-00001…; existing ones are kept and get a token if they lack one.
    Their password uses the fast load-test hasher (production settings refuse it), hashed
    once for all since they share it. `on_progress(done, count)` is called per batch.
    """
    width = max(5, len(str(count)))
    usernames = [f"{prefix}-{n:0{width}d}" for n in range(1, count + 1)]
    hashed = make_password(password, hasher="loadtest_md5")
    User = get_user_model()
    pairs: list[tuple[str, str]] = []
    for offset in range(0, count, SHOPPER_BATCH):
        batch = usernames[offset: offset + SHOPPER_BATCH]
        with transaction.atomic():
            User.objects.bulk_create([User(username=name, password=hashed) for name in batch], ignore_conflicts=True)
            users = dict(User.objects.filter(username__in=batch).values_list("username", "id"))
            have = dict(Token.objects.filter(user_id__in=users.values()).values_list("user_id", "key"))
            new_tokens = [Token(key=Token.generate_key(), user_id=uid) for uid in users.values() if uid not in have]
            Token.objects.bulk_create(new_tokens)
            have.update({token.user_id: token.key for token in new_tokens})
        pairs.extend((name, have[users[name]]) for name in batch)
        if on_progress is not None:
            on_progress(len(pairs), count)
    return pairs
