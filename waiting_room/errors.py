"""Why a shopper cannot join the line or buy through it, in the contract's codes."""

from flashsale.error_codes import ErrorCode
from flashsale.errors import DomainError, NotFound


class AdmissionRequired(DomainError):
    code = ErrorCode.ADMISSION_REQUIRED
    default_detail = "This sale has a waiting room: join the line and buy once you are admitted."


class AdmissionInvalid(DomainError):
    code = ErrorCode.ADMISSION_INVALID
    default_detail = "This admission pass is not valid for you and this product (or it has expired)."


class WaitingRoomOff(DomainError):
    code = ErrorCode.WAITING_ROOM_OFF
    default_detail = "This sale has no waiting room: buy directly."


class NoTicket(NotFound):
    """Polling a line the shopper never joined."""

    default_detail = "You are not in this line."
