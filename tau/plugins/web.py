from tau.app.plugins import LazyService

web = LazyService("web", "tau.web.static_route", order=96)
