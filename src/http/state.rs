//! What the handlers of both listeners share.

use std::sync::{Arc, OnceLock};

use actix::Addr;

use crate::actors::db_reader::DbReader;
use crate::actors::kafka_reader::KafkaReader;
use crate::cache::CacheHandle;
use crate::health::Health;

/// The cache (which lives on the first HTTP worker), the actors on the main System, the
/// health report and the access-log switch.
pub struct AppState {
    pub cache: CacheHandle,
    pub db: Addr<DbReader>,
    /// Set once ingestion has started (the HTTP server starts before it).
    pub reader: Arc<OnceLock<Addr<KafkaReader>>>,
    pub health: Arc<Health>,
    /// `ACCESS_LOG`.
    pub access_log: bool,
}
