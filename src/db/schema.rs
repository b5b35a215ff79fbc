// @generated automatically by Diesel CLI.

diesel::table! {
    dead_letters (id) {
        id -> Int8,
        topic -> Text,
        kafka_partition -> Int4,
        kafka_offset -> Int8,
        message_key -> Nullable<Bytea>,
        payload -> Bytea,
        reason -> Text,
        field -> Nullable<Text>,
        detail -> Text,
        order_uid -> Nullable<Text>,
        received_at -> Timestamptz,
    }
}

diesel::table! {
    dead_letter_replays (id) {
        id -> Int8,
        dead_letter_id -> Int8,
        replayed_at -> Timestamptz,
        result -> Text,
        reason -> Nullable<Text>,
        detail -> Nullable<Text>,
    }
}

diesel::table! {
    deliveries (order_id) {
        order_id -> Int8,
        name -> Text,
        phone -> Text,
        zip -> Text,
        city -> Text,
        address -> Text,
        region -> Text,
        email -> Text,
    }
}

diesel::table! {
    items (order_id, position) {
        order_id -> Int8,
        position -> Int4,
        chrt_id -> Int8,
        track_number -> Text,
        price -> Int8,
        rid -> Text,
        name -> Text,
        sale -> Int4,
        size -> Text,
        total_price -> Int8,
        nm_id -> Int8,
        brand -> Text,
        status -> Int8,
    }
}

diesel::table! {
    orders (id) {
        id -> Int8,
        order_uid -> Text,
        track_number -> Text,
        entry -> Text,
        locale -> Text,
        internal_signature -> Text,
        customer_id -> Text,
        delivery_service -> Text,
        shardkey -> Text,
        sm_id -> Int8,
        date_created -> Timestamptz,
        date_created_raw -> Text,
        oof_shard -> Text,
        content_hash -> Bytea,
        kafka_partition -> Int4,
        kafka_offset -> Int8,
        stored_at -> Timestamptz,
    }
}

diesel::table! {
    payments (order_id) {
        order_id -> Int8,
        transaction -> Text,
        request_id -> Text,
        currency -> Text,
        provider -> Text,
        amount -> Int8,
        payment_dt -> Int8,
        bank -> Text,
        delivery_cost -> Int8,
        goods_total -> Int8,
        custom_fee -> Int8,
    }
}

diesel::joinable!(dead_letter_replays -> dead_letters (dead_letter_id));
diesel::joinable!(deliveries -> orders (order_id));
diesel::joinable!(items -> orders (order_id));
diesel::joinable!(payments -> orders (order_id));

diesel::allow_tables_to_appear_in_same_query!(
    dead_letter_replays,
    dead_letters,
    deliveries,
    items,
    orders,
    payments,
);
