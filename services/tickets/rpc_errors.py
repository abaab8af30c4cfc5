"""The tickets service's RPC errors (``shared.contract``, where callers find them too),
as its RPC methods declare them."""

from shared.contract import TICKETS_ERRORS as EXPECTED

__all__ = ["EXPECTED"]
