//! The command line (`emulator --help`); the Kafka connection settings are the service's
//! own ([`KafkaConnection`]), read from the same variables.

use std::path::PathBuf;

use clap::Parser;
use orders_service::config::KafkaConnection;
use orders_service::config::parse::{non_empty, number};

/// Command-line interface (`emulator --help`).
#[derive(Parser, Debug)]
#[command(
    name = "emulator",
    version,
    about = "Produces orders to Kafka: realistic random ones, optionally mixed with invalid \
             messages, duplicates and conflicts, or the given JSON files."
)]
pub(crate) struct Args {
    #[command(flatten)]
    pub(crate) kafka: KafkaConnection,

    /// Topic to produce to
    #[arg(long, env = "KAFKA_TOPIC", default_value = "orders", value_parser = non_empty())]
    pub(crate) topic: String,

    /// Number of messages to produce (all kinds together)
    #[arg(long, default_value_t = 100, conflicts_with = "files")]
    pub(crate) count: u64,

    /// Messages per second; 0 sends as fast as the broker accepts them
    #[arg(long, default_value_t = 0.0, value_parser = parse_rate)]
    pub(crate) rate: f64,

    /// Seed for the random generator: the same seed (and --uid-prefix) gives byte-identical
    /// messages; timestamps are then anchored at 2025-01-01T00:00:00Z instead of now
    #[arg(long, conflicts_with = "files")]
    pub(crate) seed: Option<u64>,

    /// Prefix of every generated order_uid ([A-Za-z0-9_-], at most 32 characters)
    /// [default: 8 random hex digits and "_", so separate runs never collide]
    #[arg(long, value_parser = parse_prefix, conflicts_with = "files")]
    pub(crate) uid_prefix: Option<String>,

    /// Fraction (0..1) of messages that are invalid, cycling through every rejection reason:
    /// malformed, too_large, schema, invalid, inconsistent
    #[arg(long, default_value_t = 0.0, value_parser = parse_ratio, conflicts_with = "files")]
    pub(crate) invalid_ratio: f64,

    /// Fraction (0..1) of messages that re-send an already sent valid order byte-identical
    #[arg(long, default_value_t = 0.0, value_parser = parse_ratio, conflicts_with = "files")]
    pub(crate) duplicate_ratio: f64,

    /// Fraction (0..1) of messages that re-send an already sent order_uid with different
    /// content (another delivery_cost and amount; otherwise valid)
    #[arg(long, default_value_t = 0.0, value_parser = parse_ratio, conflicts_with = "files")]
    pub(crate) conflict_ratio: f64,

    /// The service's payload limit: too_large messages are made just bigger than this; also
    /// used to classify --file payloads (1024–16777216)
    #[arg(long, env = "MAX_PAYLOAD_BYTES", value_name = "BYTES", default_value_t = 64 * 1024,
          value_parser = number(1024..=16usize << 20))]
    pub(crate) max_payload_bytes: usize,

    /// Send this JSON file as it is instead of generating (repeatable); the key is its
    /// order_uid when it has one
    #[arg(long = "file", value_name = "PATH")]
    pub(crate) files: Vec<PathBuf>,

    /// With --file: send each file this many times
    #[arg(long, default_value_t = 1, requires = "files",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) repeat: u64,

    /// Write "order_uid<TAB>item_count" for each distinct valid order that should be stored
    /// (first version of each uid only)
    #[arg(long, value_name = "PATH")]
    pub(crate) uids_out: Option<PathBuf>,

    /// Write "order_uid_or_key<TAB>expected_reason" for each invalid or conflicting message
    #[arg(long, value_name = "PATH")]
    pub(crate) rejects_out: Option<PathBuf>,

    /// Give up on a message not acknowledged by the broker within this many milliseconds
    #[arg(long, default_value_t = 30_000, value_name = "MS",
          value_parser = clap::value_parser!(u64).range(1_000..=3_600_000))]
    pub(crate) message_timeout_ms: u64,

    /// No progress output and no log lines below warnings (the final summary is still printed)
    #[arg(long, short)]
    pub(crate) quiet: bool,
}

fn parse_ratio(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(format!("`{s}` is not a fraction between 0 and 1")),
    }
}

fn parse_rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v == 0.0 || (0.001..=10_000_000.0).contains(&v) => Ok(v),
        _ => Err(format!(
            "`{s}` is not a rate: use 0 (unlimited) or 0.001 to 10000000 messages per second"
        )),
    }
}

fn parse_prefix(s: &str) -> Result<String, String> {
    let ok = s.len() <= 32
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok {
        Ok(s.to_string())
    } else {
        Err(format!(
            "`{s}` is not a uid prefix: at most 32 characters of A-Z a-z 0-9 _ -"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_are_checked_by_clap() {
        assert!(Args::try_parse_from(["emulator", "--invalid-ratio", "1.5"]).is_err());
        assert!(Args::try_parse_from(["emulator", "--rate", "-1"]).is_err());
        assert!(Args::try_parse_from(["emulator", "--uid-prefix", "bad prefix"]).is_err());
        assert!(Args::try_parse_from(["emulator", "--repeat", "2"]).is_err());
        assert!(Args::try_parse_from(["emulator", "--file", "x", "--count", "3"]).is_err());
        let args = Args::try_parse_from(["emulator", "--count", "5", "--rate", "20000"])
            .expect("valid arguments");
        assert_eq!((args.count, args.rate), (5, 20_000.0));
    }

    /// Catches the emulator's Kafka flags drifting from the service's: `--brokers` (what the
    /// scripts pass) and the service's own flag name both set the shared setting.
    #[test]
    fn the_kafka_connection_is_the_services() {
        for flag in ["--brokers", "--kafka-brokers"] {
            let args = Args::try_parse_from(["emulator", flag, "broker-1:9092"]).expect(flag);
            assert_eq!(args.kafka.kafka_brokers, "broker-1:9092");
        }
        let refused = Args::try_parse_from(["emulator", "--kafka-security-protocol", "tls"])
            .expect_err("not a protocol");
        let shown = orders_service::config::setting_error(&refused).map(|e| e.to_string());
        assert!(
            shown
                .as_deref()
                .is_some_and(|s| s.starts_with("KAFKA_SECURITY_PROTOCOL=")),
            "{refused}"
        );
    }
}
