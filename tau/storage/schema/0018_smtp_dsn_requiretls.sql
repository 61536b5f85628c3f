-- Envelope parameters of a queued message that its delivery must honour:
-- dsn: RFC 3461 RET, ENVID and per recipient NOTIFY and ORCPT, as JSON
--      (tau.mail.smtp.dsn_params.DsnRequest); NULL when the client asked for nothing.
-- require_tls: RFC 8689 REQUIRETLS was given on MAIL FROM (1): verified TLS to a REQUIRETLS hop, or bounce.
ALTER TABLE outbound_queue ADD COLUMN dsn TEXT;
ALTER TABLE outbound_queue ADD COLUMN require_tls INTEGER NOT NULL DEFAULT 0;
