-- DSN (RFC 3461) parameters of a queued message: RET, ENVID and per recipient NOTIFY and ORCPT,
-- as JSON (tau.mail.smtp.dsn_params.DsnRequest); NULL when the client asked for nothing.
ALTER TABLE outbound_queue ADD COLUMN dsn TEXT;
