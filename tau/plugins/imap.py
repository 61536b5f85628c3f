from tau.app.plugins import LazyService

imap = LazyService("imap", "tau.mail.imap.service", order=40)
