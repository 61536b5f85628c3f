"""Clients that set themselves up: autoconfig, Autodiscover, Apple profiles, MTA-STS (issue 17)."""
from tau.app.plugins import LazyService

clientsetup = LazyService("clientsetup", "tau.clientsetup.service", order=60)
