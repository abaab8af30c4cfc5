"""The safe formatting subset of descriptions and comments (services.portal.richtext)."""

from services.portal.richtext import render


def test_bold_italic_lists_and_links():
    html = str(render("**gras** et *italique*\n- un\n- deux\n\n1. a\n2. b\n[doc](https://ent.univ.example/aide)"))
    assert "<strong>gras</strong>" in html and "<em>italique</em>" in html
    assert "<ul><li>un</li><li>deux</li></ul>" in html
    assert "<ol><li>a</li><li>b</li></ol>" in html
    assert '<a href="https://ent.univ.example/aide" rel="noopener noreferrer nofollow">doc</a>' in html


def test_bare_addresses_become_links_without_the_final_punctuation():
    html = str(render("voir https://univ.example/page?a=1&b=2."))
    assert '<a href="https://univ.example/page?a=1&amp;b=2"' in html
    assert html.endswith("</a>.</p>")


def test_html_shows_as_text_and_never_runs():
    html = str(render('<script>alert(1)</script> <img src=x onerror="alert(2)"> <a href="javascript:x">y</a>'))
    assert "<script" not in html and "<img" not in html and "<a href" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=" in html


def test_only_web_and_mail_links():
    assert "<a" not in str(render("[x](javascript:alert(1))"))
    assert "<a" not in str(render("[x](data:text/html,hi)"))
    assert 'href="mailto:aide@univ.example"' in str(render("[écrire](mailto:aide@univ.example)"))


def test_empty_and_line_breaks():
    assert str(render(None)) == "" and str(render("")) == ""
    assert str(render("ligne 1\r\nligne 2")) == "<p>ligne 1<br>ligne 2</p>"
