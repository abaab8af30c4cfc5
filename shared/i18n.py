"""French first, English second: one gettext catalogue per language for everything
Guichet says to people (the portal's pages and the notifier's emails and feed), under
``shared/locale/<language>/LC_MESSAGES/messages.po``.

The source texts are French (the msgids); ``locale/en`` translates them. The ``.po``
files are compiled in memory at first use, so a fresh clone needs no build step. After
changing texts, regenerate the catalogues with::

    .venv/bin/pybabel extract -F babel.cfg -o /tmp/guichet.pot services shared
    .venv/bin/pybabel update -i /tmp/guichet.pot -d shared/locale
"""

from __future__ import annotations

import functools
import io
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

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


@functools.cache
def _catalogues() -> dict[str, Translations]:
    return load_translations()


def gettext(language: str, text: str) -> str:
    """``text`` (French) in ``language``; French for an unknown language."""
    return _catalogues().get(language if language in LANGUAGES else "fr", _catalogues()["fr"]).gettext(text)
