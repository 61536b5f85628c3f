"""Issue 13 item 8: a message's raw source (``GET /api/emails/{id}?raw=1``) is user content —
anyone on the Internet chooses those bytes — so it is an inert attachment, never a page."""

from __future__ import annotations

import pytest

from tests.support.mail_api import BOB, mail_world


@pytest.fixture
def mail(tmp_path, db_url):
    yield from mail_world(tmp_path, db_url)


def test_raw_message_is_an_attachment_with_nosniff_and_sandbox(mail):
    mail.send(to=[BOB], subject="<script>", html="<html><body><script>alert(document.domain)</script></body></html>",
              text="<script>alert(1)</script>")
    [item] = mail.items(BOB)
    token = mail.registry.tokens.issue(BOB, scope="mail")
    r = mail.client.get(f"/api/emails/{item['id']}?raw=1&access_token={token}")
    assert r.status == 200 and b"<script>" in r.body
    assert r.header("content-type") == "message/rfc822"
    assert r.header("content-disposition") == (f'attachment; filename="{item["id"]}.eml"; '
                                               f"filename*=UTF-8''{item['id']}.eml")
    assert r.header("x-content-type-options") == "nosniff"
    assert r.header("content-security-policy") == "default-src 'none'; sandbox"
