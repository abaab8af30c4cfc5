"""The attachments service's RPC errors, registered so that callers (the tickets
service) get them back as themselves rather than as a RemoteError. Their ``args`` are
their constructor's, so Nameko can rebuild them on the other side."""

from __future__ import annotations

from nameko.exceptions import deserialize_to_instance


class UnknownAttachment(Exception):
    """No such upload for this caller: unknown, someone else's, removed or expired (they
    look the same, so ids cannot be probed)."""

    def __init__(self, attachment_id: str) -> None:
        super().__init__(attachment_id)
        self.attachment_id = attachment_id

    def __str__(self) -> str:
        return f"unknown attachment {self.attachment_id!r}"


class AttachmentInUse(Exception):
    """The upload is already attached to (or being attached to) another ticket.

    ``stale``: the other ticket's claim is pending and past its lease, so the caller may
    take it over once it has checked the file is not on that ticket.
    """

    def __init__(self, attachment_id: str, ticket_id: str, stale: bool = False) -> None:
        super().__init__(attachment_id, ticket_id, stale)
        self.attachment_id = attachment_id
        self.ticket_id = ticket_id
        self.stale = stale

    def __str__(self) -> str:
        return f"attachment {self.attachment_id!r} is already attached to another ticket"


EXPECTED = (UnknownAttachment, AttachmentInUse)

for _error in EXPECTED:
    deserialize_to_instance(_error)
