-- Operations: replay history, and the indexes behind paging and filtering dead letters.

-- Every replay of a dead letter and its result. The dead letter itself is never changed or
-- deleted by a replay: this table is its history (INSERT only for the runtime role).
CREATE TABLE dead_letter_replays (
    id              bigserial   PRIMARY KEY,
    dead_letter_id  bigint      NOT NULL REFERENCES dead_letters (id) ON DELETE CASCADE,
    replayed_at     timestamptz NOT NULL DEFAULT now(),
    -- stored | duplicate | conflict | rejected
    result          text        NOT NULL CHECK (result IN ('stored', 'duplicate', 'conflict', 'rejected')),
    -- The rejection reason and detail of the current validation, for `rejected`.
    reason          text,
    detail          text
);
CREATE INDEX dead_letter_replays_letter_idx ON dead_letter_replays (dead_letter_id, id);

-- Keyset paging newest first, with each filter: (filter, id) so that `WHERE filter = $1
-- AND id < $cursor ORDER BY id DESC LIMIT n` is one index range scan.
DROP INDEX dead_letters_reason_idx;
CREATE INDEX dead_letters_reason_id_idx ON dead_letters (reason, id);
CREATE INDEX dead_letters_order_uid_id_idx ON dead_letters (order_uid, id);
-- `since`/`before` time filters and retention (oldest first, bounded batches).
CREATE INDEX dead_letters_received_at_idx ON dead_letters (received_at);
