"""Sieve evaluation cost per delivered message with a 20-rule script (issue 17: < 1 ms at the p50).

Measures what delivery adds for a recipient with an active script: building the message view from
the parsed message, fetching the compiled script from the cache and running it (``plan.view`` +
``plan.outcome_for``). The database read of the script is shared with delivery's own reads and is
not part of this number.

    python tests/bench/bench_sieve.py --messages 20000

``pytest -m bench tests/bench/bench_sieve.py`` runs a smaller version and checks the p50 bound.
"""

from __future__ import annotations

import argparse
import statistics
import time

import pytest

from tau.mail.mime import parse_message
from tau.mail.sieve.plan import outcome_for, view

pytestmark = pytest.mark.bench


def twenty_rules() -> str:
    rules = ['require ["fileinto", "imap4flags", "variables", "envelope", "body", "relational", "vacation"];']
    for i in range(6):
        rules.append(f'if header :contains "subject" "[project-{i}]" {{ fileinto "Projects/{i}"; stop; }}')
    for i in range(4):
        rules.append(f'if address :domain :is "from" "vendor{i}.example" {{ addflag "\\\\Flagged"; }}')
    for i in range(3):
        rules.append(f'if header :matches "list-id" "*list{i}.example*" {{ fileinto "Lists/${{1}}"; stop; }}')
    rules.append('if envelope :is "from" "boss@example.test" { addflag "$Important"; }')
    rules.append('if size :over 5M { fileinto "Large"; }')
    rules.append('if header :count "ge" :comparator "i;ascii-numeric" "received" "20" { discard; stop; }')
    rules.append('if body :text :contains "unsubscribe" { fileinto "Newsletters"; stop; }')
    rules.append('if anyof (header :contains "x-spam-flag" "yes", header :value "ge" :comparator'
                 ' "i;ascii-numeric" "x-spam-score" "8") { fileinto "Junk"; stop; }')
    rules.append('if not exists "message-id" { addflag "$NoId"; }')
    rules.append('if header :is "subject" "ping" { discard; }')
    return "\n".join(rules) + "\n"


MESSAGE = (b"Received: from a by b; Mon, 7 Dec 2026 10:00:00 +0000\r\n" * 3
           + b"From: Bob <bob@remote.test>\r\nTo: alice@example.test\r\nSubject: weekly status\r\n"
           b"Message-ID: <1@remote.test>\r\nDate: Mon, 7 Dec 2026 10:00:00 +0000\r\n\r\n"
           + b"Nothing to report this week.\r\n" * 40)


def measure(messages: int) -> list[float]:
    script = twenty_rules()
    parsed = parse_message(MESSAGE)
    outcome_for(script, view(parsed, len(MESSAGE), "bob@remote.test", "alice@example.test", 0.0), "INBOX")
    samples = []
    for _ in range(messages):
        start = time.perf_counter()
        message = view(parsed, len(MESSAGE), "bob@remote.test", "alice@example.test", 0.0)
        outcome = outcome_for(script, message, "INBOX")
        samples.append(time.perf_counter() - start)
    assert outcome.stores == [("INBOX", ())] and outcome.error is None
    return samples


def report(samples: list[float]) -> str:
    ordered = sorted(samples)
    p = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1e6  # noqa: E731
    return (f"{len(samples)} messages: p50 {p(0.5):.1f} µs, p90 {p(0.9):.1f} µs, p99 {p(0.99):.1f} µs,"
            f" min {ordered[0] * 1e6:.1f} µs, max {ordered[-1] * 1e6:.1f} µs,"
            f" mean {statistics.mean(samples) * 1e6:.1f} µs")


def test_twenty_rules_take_under_a_millisecond_at_the_median() -> None:
    samples = measure(2000)
    assert statistics.median(samples) < 0.001, report(samples)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20000)
    print(report(measure(parser.parse_args().messages)))
