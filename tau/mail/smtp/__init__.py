"""TauMail SMTP: MX on ``[listen] smtp``, submission on ``submission`` (STARTTLS + AUTH) and
``submissions`` (implicit TLS + AUTH). See ``server.py`` for the protocol, ``delivery.py`` for
who may send what to whom, ``message.py`` for how a message reaches the store durably.
"""
