"""French first, English second: gettext catalogues (Babel) under ``locale/``.

The source texts are French (the msgids); ``locale/en`` translates them. The ``.po``
files are compiled in memory when the portal starts, so a fresh clone needs no build
step. Regenerate the catalogues after changing texts with::

    .venv/bin/pybabel extract -F services/portal/babel.cfg -o /tmp/portal.pot services/portal
    .venv/bin/pybabel update -i /tmp/portal.pot -d services/portal/locale
"""

from __future__ import annotations

import io
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations
from werkzeug.wrappers import Request

LANGUAGES = ("fr", "en")
LOCALE_DIR = Path(__file__).resolve().parent / "locale"


def N_(text: str) -> str:  # noqa: N802 - the gettext convention
    """Marks a text for extraction; translated where it is shown."""
    return text


def load_translations(locale_dir: Path = LOCALE_DIR) -> dict[str, Translations]:
    """One ``Translations`` per language, compiled from its ``messages.po``."""
    found = {}
    for language in LANGUAGES:
        path = locale_dir / language / "LC_MESSAGES" / "messages.po"
        with path.open("rb") as po:
            catalog = read_po(po, locale=language)
        buffer = io.BytesIO()
        write_mo(buffer, catalog)
        buffer.seek(0)
        found[language] = Translations(buffer)
    return found


def choose_language(preferred: str | None, request: Request) -> str:
    """The person's preference, else the browser's ``Accept-Language``, else French."""
    if preferred in LANGUAGES:
        return preferred
    return request.accept_languages.best_match(LANGUAGES, default="fr") or "fr"
