"""The purchase path's question: may this shopper buy this waiting-room product now?

Called by `orders.services.purchase` after "product exists" and before the sale window, as
the contract orders the checks, and before the purchase takes any row lock. A valid pass
costs one HMAC and no round trip. Only a purchase that would be refused asks Redis whether
the line is there at all: when it is not, the waiting room fails open (no pass needed,
and none is checked), and every other check still runs under the row lock, so a pass
never lifts `max_per_user` or the stock.
"""

from datetime import datetime

from django.utils import timezone

from waiting_room import line
from waiting_room.errors import AdmissionInvalid, AdmissionRequired
from waiting_room.passes import pass_is_valid, to_ms


def check_admission(*, waiting_room: bool, product_id: int, user_id: int, admission_pass: str | None,
                    now: datetime | None = None) -> None:
    """Raise AdmissionRequired / AdmissionInvalid unless the purchase may go on."""
    if not waiting_room:
        return
    if admission_pass and pass_is_valid(admission_pass, shopper_id=user_id, product_id=product_id,
                                        now_ms=to_ms(now or timezone.now())):
        return
    if not line.reachable():
        return  # fail open, like the rate limits: the database still guards stock and limits
    raise AdmissionInvalid() if admission_pass else AdmissionRequired()
