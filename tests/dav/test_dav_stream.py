"""Large GET bodies: read and decrypted ~1 MiB per thread job, handed to the kernel 1 MiB per send."""

from __future__ import annotations

from types import SimpleNamespace

from tau.dav.get import STREAM_SEND_LIMIT, _widen_sends

ALICE = "alice@example.test"


class TcpLike:
    SEND_LIMIT = 128 * 1024  # twisted.internet.abstract.FileDescriptor's


def test_sends_are_widened_while_streaming_then_restored() -> None:
    transport = TcpLike()
    restore = _widen_sends(SimpleNamespace(channel=SimpleNamespace(transport=transport)))
    assert transport.SEND_LIMIT == STREAM_SEND_LIMIT
    restore()
    assert transport.SEND_LIMIT == 128 * 1024 and "SEND_LIMIT" not in vars(transport)


def test_the_tcp_transport_under_the_connection_caps_wrapper_is_widened() -> None:
    """``AppHost`` wraps every listener (tau.app.connlimit): the channel's transport is the wrapper."""
    from twisted.internet.protocol import Protocol
    from twisted.protocols.policies import ProtocolWrapper, WrappingFactory

    tcp = TcpLike()
    wrapper = ProtocolWrapper(WrappingFactory(None), Protocol())
    wrapper.transport = tcp
    restore = _widen_sends(SimpleNamespace(channel=SimpleNamespace(transport=wrapper)))
    assert tcp.SEND_LIMIT == STREAM_SEND_LIMIT
    restore()
    assert tcp.SEND_LIMIT == 128 * 1024


def test_transports_without_a_send_limit_are_left_alone() -> None:
    transport = SimpleNamespace()
    _widen_sends(SimpleNamespace(channel=SimpleNamespace(transport=transport)))()
    assert not hasattr(transport, "SEND_LIMIT")


def test_big_file_round_trip_and_ranges(cloud) -> None:
    data = bytes(range(256)) * (12 * 1024) + b"tail"  # 3 MiB + 4: several read batches
    assert cloud.dav("PUT", "big.bin", data).status == 201
    assert cloud.dav("GET", "big.bin").body == data
    r = cloud.dav("GET", "big.bin", headers={"Range": "bytes=1048570-2097160"})
    assert r.status == 206 and r.body == data[1048570:2097161]
    r = cloud.dav("GET", "big.bin", headers={"Range": "bytes=-3"})
    assert r.status == 206 and r.body == b"ail"
    file_id = cloud.api("GET", "/api/files?path=/").json()["items"][0]["id"]
    assert cloud.api("GET", f"/api/files/{file_id}").body == data
