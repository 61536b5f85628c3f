-- "Send as" grants (issue 13): besides their own address and the aliases delivering to them, a
-- user may use ADDRESS as envelope sender, header From and Sender on submission and in the API.
-- Managed with `tau user send-as add|remove|list`; gone with the user or the domain.
CREATE TABLE send_as (
    id {id},
    user_id {bigint} NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    address TEXT NOT NULL,
    domain_id {bigint} NOT NULL REFERENCES domains(id) ON DELETE CASCADE,
    created_at {bigint} NOT NULL,
    UNIQUE (user_id, address)
);
CREATE INDEX send_as_address ON send_as(address);
