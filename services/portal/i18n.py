"""The portal's texts: French msgids in the one catalogue of ``shared/locale`` (the
emails' texts are there too), through ``shared.i18n``."""

from __future__ import annotations

from werkzeug.wrappers import Request

from shared.i18n import LANGUAGES, LOCALE_DIR, N_, load_translations

__all__ = ["LANGUAGES", "LOCALE_DIR", "N_", "choose_language", "load_translations"]


def choose_language(preferred: str | None, request: Request) -> str:
    """The person's preference, else the browser's ``Accept-Language``, else French."""
    if preferred in LANGUAGES:
        return preferred
    return request.accept_languages.best_match(LANGUAGES, default="fr") or "fr"
