"""Framing, literals and hostile input (RFC 3501 §2.2, §4.3, §7.1; RFC 7888 LITERAL+).

Each bad-input case is its own test: the server answers BAD (or NO [TOOBIG]) and the connection
keeps working afterwards.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from tau.mail.imap import protocol
from tests.support.imap import IMAPEnv, message

ALICE = "alice@example.test"


@pytest.fixture
def env(registry):
    e = IMAPEnv(registry)
    e.add_user(ALICE)
    return e


def alive(c) -> None:
    assert c.cmd("zz NOOP")[-1] == "zz OK NOOP completed"
    assert not c.closed


def test_greeting_has_capabilities(env):
    c = env.client()
    assert c.greeting.startswith("* OK [CAPABILITY IMAP4rev1 ")
    assert "STARTTLS" in c.greeting and c.greeting.endswith("ready\r\n")


def test_synchronizing_literal_gets_continuation(env):
    c = env.client(ALICE, mailbox="INBOX")
    assert c.send(b"a1 SELECT {5}\r\n") == b"+ Ready for literal data\r\n"
    out = c.send(b"INBOX\r\n").decode()
    assert "a1 OK [READ-WRITE] Select completed" in out


def test_non_synchronizing_literal_needs_no_continuation(env):
    c = env.client(ALICE)
    out = c.send(b"a1 SELECT {5+}\r\nINBOX\r\n").decode()
    assert "+ Ready" not in out and "a1 OK [READ-WRITE]" in out


def test_literal_split_across_packets(env):
    c = env.client(ALICE)
    c.send(b"a1 CREATE {7+}\r\nPro")
    assert c.send(b"jec").decode() == ""
    assert c.send(b"t\r\n").decode() == "a1 OK Create completed\r\n"
    assert '"Project"' in c.cmd('a2 LIST "" Project')[0]


def test_zero_length_literal(env):
    c = env.client(ALICE)
    assert c.cmd(b"a1 STATUS {0+}\r\n (MESSAGES)")[-1].startswith("a1 NO [NONEXISTENT]")
    alive(c)


def test_pipelined_commands_answer_in_order(env):
    c = env.client(ALICE)
    out = c.send(b"a1 NOOP\r\na2 SELECT INBOX\r\na3 NOOP\r\n").decode().split("\r\n")
    tags = [line.split(" ")[0] for line in out if line[:1] == "a"]
    assert tags == ["a1", "a2", "a3"]


def test_long_pipeline_does_not_recurse(env):
    c = env.client(ALICE)
    out = c.send(b"".join(b"n%d NOOP\r\n" % i for i in range(3000))).decode()
    assert out.count(" OK NOOP completed") == 3000


def test_bare_lf_line_ends_are_accepted(env):
    c = env.client()
    assert c.send(b"a1 CAPABILITY\n").decode().endswith("a1 OK Capability completed\r\n")


def test_bad_literal_size_lie_short(env):
    """The client announces {10} but sends less: the literal swallows the next command, the
    remainder fails to parse, BAD, and the connection lives."""
    c = env.client(ALICE)
    c.send(b"a1 LOGIN {10}\r\n")
    out = c.send(b"abc\r\na2 NOOP\r\n").decode()
    assert out.startswith("a1 BAD")
    alive(c)


def test_bad_literal_size_lie_long(env):
    """The client announces {3} and sends more: the rest continues the command line → BAD."""
    c = env.client(ALICE)
    out = c.send(b"a1 SELECT {3+}\r\nINBOXJUNK\r\n").decode()
    assert out.startswith("a1 BAD")
    alive(c)


def test_bad_literal_size_not_a_number(env):
    c = env.client(ALICE)
    out = c.send(b"a1 SELECT {abc}\r\n").decode()
    assert out.startswith("a1 BAD")
    alive(c)


def test_bad_unbalanced_parens(env):
    c = env.client(ALICE, mailbox="INBOX")
    env.append(ALICE, message())
    c.ok("n NOOP")
    for line in ["a1 FETCH 1 (FLAGS UID", "a2 FETCH 1 FLAGS)", "a3 SEARCH (OR SEEN UNSEEN",
                 "a4 STORE 1 +FLAGS (\\Seen", "a5 FETCH 1 (BODY[HEADER.FIELDS (SUBJECT])"]:
        tag = line.split()[0]
        assert c.cmd(line)[-1].startswith(f"{tag} BAD"), line
    alive(c)


def test_bad_unknown_commands(env):
    c = env.client()
    assert c.cmd("a1 FROBNICATE")[-1] == "a1 BAD Unknown command"
    assert c.cmd("a2 UID FROB 1")[-1] == "a2 BAD Unknown command"
    assert c.cmd("a3")[-1].startswith("a3 BAD")
    assert c.cmd("")[-1].startswith("* BAD")
    assert c.cmd("+ NOOP")[-1].startswith("* BAD")
    alive(c)


def test_bad_commands_in_wrong_state(env):
    c = env.client()
    assert c.cmd("a1 SELECT INBOX")[-1] == "a1 BAD Not authenticated"
    c.proto.login_done(ALICE)
    assert c.cmd("a2 FETCH 1 FLAGS")[-1] == "a2 BAD No mailbox selected"
    assert c.cmd("a3 LOGIN x y")[-1] == "a3 BAD Already authenticated"
    alive(c)


def test_bad_over_long_line(env):
    c = env.client(ALICE)
    out = c.send(b"a1 NOOP " + b"x" * (protocol.MAX_LINE + 10))
    assert out == b""  # nothing yet: the line has not ended
    out = c.send(b"x" * 100_000 + b"\r\n").decode()
    assert out == "a1 BAD Line too long\r\n"
    alive(c)
    assert len(c.proto._buf) == 0


def test_bad_over_long_literal_outside_append(env):
    c = env.client(ALICE)
    out = c.send(b"a1 SELECT {999999}\r\n").decode()
    assert out == "a1 BAD Literal is too big\r\n"
    alive(c)


def test_bad_append_literal_over_message_size_sync(env):
    c = env.client(ALICE)
    limit = env.registry.config.limits.message_size
    out = c.send(b"a1 APPEND INBOX {%d}\r\n" % (limit + 1)).decode()
    assert out == "a1 NO [TOOBIG] Literal is too big\r\n"
    alive(c)


def test_bad_append_literal_over_message_size_nonsync(env):
    """RFC 7888 §4: a too-big LITERAL+ is read and dropped, then refused; nothing is stored."""
    env.registry.config.limits = replace(env.registry.config.limits, message_size=2048)
    c = env.client(ALICE, mailbox="INBOX")
    c.send(b"a1 APPEND INBOX {5000+}\r\n")
    out = c.send(b"x" * 5000 + b"\r\n").decode()
    assert out == "a1 NO [TOOBIG] Literal is too big\r\n"
    alive(c)
    assert "MESSAGES 0" in c.cmd("a2 STATUS INBOX (MESSAGES)")[0]


def test_bad_nul_and_8bit_garbage(env):
    c = env.client(ALICE)
    assert c.cmd(b"a1 \x00\xff\xfe NOOP")[-1].startswith("a1 BAD")
    assert c.cmd(b"\xff\x00 NOOP")[-1].startswith("* BAD")
    alive(c)


def test_too_many_bad_commands_disconnects(env):
    c = env.client()
    for i in range(protocol.MAX_BAD - 1):
        c.cmd(f"b{i} WHAT")
    assert not c.closed
    out = c.cmd("last WHAT")
    assert out[-1].startswith("* BYE") and c.closed


def test_good_command_resets_bad_count(env):
    c = env.client()
    for _ in range(3):
        for i in range(protocol.MAX_BAD - 1):
            c.cmd(f"b{i} WHAT")
        c.ok("ok CAPABILITY")
    assert not c.closed


def test_idle_timeout_logs_out(env):
    c = env.client(ALICE)
    env.registry.reactor.advance(protocol.IDLE_TIMEOUT - 1)
    assert not c.closed
    c.cmd("a NOOP")
    env.registry.reactor.advance(protocol.IDLE_TIMEOUT + 1)
    assert c.output().startswith(b"* BYE Autologout")
    assert c.closed


def test_preauth_timeout_is_shorter(env):
    c = env.client()
    env.registry.reactor.advance(protocol.PREAUTH_TIMEOUT + 1)
    assert c.closed


def test_connection_gauge(env):
    gauge = env.registry.metrics.connections.labels("imap")
    before = gauge._value.get()
    c = env.client()
    assert gauge._value.get() == before + 1
    c.cmd("a LOGOUT")
    c.proto.connectionLost(None)
    assert gauge._value.get() == before


def test_bad_absurd_nonsync_literal_closes(env):
    """A LITERAL+ far beyond any limit is not worth reading: BAD, BYE, disconnect."""
    c = env.client(ALICE)
    out = c.send(b"a1 LOGIN {99999999999+}\r\n").decode()
    assert out == "a1 BAD Literal is too big\r\n* BYE Literal is too big\r\n"
    assert c.closed


def test_bad_nonsync_literal_over_limit_is_skipped(env):
    c = env.client(ALICE)
    c.send(b"a1 SELECT {70000+}\r\n")
    out = c.send(b"y" * 70000 + b"\r\n").decode()
    assert out == "a1 BAD Literal is too big\r\n"
    alive(c)


def test_bad_random_garbage_never_crashes(env):
    """Seeded fuzzing: commands built from IMAP-ish fragments never make the server fail
    internally (no ``[SERVERBUG]``) and the connection keeps answering."""
    import random

    env.append(ALICE, message(1))
    env.append(ALICE, message(2))
    rng = random.Random(3501)
    commands = ["FETCH", "UID FETCH", "STORE", "UID STORE", "SEARCH", "UID SEARCH", "COPY", "MOVE", "LIST",
                "STATUS", "SELECT", "EXAMINE", "APPEND", "CREATE", "RENAME", "LSUB", "ENABLE", "ID", "EXPUNGE",
                "UID EXPUNGE", "IDLE", "AUTHENTICATE", "NOOP", "CHECK"]
    bits = ["1", "*", "1:*", "2,1", "0", "4294967296", "(", ")", "[", "]", "<0.5>", "BODY[", "BODY.PEEK[1]",
            "BODY[HEADER.FIELDS (", "FLAGS", "\\Seen", "\\", '"', '"x"', "NIL", "{3}", "{2+}\r\nab", "%", "INBOX",
            "&", "&Jjo-", "OR", "NOT", "HEADER", "SINCE", "1-Jan-2020", "CHARSET", "UTF-8", "+FLAGS", "-FLAGS.SILENT",
            "(UNCHANGEDSINCE 1)", "(CHANGEDSINCE", "RETURN", "(SPECIAL-USE)", "MODSEQ", "\x00", "\xff", "~{1}",
            "Trash", "UID", "LARGER", "99999999999999999999", "ENVELOPE", "BODYSTRUCTURE", "RFC822.TEXT"]
    c = env.client(ALICE, mailbox="INBOX")
    for i in range(400):
        words = [rng.choice(bits) for _ in range(rng.randint(0, 6))]
        line = f"f{i} {rng.choice(commands)} {' '.join(words)}".encode("latin-1")
        out = c.send(line + b"\r\n")
        if b"+ idling" in out:
            out += c.send(b"DONE\r\n")
        if out.startswith(b"+ ") and out[-2:] == b"\r\n" and f"f{i} ".encode() not in out:
            out += c.send(b"\r\n")  # answer a pending continuation (literal or AUTHENTICATE)
        assert b"SERVERBUG" not in out, (line, out)
        if c.closed:
            c = env.client(ALICE, mailbox="INBOX")  # too many BADs in a row: fine, start again
        c.proto._bad = 0
    alive(c)
