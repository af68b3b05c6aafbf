"""Writes about orders: the purchase (the shop's one critical section) and the cancel."""

import hashlib
from dataclasses import dataclass
from datetime import datetime

from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone

from flashsale.db import locked_transaction
from flashsale.errors import DomainError, InvalidInput
from flashsale.ratelimits import PendingLimits, count_limits
from flashsale.serializers import MAX_ID
from orders import lock_objects as order_locks
from orders.errors import (
    AlreadyCancelled,
    IdempotencyKeyInUse,
    IdempotencyKeyReused,
    PurchaseLimitReached,
)
from orders.group_commit import Buyer, Gathering, buy_in_group
from orders.models import MAX_QUANTITY, Order, OrderStatus
from orders.selectors import order_for_key, orders_for_keys, purchase_snapshot, sold_out_snapshot, units_held_by
from products import lock_objects as product_locks
from products import sold_out
from products.errors import (
    InsufficientStock,
    ProductNotFound,
    SaleEnded,
    SaleNotStarted,
    SoldOut,
)
from products.models import Product, SaleStatus, window_status
from waiting_room.admission import check_admission

MAX_IDEMPOTENCY_KEY_LENGTH = 255


@dataclass(frozen=True)
class PurchaseResult:
    order: Order
    created: bool  # False when an Idempotency-Key retry returned the order made earlier


def purchase(*, user, product_id: int, quantity: int = 1, idempotency_key: str | None = None,
             admission_pass: str | None = None, limits: PendingLimits | None = None) -> PurchaseResult:
    """Buy `quantity` units of a product for `user`: the only way an order is made.

    Checks run in the contract's order (input, product, admission, window, per-shopper
    limit, stock); `admission_pass` is the waiting room's pass (section 8). An unlocked
    read (or the sold-out mark, which needs no read) turns
    most losers away first so they never queue on the row lock; the winners then repeat
    every check under the lock, where the answer is authoritative. Concurrent buyers of
    one product in this process are applied together (see `orders.group_commit`).

    `limits` are the request's rate limits if the caller has not counted them
    (flashsale.ratelimits.purchase_limits): they come first in the contract's order, so a
    purchase they refuse gets that 429 whatever else would have been said. A buyer who
    reaches a group has them counted with other buyers', many in one Redis round trip,
    before the group takes the row lock (`_count_rate_limits`); any other answer counts
    them on its own first. Nothing before that count has a
    side effect or asks a server: the pre-check counts them before it reads the database
    or asks the waiting room's line (so a refused flood still costs the database nothing),
    and an Idempotency-Key purchase (whose replay or claim would be one) has them counted
    before anything else.
    """
    if limits is not None and idempotency_key is not None:
        limits.count()
        limits = None
    try:
        _validate_purchase_input(product_id, quantity, idempotency_key)
        if idempotency_key is None:
            unsure = _reject_early(user_id=user.pk, product_id=product_id, quantity=quantity,
                                   admission_pass=admission_pass, limits=limits)
            buyer = Buyer(user_id=user.pk, quantity=quantity, admission_pass=admission_pass,
                          recheck_admission=unsure, limits=limits)
            # Only a buyer with limits to count prepares the others: with limits off nothing extra runs.
            return buy_in_group(product_id, buyer, _buy_group, _count_rate_limits if limits is not None else None)
        return _purchase_once(user, product_id, quantity, idempotency_key, admission_pass)
    except Exception:
        if limits is not None:
            limits.count()  # a no-op if the group counted them; raises their refusal if any
        raise


def _purchase_once(user, product_id: int, quantity: int, key: str, admission_pass: str | None) -> PurchaseResult:
    """An Idempotency-Key purchase: at most one order per (shopper, key), retries see it again.

    A committed order for the key is final, so it is replayed without a claim. Anything
    else is answered only while holding the key's claim: refusals from the pre-check in
    a short transaction of their own, purchases inside their group's transaction.
    """
    request_hash = hashlib.sha256(f"{product_id}:{quantity}".encode()).hexdigest()
    earlier = order_for_key(user_id=user.pk, idempotency_key=key)
    if earlier is not None:
        return _replay(earlier, request_hash)
    try:
        unsure = _reject_early(user_id=user.pk, product_id=product_id, quantity=quantity,
                               admission_pass=admission_pass)
    except DomainError as refusal:
        with transaction.atomic():
            if not _claim_idempotency_keys([(user.pk, key)])[0]:
                raise IdempotencyKeyInUse() from None
            earlier = order_for_key(user_id=user.pk, idempotency_key=key)
        if earlier is not None:
            return _replay(earlier, request_hash)
        raise refusal
    buyer = Buyer(user_id=user.pk, quantity=quantity, key=key, request_hash=request_hash,
                  admission_pass=admission_pass, recheck_admission=unsure)
    return buy_in_group(product_id, buyer, _buy_group)  # its limits were counted first


def _claim_idempotency_keys(pairs: list[tuple[int, str]]) -> list[bool]:
    """Claim (shopper, key) pairs in one statement; True where this transaction now holds it.

    A transaction-scoped advisory lock marks the key "in flight" until this commits, also
    against other processes. The same session may take one twice, so a group must not
    hand the same pair here twice (`_buy_group_locked` turns duplicates away first).
    """
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_try_advisory_xact_lock(hashtextextended(k, 0)) "
            "FROM unnest(%s::text[]) WITH ORDINALITY AS claims(k, n) ORDER BY n",
            [[f"order-key:{user_id}:{key}" for user_id, key in pairs]],
        )
        return [claimed for (claimed,) in cursor.fetchall()]


def _replay(order: Order, request_hash: str) -> PurchaseResult:
    if order.request_hash != request_hash:
        raise IdempotencyKeyReused()
    return PurchaseResult(order, created=False)


def _buy_group(product_id: int, gathering: Gathering) -> None:
    """Count the lined-up buyers' rate limits, lock the product, take the group lined up
    meanwhile, apply it in one transaction, answer each buyer (`group_commit`'s `apply`).

    An IntegrityError rolls the whole group back; then each buyer is applied alone, so no
    one gains or loses an order it was not told about. Any other failure (a lock timeout
    as `Busy`, a lost database) propagates: nothing is committed and all get it.
    """
    _count_rate_limits(gathering.lined_up())
    if gathering.leader.limits is not None:
        # A leader handed the lead while a queued buyer's count of its limits was out: the
        # group's `admit` does not apply to it, so its answer is awaited here, before the lock.
        gathering.leader.limits.wait_settled()
    buyers: list[Buyer] = []
    try:
        with locked_transaction():
            product = product_locks.product_for_purchase(product_id)
            buyers = gathering.take(admit=_limits_settled)
            outcomes = _buy_group_locked(product, buyers)
    except IntegrityError:
        if len(buyers) > 1:
            for buyer in buyers:
                try:
                    _buy_group(product_id, Gathering.of([buyer]))
                except Exception as failure:
                    buyer.refuse(failure)
            return
        (buyer,) = buyers
        # Belt and braces behind the key's claim: the unique (user, key) constraint won.
        earlier = order_for_key(user_id=buyer.user_id, idempotency_key=buyer.key) if buyer.key else None
        if earlier is None:
            raise
        outcomes = [_replay_or_refusal(earlier, buyer.request_hash)]
    for buyer, outcome in zip(buyers, outcomes, strict=True):
        if isinstance(outcome, DomainError):
            buyer.refuse(outcome)
        else:
            buyer.answer(outcome)


def _count_rate_limits(buyers: list[Buyer]) -> bool:
    """The buyers' rate limits still to be counted, in one Redis round trip (see `purchase`);
    False if there were none.

    Never under the row lock: a slow Redis then delays the buyers it counts instead of every
    buyer of the product, in every process, queued on the lock behind the one holding it.
    The leader counts those lined up before it takes the lock. It is also group_commit's
    `prepare`: while the leader waits for the lock, one queued buyer at a time counts the
    limits of everyone queued, so that those who line up during the lock wait are counted,
    and may join the group, by the time the lock comes.
    """
    pending = [buyer.limits for buyer in buyers if buyer.limits is not None and not buyer.limits.counted]
    if pending:
        count_limits(pending)
    return bool(pending)


def _limits_settled(buyer: Buyer) -> bool:
    """Whether a buyer who lined up while the leader waited for the lock may join its group:
    only if its count's answer is in (counting it now would be a Redis round trip under the
    row lock). The first who is not, and those behind it, wait for the next group."""
    return buyer.limits is None or buyer.limits.settled


def _replay_or_refusal(order: Order, request_hash: str) -> "PurchaseResult | DomainError":
    try:
        return _replay(order, request_hash)
    except DomainError as refusal:
        return refusal


def _buy_group_locked(product: Product, buyers: list[Buyer]) -> list:
    """The critical section for a group, under the product's row lock: claim the keys,
    check each buyer in order, one update, one insert. Nothing else happens here.

    Returns each buyer's outcome (a PurchaseResult or the DomainError it is refused with),
    valid only once the transaction commits.
    """
    outcomes: list = [buyer.limits.refusal if buyer.limits is not None else None for buyer in buyers]
    if any(buyer.key is not None for buyer in buyers):
        _settle_keys(buyers, outcomes)
    if product.waiting_room:
        _recheck_admission(product, buyers, outcomes)
    pending = [i for i, outcome in enumerate(outcomes) if outcome is None]
    if not pending:
        return outcomes
    # Only limited products pay for this read; it is a statement of its own, after the
    # lock, so that it sees what the previous lock holder committed (see lock_objects).
    held = (
        units_held_by(product_id=product.pk, user_ids={buyers[i].user_id for i in pending})
        if product.max_per_user is not None else {}
    )
    decisions = decide_group(
        stock=product.stock, max_per_user=product.max_per_user, starts_at=product.sale_starts_at,
        ends_at=product.sale_ends_at, units_held=held,
        requests=[(buyers[i].user_id, buyers[i].quantity) for i in pending], now=timezone.now(),
    )
    new_orders = []
    for i, decision in zip(pending, decisions, strict=True):
        if isinstance(decision, DomainError):
            outcomes[i] = decision
            continue
        buyer = buyers[i]
        new_orders.append(Order(
            user_id=buyer.user_id, product=product, quantity=buyer.quantity, unit_price=product.price,
            remaining_stock=decision, idempotency_key=buyer.key, request_hash=buyer.request_hash,
        ))
        outcomes[i] = PurchaseResult(new_orders[-1], created=True)
    if new_orders:
        sold = sum(order.quantity for order in new_orders)
        Product.objects.filter(pk=product.pk).update(stock=F("stock") - sold)
        Order.objects.bulk_create(new_orders)
        if product.stock == sold:
            sold_out.mark_sold_out_on_commit(product.pk, sold_out_snapshot(product))
    return outcomes


def _recheck_admission(product: Product, buyers: list[Buyer], outcomes: list) -> None:
    """The waiting room was switched on after an on-sale note let these buyers past the pre-check.

    Rare (an edit during the note's last half second, seen by another process), so the cost
    of asking the line under the lock is accepted; the answer is the pre-check's.
    """
    for i, buyer in enumerate(buyers):
        if outcomes[i] is None and buyer.recheck_admission:
            try:
                check_admission(waiting_room=True, product_id=product.pk, user_id=buyer.user_id,
                                admission_pass=buyer.admission_pass)
            except DomainError as refusal:
                outcomes[i] = refusal


def _settle_keys(buyers: list[Buyer], outcomes: list) -> None:
    """Claim the group's keys in one statement; answer duplicates, keys in flight and replays."""
    first_with = {}
    for i, buyer in enumerate(buyers):
        if buyer.key is None:
            continue
        pair = (buyer.user_id, buyer.key)
        if pair in first_with:
            outcomes[i] = IdempotencyKeyInUse()  # its twin, earlier in this group, is in flight
        else:
            first_with[pair] = i
    claimed = _claim_idempotency_keys(list(first_with))
    for (pair, i), won in zip(list(first_with.items()), claimed, strict=True):
        if not won:
            outcomes[i] = IdempotencyKeyInUse()
            del first_with[pair]
    if not first_with:
        return
    earlier = orders_for_keys(pairs=list(first_with))
    for pair, i in first_with.items():
        if pair in earlier:
            outcomes[i] = _replay_or_refusal(earlier[pair], buyers[i].request_hash)


def decide_group(
    *, stock: int, max_per_user: int | None, starts_at: datetime | None, ends_at: datetime | None,
    units_held: dict[int, int], requests: list[tuple[int, int]], now: datetime,
) -> list:
    """Each (shopper, quantity) in arrival order, exactly as one-by-one purchases would go.

    For each request: the product's stock after it (an int) if it is sold, else the
    DomainError it is refused with. Earlier requests of the group count: a shopper's
    second request sees the first's units held and the stock it left.
    """
    held = dict(units_held)
    decisions: list = []
    for user_id, quantity in requests:
        try:
            _ensure_purchasable(
                stock=stock, max_per_user=max_per_user, starts_at=starts_at, ends_at=ends_at,
                units_held=held.get(user_id, 0), quantity=quantity, now=now,
            )
        except DomainError as refusal:
            decisions.append(refusal)
            continue
        stock -= quantity
        held[user_id] = held.get(user_id, 0) + quantity
        decisions.append(stock)
    return decisions


def _reject_early(*, user_id: int, product_id: int, quantity: int, admission_pass: str | None = None,
                  limits: PendingLimits | None = None) -> bool:
    """The unlocked pre-check: the sold-out mark if there is one, else the on-sale note, else one read.

    By the on-sale note (products.sold_out) only admission and the window are checked here;
    the group decides the rest under the lock. A buyer the note lets through loses nothing
    but the chance of an early refusal. Returns True when the note said "no waiting room":
    that may be up to the note's life old, so the group re-checks admission on the locked row.
    `limits` not yet counted are counted before the database is read or the line is asked.
    """
    renewing = sold_out.claim_refresh(product_id)  # one caller renews an entry about to end
    try:
        facts = None if renewing else sold_out.sold_out_facts(product_id)
        noted = None if renewing or facts is not None else sold_out.on_sale_facts(product_id)
        if facts is None and noted is None and not renewing:
            sold_out.await_read_in_flight(product_id)  # a crowd's first buyers share one read
            facts = sold_out.sold_out_facts(product_id)
            noted = None if facts is not None else sold_out.on_sale_facts(product_id)
        if facts is None:
            if noted is not None:
                if noted["waiting_room"]:
                    _count_first(limits)
                check_admission(waiting_room=noted["waiting_room"], product_id=product_id, user_id=user_id,
                                admission_pass=admission_pass)
                _ensure_in_window(starts_at=noted["sale_starts_at"], ends_at=noted["sale_ends_at"],
                                  now=timezone.now())
                return not noted["waiting_room"]
            _count_first(limits)
            seen = sold_out.generation()
            with sold_out.reading(product_id):
                facts = purchase_snapshot(product_id=product_id, user_id=user_id)
                if facts is None:
                    raise ProductNotFound()
                sold_out.remember(product_id, facts, seen_generation=seen)
    finally:
        if renewing:
            sold_out.release_refresh(product_id)
    if facts["waiting_room"]:
        _count_first(limits)
    _check_facts(facts, user_id=user_id, product_id=product_id, quantity=quantity, admission_pass=admission_pass)
    return False


def _count_first(limits: PendingLimits | None) -> None:
    """Count a purchase's limits before the pre-check asks a server (raises their refusal)."""
    if limits is not None:
        limits.count()


def may_know_refusal(product_id: int) -> bool:
    """Whether `known_refusal` could refuse a purchase of this product now (a settled mark is
    there): a dict lookup, so that a request it will not refuse pays nothing more."""
    return sold_out.settled_sold_out_facts(product_id) is not None


def known_refusal(*, product_id: int, quantity: int) -> DomainError | None:
    """The refusal the pre-check would give from the sold-out mark alone, or None.

    For answers made before the purchase itself is reached (flashsale.early_refusals): no
    database, no waiting, no side effect. None means "only `purchase` can say": no fresh
    mark (or one due for renewal, which the usual way renews), or a waiting room (its pass
    is checked before the window and stock). What it
    returns is what `_reject_early` raises from the same mark (a per-shopper limit never
    has one), the checks in the contract's order.
    """
    facts = sold_out.settled_sold_out_facts(product_id)
    if facts is None or facts["waiting_room"]:
        return None
    try:
        _check_facts(facts, user_id=0, product_id=product_id, quantity=quantity, admission_pass=None)
    except DomainError as refusal:
        return refusal
    return None


def _check_facts(facts: dict, *, user_id: int, product_id: int, quantity: int, admission_pass: str | None) -> None:
    """The pre-check's checks on what it read (or remembered): admission, window, limit, stock."""
    # Waiting room (section 8): after "product exists", before the window, never under the row lock.
    check_admission(waiting_room=facts["waiting_room"], product_id=product_id, user_id=user_id,
                    admission_pass=admission_pass)
    _ensure_purchasable(
        stock=facts["stock"],
        max_per_user=facts["max_per_user"],
        starts_at=facts["sale_starts_at"],
        ends_at=facts["sale_ends_at"],
        units_held=facts["units_held"],
        quantity=quantity,
        now=timezone.now(),
    )


def _ensure_in_window(*, starts_at: datetime | None, ends_at: datetime | None, now: datetime) -> None:
    window = window_status(starts_at=starts_at, ends_at=ends_at, now=now)
    if window == SaleStatus.UPCOMING:
        raise SaleNotStarted()
    if window == SaleStatus.ENDED:
        raise SaleEnded()


def _ensure_purchasable(
    *, stock: int, max_per_user: int | None, starts_at: datetime | None, ends_at: datetime | None,
    units_held: int, quantity: int, now: datetime,
) -> None:
    _ensure_in_window(starts_at=starts_at, ends_at=ends_at, now=now)
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
    with locked_transaction():
        product_locks.product_for_update(order.product_id)  # product first, as everywhere
        locked = order_locks.order_for_update(order.pk)
        if locked.status == OrderStatus.CANCELLED:
            raise AlreadyCancelled()
        locked.status = OrderStatus.CANCELLED
        locked.cancelled_at = timezone.now()
        locked.save(update_fields=["status", "cancelled_at"])
        Product.objects.filter(pk=locked.product_id).update(stock=F("stock") + locked.quantity)
        sold_out.clear_sold_out_on_commit(locked.product_id)
    return Order.objects.select_related("product").get(pk=locked.pk)

