"""Admission passes: signed with Django's signing, bound to one shopper and one product, expiring.

A pass is `Signer(salt).sign_object({"s": shopper, "p": product, "e": expiry in ms})`. Every
app instance shares SECRET_KEY, so any instance checks a pass any other issued, without
asking Redis: the purchase path pays one HMAC, not a round trip. The signature is not
timestamped; the expiry is part of the signed payload, so the same admission always gives
the same pass (polling again does not stretch it).

PASS_SECONDS: a pass lasts 5 minutes from the moment its holder first sees the admission.
Long enough to fill in a quantity and press Buy on a slow phone, short enough that a crowd
of admitted-but-idle shoppers cannot pile onto the purchase path long after their turn; it
is also the slack of the fairness figure (nobody served out of ticket order by more than
this).
"""

from datetime import UTC, datetime

from django.core import signing

PASS_SECONDS = 300
_SALT = "waiting_room.admission_pass"
MAX_PASS_LENGTH = 512  # a real pass is about 90 characters; anything longer is not ours


def issue_pass(*, shopper_id: int, product_id: int, expires_ms: int) -> str:
    return signing.Signer(salt=_SALT).sign_object({"s": shopper_id, "p": product_id, "e": expires_ms})


def pass_is_valid(token: str, *, shopper_id: int, product_id: int, now_ms: int) -> bool:
    """True only for an untampered pass of this shopper, for this product, not yet expired."""
    if not isinstance(token, str) or not token or len(token) > MAX_PASS_LENGTH:
        return False
    try:
        payload = signing.Signer(salt=_SALT).unsign_object(token)
    except (signing.BadSignature, ValueError, UnicodeError):
        return False
    return (
        isinstance(payload, dict)
        and payload.get("s") == shopper_id
        and payload.get("p") == product_id
        and isinstance(payload.get("e"), int)
        and now_ms < payload["e"]
    )


def moment(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def to_ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)
