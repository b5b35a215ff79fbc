//! The ordered stop, every wait bounded: stop fetching → let in-flight writes finish (up to
//! `SHUTDOWN_TIMEOUT_MS`) → commit synchronously → leave the group → stop the public and
//! admin HTTP servers gracefully. A second SIGTERM/SIGINT during any of it exits at once
//! (see `main`).
//!
//! Limit: messages still being written when the deadline passes are not committed; the next
//! owner of their partitions reads them again (they are recognised as duplicates).

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use actix_web::dev::ServerHandle;
use anyhow::Context;

use crate::actors::kafka_reader::{KafkaReader, Shutdown};
use crate::kafka::{OrdersConsumer, leave_group};

/// What runs once start-up is done, and must be stopped in order.
pub struct Ingest {
    pub reader: Addr<KafkaReader>,
    pub consumer: Arc<OrdersConsumer>,
    /// Kept so the writers' threads live as long as the application.
    pub writer_arbiters: Vec<Arbiter>,
    /// `KAFKA_INSTANCE_ID` is set: the member does not leave the group at shutdown.
    pub static_member: bool,
}

pub async fn ordered_stop(
    ingest: Ingest,
    http: &[ServerHandle],
    timeout: Duration,
) -> anyhow::Result<()> {
    log::info!("shutting down: draining in-flight writes (up to {timeout:?})");
    let report = ingest
        .reader
        .send(Shutdown { timeout })
        .await
        .context("the Kafka reader is gone")?;
    log::info!(
        "shutdown: committed {:?}; {} messages left to be read again",
        report.committed,
        report.abandoned
    );
    if ingest.static_member {
        // A static member keeps its partitions for the session timeout, so that the same
        // instance, restarted, takes them back at once (a rolling restart moves nothing).
        log::info!("static member (KAFKA_INSTANCE_ID): not leaving the group");
    } else {
        leave_group(&ingest.consumer).await;
    }
    for server in http {
        server.stop(true).await;
    }
    drop(ingest.writer_arbiters);
    log::info!("shutdown complete");
    Ok(())
}
