"""Sieve limits (issue 17): script size, redirects per message; a script past a limit keeps the mail."""

from __future__ import annotations

import pytest

from tau.mail.sieve.compile import MAX_SCRIPT_BYTES, ScriptError, compile_script
from tau.mail.sieve.interpret import MAX_REDIRECTS, MessageView, evaluate

MESSAGE = MessageView((("Subject", "hello"), ("To", "alice@example.test")), "text", 100, "bob@remote.test",
                      "alice@example.test", 0.0)


def test_a_script_over_the_size_limit_is_refused() -> None:
    with pytest.raises(ScriptError, match="over the limit"):
        compile_script("# " + "x" * MAX_SCRIPT_BYTES + "\nkeep;\n")


def test_an_unknown_extension_is_refused_with_its_name() -> None:
    with pytest.raises(ScriptError, match="'enotify'"):
        compile_script('require ["enotify"];\nkeep;\n')


def test_too_many_redirects_fall_back_to_the_implicit_keep() -> None:
    script = compile_script("".join(f'redirect "r{i}@remote.test";\n' for i in range(MAX_REDIRECTS + 1)))
    outcome = evaluate(script, MESSAGE)
    assert outcome.stores == [("INBOX", ())] and not outcome.redirects
    assert outcome.error is not None and "redirects" in outcome.error


def test_redirects_up_to_the_limit_are_kept() -> None:
    script = compile_script("".join(f'redirect "r{i}@remote.test";\n' for i in range(MAX_REDIRECTS)))
    assert evaluate(script, MESSAGE).redirects == [f"r{i}@remote.test" for i in range(MAX_REDIRECTS)]
