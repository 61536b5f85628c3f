"""Encrypted groups are pairwise fan-out (one Double Ratchet envelope per member device); a
membership change re-keys by construction: the sender's next message, refused by the server
(409 ``device_mismatch``, ``extra``/``missing``) until its envelopes match the new member list,
carries no envelope for a removed member and one for an added member. On both engines,
through ``tau.client`` against ``twistd -n tau``.
"""

from __future__ import annotations

import asyncio
import base64
import json

import pytest

from tau.client import Client
from tests.support.daemon import TauDaemon
from tests.support.databases import daemon_database_url, engines

pytestmark = pytest.mark.e2e
PASSWORD = "secret-Pa55"
USERS = ("ana", "ben", "cai", "dov")


@pytest.fixture(scope="module", params=engines())
def daemon(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(f"chat-group-{request.param}")
    url = daemon_database_url(request)
    d = TauDaemon(folder, database_url=url, listeners=("http",)).init()
    for user in USERS:
        d.add_user(f"{user}@example.test", PASSWORD)
    d.start()
    yield d
    d.stop()


def _addr(user: str) -> str:
    return f"{user}@example.test"


async def _quiet(client: Client, seconds: float = 2.0) -> list:
    got = []
    try:
        while True:
            got.append(await client.next_message(seconds))
    except TimeoutError:
        return got


def test_a_removed_member_gets_no_envelope_and_an_added_one_does(daemon):
    async def scenario():
        ana, ben, cai, dov = [await Client.login(daemon.url, _addr(u), PASSWORD) for u in USERS]
        conv = await asyncio.to_thread(ana.rest.create_conversation, [_addr("ben"), _addr("cai")], "team")
        for c in (ben, cai, dov):
            await c.connect()
        await ana.send("all three", conversation=conv["id"])
        assert (await ben.next_message(10)).text == "all three"
        assert (await cai.next_message(10)).text == "all three"
        posted: list[dict] = []
        post = ana.rest.post_message
        ana.rest.post_message = lambda body: posted.append(body) or post(body)  # observe what leaves ana
        await asyncio.to_thread(ana.rest.call, "PATCH", f"/api/conversations/{conv['id']}",
                                {"remove": [_addr("cai")], "add": [_addr("dov")]})
        await ana.send("without cai", conversation=conv["id"])
        accepted = posted[-1]["envelopes"]
        assert {e["user"] for e in accepted} == {_addr("ben"), _addr("dov")}  # cai: no envelope, no key
        assert len(posted) > 1  # the first try, encrypted for the old member list, was refused
        for env in accepted:  # nothing in any envelope is readable as the message
            assert b"without cai" not in base64.b64decode(env["ciphertext"])
            assert "without cai" not in json.dumps(env)
        assert (await ben.next_message(10)).text == "without cai"
        assert (await dov.next_message(10)).text == "without cai"
        assert [m.text for m in await _quiet(cai)] == []
        for c in (ben, cai, dov):
            await c.disconnect()

    asyncio.run(asyncio.wait_for(scenario(), 90))
