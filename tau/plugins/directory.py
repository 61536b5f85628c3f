from tau.app.plugins import LazyService

directory = LazyService("ldap", "tau.auth.ldap", order=5)
