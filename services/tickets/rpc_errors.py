"""The tickets service's errors, registered so that RPC callers (routing, escalation...)
get them back as themselves rather than as a RemoteError."""

from nameko.exceptions import deserialize_to_instance

from services.tickets import commands as cmd
from services.tickets import domain

EXPECTED = (
    domain.DomainError,
    cmd.TicketNotFound,
    cmd.Conflict,
    cmd.VersionMismatch,
    cmd.IdempotencyKeyReused,
    cmd.UnknownUser,
)

for _error in (
    domain.Forbidden, domain.InvalidTransition, domain.InvalidArgument,
    cmd.TicketNotFound, cmd.Conflict, cmd.VersionMismatch, cmd.IdempotencyKeyReused, cmd.UnknownUser,
):
    deserialize_to_instance(_error)
