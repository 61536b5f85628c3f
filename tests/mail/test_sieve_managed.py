"""The tau-managed section: REST filters and vacation written into a user's own Sieve script."""

from __future__ import annotations

import pytest

from tau.mail.sieve.compile import compile_script
from tau.mail.sieve.interpret import MessageView, evaluate
from tau.mail.sieve.managed import FilterError, compose, split

OWN = ('require ["imap4flags"];\n# my own rule\n'
       'if header :contains "subject" "urgent" {\n    addflag "\\\\Flagged";\n}\n')
RULE = {"if": {"header": "list-id", "contains": "dev.lists.example"}, "then": {"fileinto": "Lists/dev"}}


def message(subject: str, **headers: str) -> MessageView:
    return MessageView((("Subject", subject), *headers.items()), "", 10, "bob@remote.test", "a@example.test", 0.0)


def test_the_users_own_rules_stay_below_the_managed_section() -> None:
    script = compose(OWN, {"filters": [RULE]})
    required, settings, rest = split(script)
    assert required == {"fileinto", "imap4flags"} and settings == {"filters": [RULE]}
    assert rest == OWN.split("\n", 1)[1]                  # the user's text, less its require (merged)
    compiled = compile_script(script)
    assert evaluate(compiled, message("urgent!")).stores == [("INBOX", ("\\Flagged",))]
    assert evaluate(compiled, message("hi", **{"List-Id": "<dev.lists.example>"})).stores == [("Lists/dev", ())]


def test_composing_again_replaces_the_section_instead_of_adding_one() -> None:
    once = compose(OWN, {"filters": [RULE]})
    twice = compose(once, {"filters": []})
    assert twice.count("tau-managed: begin") == 1 and "Lists/dev" not in twice and "my own rule" in twice
    compile_script(twice)


def test_vacation_until_a_date_is_wrapped_in_currentdate() -> None:
    script = compose("", {"vacation": {"enabled": True, "subject": "Away", "text": "Back \"soon\".",
                                       "until": "2030-01-31"}})
    assert 'if currentdate :value "le" "date" "2030-01-31"' in script
    [(_, vacation)] = [n for n in compile_script(script).block[0][1][0][1]]
    assert vacation["reason"] == 'Back "soon".' and vacation["subject"] == "Away"


@pytest.mark.parametrize("rule", [{"if": {"header": "x-anything", "contains": "a"}, "then": {"discard": True}},
                                  {"if": {"header": "subject"}, "then": {"discard": True}},
                                  {"if": {"header": "subject", "contains": "a"}, "then": {"delete": True}}])
def test_rules_outside_the_simple_form_are_refused(rule: dict) -> None:
    with pytest.raises(FilterError):
        compose("", {"filters": [rule]})
