//! The integration and fault tests: one binary (one link), one module per area, sharing
//! `helpers`. Each test gets its own database, topics and consumer group; the tests that stop
//! or kill the shared PostgreSQL or Kafka take the infrastructure for themselves
//! (`TestEnv::exclusive`), the others share it (`TestEnv::new`).
//!
//! They need the PostgreSQL and Kafka that `scripts/test` starts (see `helpers`).

mod helpers;

mod abuse;
mod boundary;
mod broker_restart;
mod cluster;
mod crash;
mod db_outage;
mod durability;
mod fail_loud;
mod hosts;
mod ingest;
mod logs;
mod memory;
mod monitoring;
mod operate;
mod overload;
mod read_api;
mod rebalance;
mod replay;
mod retention;
mod round_trip;
mod sigterm;
mod transport;
