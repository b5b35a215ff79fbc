DROP INDEX dead_letters_received_at_idx;
DROP INDEX dead_letters_order_uid_id_idx;
DROP INDEX dead_letters_reason_id_idx;
CREATE INDEX dead_letters_reason_idx ON dead_letters (reason);
DROP TABLE dead_letter_replays;
