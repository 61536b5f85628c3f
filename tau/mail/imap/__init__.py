"""IMAP4rev1 (RFC 3501) for TauMail, on tau's own framing rather than twisted.mail.imap4 (which
lacks CONDSTORE, MOVE, UIDPLUS, SPECIAL-USE, LITERAL+ and ENABLE, and re-renders every ENVELOPE
and BODYSTRUCTURE in Python).

Wire code and semantics are apart: ``protocol`` (framing, literals, states, dispatch), ``parser``
and ``response`` (syntax), one module per command family (``auth``, ``mailboxes``, ``listing``,
``fetch`` + ``bodies``, ``store``, ``copy``, ``expunge``, ``search``, ``append``, ``idle``),
``session`` (the selected mailbox's sequence numbers and pending changes) and ``service`` (the
factory, bus fan-out and listeners). No SQL here: everything goes through ``tau.mail.store``.
"""
