from tau.app.plugins import LazyService

smtp = LazyService("smtp", "tau.mail.smtp.service", order=30)
