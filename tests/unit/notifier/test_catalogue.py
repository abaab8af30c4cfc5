"""The emails' texts live in the one gettext catalogue of shared/locale: every French
text the notifier can say has its English translation there, and English emails come
out in English."""

from __future__ import annotations

from babel.messages.pofile import read_po

from services.notifier import mail, texts
from shared.i18n import LOCALE_DIR, gettext


def _english() -> dict[str, str]:
    with (LOCALE_DIR / "en" / "LC_MESSAGES" / "messages.po").open("rb") as po:
        return {m.id: m.string for m in read_po(po, locale="en") if m.id}


def test_every_text_of_the_notifier_is_translated() -> None:
    english = _english()
    french = [t for triple in texts._TEXTS.values() for t in triple]
    french += [label for _, label, _ in texts._QUOTES.values()]
    french += list(mail.WORDS.values()) + ["le service", "un fichier", "Réponse"]
    missing = [t for t in french if not english.get(t)]
    assert not missing, missing


def test_english_and_french_come_from_the_catalogue() -> None:
    assert gettext("en", "Demande enregistrée") == "Request registered"
    assert gettext("fr", "Demande enregistrée") == "Demande enregistrée"
    assert gettext("de", "Demande enregistrée") == "Demande enregistrée"  # French for any other language
    assert mail.words_in("en")["approve"] == "Approve the closure"
    assert mail.words_in("fr")["approve"] == "Approuver la clôture"
