"""The network floor: listening endpoints, TLS contexts and slow-sender deadlines.

Everything above (config, the protocols, the app) builds on these; nothing here imports another
tau package, so any protocol may use them.
"""
