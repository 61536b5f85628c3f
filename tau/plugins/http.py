from tau.app.plugins import LazyService

http = LazyService("http", "tau.http.service", order=10)
