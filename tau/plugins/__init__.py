"""Plugin package scanned by ``twisted.plugin.getPlugins(ITauService, tau.plugins)``."""
