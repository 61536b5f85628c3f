from tau.app.plugins import LazyService

files = LazyService("files", "tau.files.service", order=50)
