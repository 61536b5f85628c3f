"""TauConnect: video and voice calls (issue 8).

``calls`` (domain) over ``store`` (SQL), ``api`` (REST + the call page), ``signaling``
(``/ws/signal``) fanned out by ``hub`` through the event bus, ``turn`` (coturn REST-API
credentials) and ``sfu`` (aiortc media workers in their own processes).
"""
