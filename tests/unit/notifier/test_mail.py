"""Emails as the notifier renders them: valid MIME, one thread per ticket, the right
links, user text escaped in HTML, French by default and English on request."""

import email as email_lib
import re
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.header import decode_header, make_header

import pytest

from services.notifier.mail import InvalidAddress, MailRenderer, message_id_for, thread_root_id
from services.notifier.recipients import Person, Recipient, TicketPicture
from services.notifier.texts import Labels, describe

TICKET = "0b6f1c1e-8d2a-4c55-9a37-5f1d2e3c4b5a"
EVENT = "5a3c7a0e-7e43-4b9e-8f69-3f0c2a1d9b11"
NASTY = '<script>alert("x")</script> & <b>gras</b>\nligne 2'
ALICE = Person("alice", "Alice Martin", "alice@univ.example")
MARC = Person("marc", "Marc Leroy", "marc@univ.example")
LABELS = Labels({"dnum-ent": ("DNUM - ENT", "IT - ENT")}, {})


def picture(subject="Connexion impossible"):
    return TicketPicture(id=TICKET, number=53350, subject=subject, status="CLOSURE_REQUESTED", requester=ALICE,
                         assignee=MARC, department_id="dnum-ent")


def render(event_type, data, recipient=ALICE, role="requester", language="fr", pic=None, actor=None):
    pic = pic or picture()
    actor = actor or {"id": "marc", "name": "Marc Leroy", "kind": "user"}
    who = Recipient(recipient, role, role != "requester")
    content = describe(event_type, data, actor, pic, who, language, LABELS)
    renderer = MailRenderer("https://guichet.univ.example/")
    email = renderer.render(event_id=EVENT, event_type=event_type, occurred_at=datetime(2025, 3, 4, 10, 0, tzinfo=UTC),
                            ticket=pic, recipient=recipient, content=content, language=language)
    return email, message_from_bytes(email.raw, policy=policy.default)


def parts(message):
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    return text.replace("\r\n", "\n"), html.replace("\r\n", "\n")


def test_the_closure_request_quotes_the_resolution_and_links_to_approve_and_refuse():
    email, message = render("ClosureRequested", {"resolution": NASTY})
    assert message.get_content_type() == "multipart/alternative"
    assert message["Subject"] == "[Ticket n°53350] Connexion impossible — Clôture demandée"
    assert message["To"].addresses[0].addr_spec == "alice@univ.example"
    assert message["Message-ID"] == email.message_id == message_id_for(EVENT, "alice")
    assert message["In-Reply-To"] == message["References"] == thread_root_id(TICKET) == f"<ticket-{TICKET}@guichet>"
    assert message["Auto-Submitted"] == "auto-generated"
    text, html = parts(message)
    base = f"https://guichet.univ.example/tickets/{TICKET}"
    for body in (text, html):
        assert f"{base}/approve-closure" in body and f"{base}/refuse-closure" in body
        assert f'{base}"' in body or f"{base}\n" in body
    assert "> <script>alert(\"x\")</script> & <b>gras</b>\n> ligne 2" in text  # plain text: as written, quoted
    assert "<script>" not in html and "<b>gras</b>" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; &lt;b&gt;gras&lt;/b&gt;" in html


def test_the_information_request_quotes_the_question_and_links_to_answer():
    _, message = render("InformationRequested", {"question": "Quel navigateur ?"})
    text, html = parts(message)
    assert "Question :\n> Quel navigateur ?" in text
    assert f"https://guichet.univ.example/tickets/{TICKET}/answer" in html
    assert message["Subject"].endswith("— Demande d'information")


def test_the_acknowledgement_of_a_new_ticket_is_the_root_of_its_thread():
    _, message = render("TicketSubmitted", {}, actor={"id": "alice", "name": "Alice Martin", "kind": "user"})
    assert message["Message-ID"] == thread_root_id(TICKET)
    assert message["In-Reply-To"] is None and message["References"] is None
    assert "53350" in parts(message)[0]


def test_english_on_request():
    _, message = render("CommentAdded", {"comment_id": "c", "body": "Hello", "visibility": "public"}, language="en")
    text, _ = parts(message)
    assert message["Subject"] == "[Ticket n°53350] Connexion impossible — New comment"
    assert message["Content-Language"] == "en"
    assert text.startswith("Hello Alice Martin,") and "Marc Leroy added a comment." in text


def test_a_subject_cannot_inject_headers_and_long_ones_are_cut():
    _, message = render("CommentAdded", {"comment_id": "c", "body": "b", "visibility": "public"},
                        pic=picture("Aide\r\nBcc: victim@example.org " + "x" * 300))
    assert message["Bcc"] is None
    assert "\n" not in message["Subject"] and len(message["Subject"]) < 220


def test_the_internal_reason_of_an_escalation_is_not_mailed_to_the_requester():
    data = {"department_id": "support-ent", "referent_department_id": "referents-ent:0540001A", "reason": "secret"}
    _, to_requester = render("TicketEscalated", data, actor={"id": "system:escalation", "kind": "system"})
    _, to_manager = render("TicketEscalated", data, recipient=MARC, role="support",
                           actor={"id": "system:escalation", "kind": "system"})
    assert "secret" not in to_requester.as_string()
    assert "secret" in parts(to_manager)[0]


def test_an_unusable_address_is_refused():
    with pytest.raises(InvalidAddress):
        render("CommentAdded", {"comment_id": "c", "body": "b", "visibility": "public"},
               recipient=Person("x", "X", "not an address"))
    with pytest.raises(InvalidAddress):
        render("CommentAdded", {"comment_id": "c", "body": "b", "visibility": "public"}, recipient=Person("x"))


def test_accented_names_and_subjects_are_encoded_words_that_read_back_the_same():
    ines = Person("ines", "Inès Pétit-Œuvre", "ines@univ.example")
    email, message = render("CommentAdded", {"comment_id": "c", "body": "b", "visibility": "public"}, recipient=ines,
                            pic=picture("Accès refusé à l'ENT"))
    head = email.raw.split(b"\r\n\r\n", 1)[0]
    assert head.isascii()  # headers are 7-bit on the wire
    assert message["To"].addresses[0].display_name == "Inès Pétit-Œuvre"
    assert message["To"].addresses[0].addr_spec == "ines@univ.example"
    assert message["Subject"] == "[Ticket n°53350] Accès refusé à l'ENT — Nouveau commentaire"
    assert parts(message)[0].startswith("Bonjour Inès Pétit-Œuvre,")


def test_the_message_is_7bit_quoted_printable_and_reads_back_whole():
    long_line = "é" * 2000
    email, message = render("ClosureRequested", {"resolution": long_line + "\nPilote réinstallé"})
    assert email.raw.isascii() and max(len(line) for line in email.raw.split(b"\r\n")) <= 78
    text, html = parts(message)
    assert long_line in text and long_line in html and "Pilote réinstallé" in text
    plain = message.get_body(("plain",))
    assert (plain["Content-Transfer-Encoding"], plain.get_content_charset()) == ("quoted-printable", "utf-8")


def test_a_long_accented_name_is_split_into_encoded_words_of_at_most_75_characters():
    name = "Marie-Hélène Dupont-Lefèvre de la Fontaine-Château"
    email, message = render("CommentAdded", {"comment_id": "c", "body": "b", "visibility": "public"},
                            recipient=Person("mh", name, "mh@univ.example"))
    head = email.raw.split(b"\r\n\r\n", 1)[0].decode()
    assert all(len(word) <= 75 for word in re.findall(r"=\?utf-8\?[bq]\?[^?]*\?=", head))
    assert max(len(line) for line in head.split("\r\n")) <= 78
    # RFC 2047 decoding (the whitespace between two encoded words is not part of the
    # text); the email package's newer parser keeps a space there, with any encoder.
    raw_to = email_lib.message_from_bytes(email.raw, policy=policy.compat32)["To"]
    assert str(make_header(decode_header(raw_to))) == f"{name} <mh@univ.example>"
    assert message["To"].addresses[0].addr_spec == "mh@univ.example"


def test_a_sender_without_an_address_is_refused_at_start():
    with pytest.raises(ValueError, match="MAIL_FROM"):
        MailRenderer("https://guichet.univ.example/", "Guichet, DNUM <assistance@univ.example>")


def test_a_configured_sender_with_an_accented_name_is_encoded():
    renderer = MailRenderer("https://guichet.univ.example/", "Guichet Université <assistance@univ.example>")
    pic = picture()
    content = describe("CommentAdded", {"comment_id": "c", "body": "b", "visibility": "public"},
                       {"id": "marc", "name": "Marc Leroy", "kind": "user"}, pic, Recipient(ALICE, "requester", False),
                       "fr", LABELS)
    email = renderer.render(event_id=EVENT, event_type="CommentAdded", occurred_at=datetime(2025, 3, 4, 10, 0, tzinfo=UTC),
                            ticket=pic, recipient=ALICE, content=content, language="fr")
    sender = message_from_bytes(email.raw, policy=policy.default)["From"].addresses[0]
    assert (sender.display_name, sender.addr_spec) == ("Guichet Université", "assistance@univ.example")
