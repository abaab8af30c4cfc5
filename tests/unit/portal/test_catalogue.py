"""Every text of the portal and the notifier has its English translation in the one
catalogue of shared/locale, and the catalogues compile."""

import subprocess
import sys
from pathlib import Path

from babel.messages.pofile import read_po

from services.portal.i18n import LOCALE_DIR, load_translations

ROOT = Path(__file__).resolve().parents[3]


def test_every_text_is_in_the_english_catalogue(tmp_path):
    pot = tmp_path / "portal.pot"
    subprocess.run([str(Path(sys.executable).parent / "pybabel"), "extract", "-F", str(ROOT / "babel.cfg"), "-k", "N_",
                    "-o", str(pot), "."], check=True, capture_output=True, cwd=ROOT)
    texts = {m.id for m in read_po(pot.open("rb")) if m.id}
    english = read_po((LOCALE_DIR / "en" / "LC_MESSAGES" / "messages.po").open("rb"))
    translated = {m.id for m in english if m.id and (all(m.string) if isinstance(m.string, tuple) else m.string)}
    missing = sorted(str(t) for t in texts - translated)
    assert not missing, f"not translated into English (update shared/locale/en): {missing}"


def test_the_catalogues_compile_and_translate():
    translations = load_translations()
    assert translations["en"].gettext("Mes demandes") == "My requests"
    assert translations["fr"].gettext("Mes demandes") == "Mes demandes"
