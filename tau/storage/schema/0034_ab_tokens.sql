-- The keyed token index of the card search index (issue 16): for each ab_index value, the keyed
-- hash (the book owner's index key) of every three-character piece of the value framed by a start
-- and an end mark, scoped by property. A contains / starts-with / ends-with text-match takes the
-- cards holding every piece of its needle as candidates and decrypts only their values to verify.
-- ab_cards.tokens = 0: a card written before this index (the at-rest converter adds its tokens;
-- until then every search verifies it).
CREATE TABLE ab_tokens (
    book_id {bigint} NOT NULL,
    token {bigint} NOT NULL,
    card_id {bigint} NOT NULL REFERENCES ab_cards(id) ON DELETE CASCADE,
    PRIMARY KEY (book_id, token, card_id)
);
CREATE INDEX ab_tokens_card ON ab_tokens(card_id);
ALTER TABLE ab_cards ADD COLUMN tokens INTEGER NOT NULL DEFAULT 0;
CREATE INDEX ab_cards_untokenised ON ab_cards(book_id) WHERE tokens = 0;
