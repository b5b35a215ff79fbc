-- Orders, normalized: one row per order plus its delivery, payment and items.
-- Money is bigint (integer amounts in the order's currency); times are timestamptz.
-- CHECK constraints repeat the validator's numeric rules as a last line of defence.

CREATE TABLE orders (
    id                 bigserial   PRIMARY KEY,           -- insertion order: newest-first listing
    order_uid          text        NOT NULL UNIQUE,       -- idempotency key
    track_number       text        NOT NULL,
    entry              text        NOT NULL,
    locale             text        NOT NULL,
    internal_signature text        NOT NULL,
    customer_id        text        NOT NULL,
    delivery_service   text        NOT NULL,
    shardkey           text        NOT NULL,
    sm_id              bigint      NOT NULL,
    date_created       timestamptz NOT NULL,
    -- The producer's own spelling of date_created, so the API gives back exactly what was
    -- sent (timestamptz would normalise "+03:00" or fractional seconds away).
    date_created_raw   text        NOT NULL,
    oof_shard          text        NOT NULL,
    -- SHA-256 of the canonical JSON: same hash = duplicate, different hash = conflict.
    content_hash       bytea       NOT NULL CHECK (octet_length(content_hash) = 32),
    kafka_partition    integer     NOT NULL,
    kafka_offset       bigint      NOT NULL,
    stored_at          timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE deliveries (
    order_id bigint PRIMARY KEY REFERENCES orders (id) ON DELETE CASCADE,
    name     text   NOT NULL,
    phone    text   NOT NULL,
    zip      text   NOT NULL,
    city     text   NOT NULL,
    address  text   NOT NULL,
    region   text   NOT NULL,
    email    text   NOT NULL
);

CREATE TABLE payments (
    order_id      bigint PRIMARY KEY REFERENCES orders (id) ON DELETE CASCADE,
    transaction   text   NOT NULL,
    request_id    text   NOT NULL,
    currency      text   NOT NULL,
    provider      text   NOT NULL,
    amount        bigint NOT NULL CHECK (amount >= 0),
    payment_dt    bigint NOT NULL CHECK (payment_dt > 0),
    bank          text   NOT NULL,
    delivery_cost bigint NOT NULL CHECK (delivery_cost >= 0),
    goods_total   bigint NOT NULL CHECK (goods_total >= 0),
    custom_fee    bigint NOT NULL CHECK (custom_fee >= 0)
);

CREATE TABLE items (
    order_id     bigint  NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    position     integer NOT NULL,                 -- keeps the producer's item order
    chrt_id      bigint  NOT NULL CHECK (chrt_id >= 0),
    track_number text    NOT NULL,
    price        bigint  NOT NULL CHECK (price >= 0),
    rid          text    NOT NULL,
    name         text    NOT NULL,
    sale         integer NOT NULL CHECK (sale BETWEEN 0 AND 100),
    size         text    NOT NULL,
    total_price  bigint  NOT NULL CHECK (total_price >= 0),
    nm_id        bigint  NOT NULL CHECK (nm_id >= 0),
    brand        text    NOT NULL,
    status       bigint  NOT NULL CHECK (status >= 0),
    PRIMARY KEY (order_id, position)
);

-- Every rejected message, kept with its reason. Unique on the Kafka position so that a
-- redelivered message after a crash does not produce a second row.
CREATE TABLE dead_letters (
    id               bigserial   PRIMARY KEY,
    topic            text        NOT NULL,
    kafka_partition  integer     NOT NULL,
    kafka_offset     bigint      NOT NULL,
    message_key      bytea,
    payload          bytea       NOT NULL,
    reason           text        NOT NULL,
    field            text,
    detail           text        NOT NULL,
    order_uid        text,
    received_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (topic, kafka_partition, kafka_offset)
);

CREATE INDEX dead_letters_reason_idx ON dead_letters (reason);
