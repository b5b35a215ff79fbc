//! Test doubles for the cache's tests: loaders that stand in for the DbReader, a cache whose
//! database is down, and a client of it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;

use super::actor::CacheActor;
use super::client::{CacheClient, Peers};
use super::entry::CacheCompression;
use super::messages::{LoadOrder, Loaded};
use crate::db::DbError;
use crate::health::Health;

/// Stands in for the DbReader when the database is down: every read fails after 100 ms.
pub struct NoDatabase;

impl Actor for NoDatabase {
    type Context = Context<Self>;
}

impl Handler<LoadOrder> for NoDatabase {
    type Result = ResponseFuture<Loaded>;

    fn handle(&mut self, _: LoadOrder, _: &mut Context<Self>) -> Self::Result {
        Box::pin(async {
            actix_rt::time::sleep(Duration::from_millis(100)).await;
            Err(DbError::Unavailable("no database in this test".into()))
        })
    }
}

/// Stands in for the DbReader: every order exists, with items that compress well.
pub struct EveryOrder;

impl EveryOrder {
    pub fn json(uid: &str) -> Vec<u8> {
        let item = r#"{"chrt_id":9934930,"track_number":"WBILMTESTTRACK","price":453}"#;
        format!(r#"{{"order_uid":"{uid}","items":[{item},{item},{item}]}}"#).into_bytes()
    }
}

impl Actor for EveryOrder {
    type Context = Context<Self>;
}

impl Handler<LoadOrder> for EveryOrder {
    type Result = Loaded;

    fn handle(&mut self, msg: LoadOrder, _: &mut Context<Self>) -> Self::Result {
        Ok(Some(Self::json(&msg.uid)))
    }
}

/// Stands in for the DbReader with these orders stored.
pub struct Stored(pub HashMap<String, Vec<u8>>);

impl Actor for Stored {
    type Context = Context<Self>;
}

impl Handler<LoadOrder> for Stored {
    type Result = Loaded;

    fn handle(&mut self, msg: LoadOrder, _: &mut Context<Self>) -> Self::Result {
        Ok(self.0.get(&msg.uid).cloned())
    }
}

/// A cache of `max_bytes` keeping plain JSON, whose database is down.
pub fn without_database(max_bytes: u64) -> CacheActor {
    CacheActor::new(
        max_bytes,
        CacheCompression::Off,
        64,
        NoDatabase.start().recipient(),
    )
}

/// A client of `cache` whose database is down.
pub fn client(cache: Addr<CacheActor>) -> CacheClient {
    CacheClient::new(Peers {
        cache,
        loader: NoDatabase.start().recipient(),
        health: Arc::new(Health::new()),
    })
}
