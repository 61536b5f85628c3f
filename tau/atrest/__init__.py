"""Encryption at rest of what users and their correspondents wrote (issue 16).

``keyring`` holds the key hierarchy (secret → epoch master key → per-user data and index keys)
and the sealing format; ``store`` its SQL; ``convert`` the background job that seals rows still
in plaintext or under a retired key, table by table, through the ``AtRestTable`` each store
provides.
"""
