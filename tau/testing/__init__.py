"""Test support shipped with tau (like ``twisted.internet.testing``).

- ``databases``: fresh SQLite/PostgreSQL databases per test run, cleaned between tests.
- ``harness``: a Registry whose database and thread calls complete synchronously, on a
  ``MemoryReactorClock`` — store and protocol tests run without the global reactor.
- ``daemon``: start the real ``twistd -n tau`` on free loopback ports for end-to-end tests.
"""
