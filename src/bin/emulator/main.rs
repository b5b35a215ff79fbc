//! `emulator` — feeds the `orders` topic (README, "Emulator").
//!
//! Produces realistic random orders (consistent money, 1–5 items, unique uids) at a given rate
//! and count, optionally mixed with invalid messages of every rejection reason, byte-identical
//! duplicates and same-uid conflicts; or sends given JSON files as they are. It can write what
//! should end up stored (`--uids-out`) and what should be rejected (`--rejects-out`), so tests
//! can check what arrived.
//!
//! Every generated message is checked against `orders_service::domain::parse_and_validate` in
//! debug builds, so a generator that drifts from the validation rules fails loudly.
//!
//! Layout: `cli` (the command line), `message` (what a message is meant to do), `generator`
//! (the mix and the stream of messages) over `valid` (new orders, drawn from `catalogue`)
//! and `invalid` (invalid messages, duplicates, conflicts), both drawn with `draw` (the
//! seeded building blocks); `file_source` (`--file`), `send` (the Kafka producer and
//! deliveries), `progress` and `ledger` (counts, `--uids-out`, `--rejects-out`); the run loop
//! and the summary are here. Imports run one way: generator → invalid → valid → draw.

mod catalogue;
mod cli;
mod draw;
mod file_source;
mod generator;
mod invalid;
mod ledger;
mod message;
mod progress;
mod send;
mod valid;

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use chrono::Utc;
use clap::Parser;
use futures::StreamExt;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::time::MissedTickBehavior;

use crate::cli::Args;
use crate::file_source::Files;
use crate::generator::{Generated, Generator, Mix};
use crate::ledger::{Ledger, create};
use crate::message::Outgoing;
use crate::progress::Progress;
use crate::send::{Deliveries, FutureProducer, check_reachable, producer};

/// Timestamp anchor for seeded runs (2025-01-01T00:00:00Z), so their output is reproducible.
const SEEDED_ANCHOR: i64 = 1_735_689_600;

fn summary(sent: u64, ledger: &Ledger, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64();
    format!(
        "sent {sent} messages ({} valid, {} invalid, {} duplicates, {} conflicts) in {secs:.2} s ({:.0} msg/s)",
        ledger.valid,
        ledger.invalid,
        ledger.duplicates,
        ledger.conflicts,
        sent as f64 / secs.max(1e-9)
    )
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    match emulate().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("emulator: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn emulate() -> Result<()> {
    dotenvy::dotenv().ok();
    let args = Args::parse();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(if args.quiet {
        "warn"
    } else {
        "info"
    }))
    .init();

    let brokers = args.kafka.kafka_brokers.clone();
    let topic = args.topic.clone();
    let max_payload = args.max_payload_bytes;
    let mix = Mix {
        invalid: args.invalid_ratio,
        duplicate: args.duplicate_ratio,
        conflict: args.conflict_ratio,
    };
    if mix.invalid + mix.duplicate + mix.conflict > 1.0 + 1e-9 {
        bail!("--invalid-ratio + --duplicate-ratio + --conflict-ratio must not exceed 1");
    }

    let mut rng = match args.seed {
        Some(seed) => StdRng::seed_from_u64(seed),
        None => StdRng::from_os_rng(),
    };
    let (source, total): (Box<dyn Iterator<Item = Outgoing>>, u64) = if args.files.is_empty() {
        let prefix = args
            .uid_prefix
            .clone()
            .unwrap_or_else(|| format!("{:08x}_", rand::rng().random::<u32>()));
        let anchor = if args.seed.is_some() {
            SEEDED_ANCHOR
        } else {
            Utc::now().timestamp()
        };
        log::info!(
            "producing {} messages to {topic} at {brokers} (uid prefix {prefix:?}, rate {})",
            args.count,
            if args.rate > 0.0 {
                format!("{}/s", args.rate)
            } else {
                "unlimited".to_string()
            }
        );
        let generator = Generator::new(rng, prefix, anchor, max_payload);
        let source = Generated {
            generator,
            mix,
            remaining: args.count,
        };
        (Box::new(source), args.count)
    } else {
        let files = Files::load(&args.files, args.repeat, max_payload, &mut rng)?;
        let total = files.total();
        log::info!(
            "sending {} file(s) x{} to {topic} at {brokers}",
            args.files.len(),
            args.repeat
        );
        (Box::new(files), total)
    };

    let mut ledger = Ledger {
        uids: create(&args.uids_out)?,
        rejects: create(&args.rejects_out)?,
        ..Ledger::default()
    };
    let producer = producer(&args.kafka, args.message_timeout_ms)?;
    check_reachable(&producer, &brokers).await?;

    let interrupted = Arc::new(AtomicBool::new(false));
    {
        let interrupted = interrupted.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                interrupted.store(true, Ordering::Relaxed);
            }
        });
    }

    let mut deliveries = Deliveries::new(Progress::new(total, args.quiet));
    let start = Instant::now();
    let result = run(
        source,
        &producer,
        &topic,
        args.rate,
        &mut deliveries,
        &mut ledger,
        &interrupted,
    )
    .await;
    // Whatever happened, wait for what is already on its way.
    while deliveries.settle_one().await {}
    let elapsed = start.elapsed();
    deliveries.progress.finish();
    ledger.finish()?;
    result?;

    if deliveries.failed > 0 {
        bail!(
            "{} of {} messages were not delivered to {topic} at {brokers}: {}",
            deliveries.failed,
            deliveries.failed + deliveries.acknowledged,
            deliveries.first_error.unwrap_or_default()
        );
    }
    println!("{}", summary(deliveries.acknowledged, &ledger, elapsed));
    if interrupted.load(Ordering::Relaxed) {
        bail!("interrupted after {} messages", deliveries.acknowledged);
    }
    Ok(())
}

/// Sends everything `source` yields, at most `rate` messages per second (0: no limit), until
/// it is exhausted, a delivery fails or the user interrupts.
async fn run(
    mut source: Box<dyn Iterator<Item = Outgoing>>,
    producer: &FutureProducer,
    topic: &str,
    rate: f64,
    deliveries: &mut Deliveries,
    ledger: &mut Ledger,
    interrupted: &AtomicBool,
) -> Result<()> {
    let start = Instant::now();
    // Ticks of at least 5 ms: at high rates each tick sends a batch.
    let period = if rate > 0.0 {
        Duration::from_secs_f64((1.0 / rate).max(0.005))
    } else {
        Duration::from_millis(5)
    };
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut sent: u64 = 0;
    loop {
        let budget = if rate > 0.0 {
            (start.elapsed().as_secs_f64() * rate) as u64 + 1
        } else {
            u64::MAX
        };
        while sent < budget {
            if interrupted.load(Ordering::Relaxed) || deliveries.failed > 0 {
                return Ok(());
            }
            let Some(msg) = source.next() else {
                return Ok(());
            };
            deliveries.send(producer, topic, &msg).await?;
            ledger.record(&msg)?;
            sent += 1;
        }
        tokio::select! {
            _ = ticker.tick() => {}
            Some(outcome) = deliveries.in_flight.next(), if !deliveries.in_flight.is_empty() => {
                deliveries.settle(outcome);
            }
        }
    }
}
