"""Inputs found while fuzzing the DAV XML request parsers (tests/fuzz/fuzz_dav_xml.py): each goes
through the real HTTP site and must get a DAV error, never a 500."""

from __future__ import annotations

import pytest

NS = 'xmlns:D="DAV:" xmlns:x="urn:x"'


def nested(depth: int, text: str = "v") -> str:
    return "<x:a>" * depth + text + "</x:a>" * depth


def proppatch(inner: str) -> str:
    return (f"<D:propertyupdate {NS}><D:set><D:prop><x:deep>{inner}</x:deep></D:prop></D:set>"
            "</D:propertyupdate>")


DEEP_BODIES = {
    "PROPPATCH": proppatch(nested(5000)),
    "LOCK": (f"<D:lockinfo {NS}><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype>"
             f"<D:owner>{nested(5000)}</D:owner></D:lockinfo>"),
    "PROPFIND": f"<D:propfind {NS}><D:prop>{nested(5000)}</D:prop></D:propfind>",
}


@pytest.mark.parametrize("method", sorted(DEEP_BODIES))
def test_deeply_nested_xml_body_is_400_not_500(cloud, method) -> None:
    """A dead property value or lock owner nested 5,000 deep made ElementTree's recursive
    serialiser raise RecursionError: 500. Now: 400 before anything is stored."""
    assert cloud.dav("PUT", "f.txt", b"hello").status == 201
    r = cloud.dav(method, "f.txt", DEEP_BODIES[method], headers={"Depth": "0", "Content-Type": "application/xml"})
    assert r.status == 400, (r.status, r.body[:300])
    assert b"nested deeper than" in r.body
    assert cloud.dav("PUT", "f.txt", b"again").status == 204  # no lock was left behind
    r = cloud.dav("PROPFIND", "f.txt", f"<D:propfind {NS}><D:prop><x:deep/></D:prop></D:propfind>",
                  headers={"Depth": "0"})
    assert r.status == 207 and b"404" in r.body  # nothing was stored either


def test_moderately_nested_dead_property_still_round_trips(cloud) -> None:
    assert cloud.dav("PUT", "f.txt", b"hello").status == 201
    r = cloud.dav("PROPPATCH", "f.txt", proppatch(nested(50, "deep-value")))
    assert r.status == 207 and b"200 OK" in r.body, r.body
    r = cloud.dav("PROPFIND", "f.txt", f"<D:propfind {NS}><D:prop><x:deep/></D:prop></D:propfind>",
                  headers={"Depth": "0"})
    assert r.status == 207 and r.body.count(b"<x:a") + r.body.count(b":a>") >= 50 and b"deep-value" in r.body, r.body


def test_deeply_nested_calendar_property_is_400_not_500(cal_env) -> None:
    r = cal_env.dav("PROPPATCH", "calendar/", proppatch(nested(5000)), headers={"Content-Type": "application/xml"})
    assert r.status == 400, (r.status, r.body[:300])


@pytest.fixture
def cal_env(tmp_path, db_url):
    from tests.support.calendars import make_cal

    c = make_cal(tmp_path / "cal", db_url)
    yield c
    c.registry.db.close()
