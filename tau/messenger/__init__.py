"""TauMessenger: a Signal-style relay (key bundles, ciphertext queues), presence and ``/ws/messages``.

Modules: ``keys`` (X3DH bundles), ``conversations``, ``messages`` (queues, receipts) hold the
SQL; ``domain`` validates and publishes events after commit; ``api`` is REST, ``socket`` the
reusable JSON WebSocket layer, ``ws`` the messages socket, ``hub`` the bus → socket fan-out,
``presence`` memory/Redis presence, ``service`` the daemon hook.
"""
