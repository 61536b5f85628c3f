"""Test support for tau's suite (not shipped: nothing under ``tau/`` imports it).

- ``databases``: fresh SQLite/PostgreSQL databases per test run, cleaned between tests.
- ``harness``: a Registry whose database and thread calls complete synchronously, on a
  ``MemoryReactorClock`` — store and protocol tests run without the global reactor.
- ``daemon``: start the real ``twistd -n tau`` on free loopback ports for end-to-end tests.
- ``smtp``, ``imap``, ``mail_api``, ``calendars``: in-process protocol and REST hosts per domain;
  ``outbound`` and ``sink``: a remote mail world (DNS, MX sink, MTA-STS) in a subprocess.

``tests`` is importable because pytest puts the checkout on ``sys.path`` (``pythonpath = .`` in
setup.cfg); scripts run outside pytest (tests/fuzz, tests/bench) add it themselves.
"""
