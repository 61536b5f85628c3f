from tau.app.plugins import LazyService

admin = LazyService("admin", "tau.admin.service", order=95)
