"""The attachments service's RPC errors: they live in ``shared.contract`` (the tickets
service catches them), registered there so callers get them back as themselves."""

from shared.contract import ATTACHMENTS_ERRORS as EXPECTED
from shared.contract import AttachmentInUse, UnknownAttachment

__all__ = ["EXPECTED", "AttachmentInUse", "UnknownAttachment"]
