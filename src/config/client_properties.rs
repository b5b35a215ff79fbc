//! How Kafka clients connect: the brokers and the security settings (`KAFKA_SECURITY_PROTOCOL`,
//! `KAFKA_SASL_*`, `KAFKA_SSL_CA_LOCATION`), declared once in [`KafkaConnection`] for the
//! service and the emulator, and any other librdkafka property as `KAFKA_OPTION_<NAME>`
//! (`KAFKA_OPTION_SSL_KEY_LOCATION` → `ssl.key.location`). The same properties go to the
//! consumer, the DLQ producer and the emulator.

use std::fmt;

use super::ConfigError;
use super::parse::{Secret, checked, non_empty, secret, text};

/// Properties the service sets itself for its guarantees, or reads from its own variable:
/// a passthrough must not change them behind the README's back.
const MANAGED: &[&str] = &[
    "bootstrap.servers",
    "group.id",
    "enable.auto.commit",
    "enable.auto.offset.store",
    "auto.offset.reset",
    "enable.idempotence",
    "acks",
    "session.timeout.ms",
    "max.poll.interval.ms",
    "auto.commit.interval.ms",
    "security.protocol",
    "sasl.mechanism",
    "sasl.mechanisms",
    "sasl.username",
    "sasl.password",
    "ssl.ca.location",
];

/// Properties a passthrough may not set because the guarantee would silently stop holding,
/// each with the reason start-up gives. The list comes from reading every librdkafka
/// property against what the reader, the writers and the DLQ publisher assume.
const REFUSED: &[(&str, &str)] = &[
    (
        "partition.assignment.strategy",
        "the reader relies on eager rebalancing (every rebalance revokes every partition, so \
         messages fetched before it are recognised as stale); cooperative (incremental) \
         assignment would keep partitions whose in-flight messages it then drops",
    ),
    (
        "group.protocol",
        "the next-generation consumer protocol assigns partitions incrementally; the reader \
         relies on the classic protocol's eager rebalancing",
    ),
    (
        "group.remote.assignor",
        "it only applies to the incremental consumer protocol, which the reader does not support",
    ),
    (
        "group.instance.id",
        "static membership is set with KAFKA_INSTANCE_ID",
    ),
    (
        "metadata.broker.list",
        "it is another name of bootstrap.servers: set KAFKA_BROKERS",
    ),
    (
        "auto.commit.enable",
        "it is another name of enable.auto.commit, which the service manages",
    ),
    (
        "offset.store.method",
        "offsets are committed to the broker, nowhere else",
    ),
    (
        "isolation.level",
        "the service reads committed messages only; read_uncommitted would store orders of \
         aborted producer transactions",
    ),
    (
        "statistics.interval.ms",
        "consumer lag (metrics, /stats) is computed from librdkafka's statistics every second",
    ),
    (
        "message.timeout.ms",
        "a batch waits for its dead letters' acknowledgement at most 10 s, which this bounds",
    ),
    (
        "delivery.timeout.ms",
        "another name of message.timeout.ms, which bounds how long a batch waits for its dead \
         letters",
    ),
    (
        "transactional.id",
        "the DLQ producer is idempotent, not transactional; a transactional id makes every \
         publish fail",
    ),
];

/// Name parts that mark a property's value as secret: it never appears in `Debug` or logs.
const SECRET_MARKS: &[&str] = &[
    "password",
    "secret",
    "jaas",
    "key.pem",
    "token",
    "credential",
];

const OPTION_PREFIX: &str = "KAFKA_OPTION_";

const KAFKA: &str = "Kafka";

/// How every Kafka client (the consumer, the DLQ producer, the emulator's producer) reaches
/// the brokers. The emulator flattens the same struct into its command line.
#[derive(clap::Args, Debug, Clone)]
pub struct KafkaConnection {
    /// Bootstrap servers, host:port,... (non-empty)
    #[arg(long, env, visible_alias = "brokers", value_name = "HOST:PORT[,...]",
          default_value = "127.0.0.1:19092", value_parser = non_empty(), help_heading = KAFKA)]
    pub kafka_brokers: String,

    /// plaintext|ssl|sasl_plaintext|sasl_ssl; empty: plaintext
    #[arg(long, env, value_parser = checked(security_protocol), help_heading = KAFKA)]
    pub kafka_security_protocol: Option<String>,

    /// PLAIN|SCRAM-SHA-256|SCRAM-SHA-512|OAUTHBEARER: required with a sasl_* protocol,
    /// refused without one
    #[arg(long, env, value_parser = checked(sasl_mechanism), help_heading = KAFKA)]
    pub kafka_sasl_mechanism: Option<String>,

    /// SASL user name (with a sasl_* protocol)
    #[arg(long, env, value_parser = text(), help_heading = KAFKA)]
    pub kafka_sasl_username: Option<String>,

    /// SASL password (with a sasl_* protocol)
    #[arg(long, env, hide_env_values = true, value_parser = secret(), help_heading = KAFKA)]
    pub kafka_sasl_password: Option<Secret>,

    /// PEM file of the CA that signed the brokers' certificates; empty: the system's store
    #[arg(long, env, value_parser = checked(ca_file), help_heading = KAFKA)]
    pub kafka_ssl_ca_location: Option<String>,
}

fn security_protocol(value: &str) -> Result<String, String> {
    let protocol = value.to_ascii_lowercase();
    if ["", "plaintext", "ssl", "sasl_plaintext", "sasl_ssl"].contains(&protocol.as_str()) {
        Ok(protocol)
    } else {
        Err("must be plaintext, ssl, sasl_plaintext or sasl_ssl".into())
    }
}

fn sasl_mechanism(value: &str) -> Result<String, String> {
    let mechanism = value.to_ascii_uppercase();
    if ["", "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"].contains(&mechanism.as_str())
    {
        Ok(mechanism)
    } else {
        Err("must be PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER".into())
    }
}

fn ca_file(value: &str) -> Result<String, String> {
    if value.is_empty() || std::path::Path::new(value).is_file() {
        Ok(value.to_string())
    } else {
        Err("no such file (a PEM file of CA certificates)".into())
    }
}

/// librdkafka properties, in the order they are applied.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ClientProperties(Vec<(String, String)>);

impl ClientProperties {
    /// The security settings of `connection` and the `KAFKA_OPTION_*` passthrough found in
    /// `vars` (the environment), checked together.
    pub fn new<'a>(
        connection: &KafkaConnection,
        vars: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, ConfigError> {
        let set = |value: &Option<String>| value.clone().filter(|v| !v.is_empty());
        let mut props = Vec::new();
        let protocol = set(&connection.kafka_security_protocol);
        if let Some(protocol) = &protocol {
            props.push(("security.protocol".to_string(), protocol.clone()));
        }
        let sasl = protocol.as_deref().is_some_and(|p| p.starts_with("sasl_"));
        match set(&connection.kafka_sasl_mechanism) {
            Some(mechanism) if !sasl => {
                return Err(invalid(
                    "KAFKA_SASL_MECHANISM",
                    &mechanism,
                    "needs KAFKA_SECURITY_PROTOCOL=sasl_ssl or sasl_plaintext",
                ));
            }
            Some(mechanism) => props.push(("sasl.mechanism".to_string(), mechanism)),
            None if sasl => {
                return Err(ConfigError::Missing {
                    name: "KAFKA_SASL_MECHANISM",
                    example: "SCRAM-SHA-256",
                });
            }
            None => {}
        }
        let password = Secret::non_empty(connection.kafka_sasl_password.clone());
        for (var, property, value, shown) in [
            (
                "KAFKA_SASL_USERNAME",
                "sasl.username",
                set(&connection.kafka_sasl_username),
                set(&connection.kafka_sasl_username),
            ),
            (
                "KAFKA_SASL_PASSWORD",
                "sasl.password",
                password.as_ref().map(|p| p.expose().to_string()),
                password.as_ref().map(|_| "***".to_string()),
            ),
        ] {
            if let (Some(value), Some(shown)) = (value, shown) {
                if !sasl {
                    return Err(invalid(
                        var,
                        &shown,
                        "needs KAFKA_SECURITY_PROTOCOL=sasl_ssl or sasl_plaintext",
                    ));
                }
                props.push((property.to_string(), value));
            }
        }
        if let Some(ca) = set(&connection.kafka_ssl_ca_location) {
            props.push(("ssl.ca.location".to_string(), ca));
        }
        let mut options: Vec<_> = vars
            .into_iter()
            .filter_map(|(name, value)| {
                let option = name.strip_prefix(OPTION_PREFIX)?;
                let value = value.trim();
                (!value.is_empty())
                    .then(|| (name, option.to_ascii_lowercase().replace('_', "."), value))
            })
            .collect();
        options.sort();
        for (var, property, value) in options {
            if MANAGED.contains(&property.as_str()) {
                return Err(ConfigError::Passthrough {
                    name: var.to_string(),
                    reason: format!(
                        "{property} is set by the service or by its own variable; see the README's configuration table"
                    ),
                });
            }
            if let Some((_, why)) = REFUSED.iter().find(|(name, _)| *name == property) {
                return Err(ConfigError::Passthrough {
                    name: var.to_string(),
                    reason: format!("{property} cannot be set: {why}"),
                });
            }
            props.push((property, value.to_string()));
        }
        Ok(Self(props))
    }

    /// Reads the Kafka settings and the passthrough from `vars` alone (see
    /// [`super::parse::from_vars`]).
    pub fn from_vars(vars: &[(String, String)]) -> Result<Self, ConfigError> {
        let connection: KafkaConnection = super::parse::from_vars(vars)?;
        Self::new(
            &connection,
            vars.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        )
    }

    /// Sets every property on a librdkafka client configuration.
    pub fn apply(&self, config: &mut rdkafka::ClientConfig) {
        for (key, value) in &self.0 {
            config.set(key, value);
        }
    }
}

fn is_secret(key: &str) -> bool {
    SECRET_MARKS.iter().any(|mark| key.contains(mark))
}

fn invalid(name: &str, value: &str, reason: &str) -> ConfigError {
    ConfigError::Invalid {
        name: name.to_string(),
        value: value.to_string(),
        reason: reason.to_string(),
    }
}

/// Secret values as `***`: configuration is printed in errors and debug logs.
impl fmt::Debug for ClientProperties {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.iter().map(|(k, v)| {
                let shown = if is_secret(k) { "***" } else { v.as_str() };
                (k, shown)
            }))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get<'a>(p: &'a ClientProperties, key: &str) -> Option<&'a str> {
        p.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    fn props(pairs: &[(&str, &str)]) -> Result<ClientProperties, ConfigError> {
        let vars: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        ClientProperties::from_vars(&vars)
    }

    #[test]
    fn sasl_settings_become_librdkafka_properties() {
        let p = props(&[
            ("KAFKA_SECURITY_PROTOCOL", "SASL_SSL"),
            ("KAFKA_SASL_MECHANISM", "scram-sha-256"),
            ("KAFKA_SASL_USERNAME", "orders"),
            ("KAFKA_SASL_PASSWORD", "s3cret"),
            ("KAFKA_OPTION_SSL_ENDPOINT_IDENTIFICATION_ALGORITHM", "none"),
        ])
        .expect("valid");
        assert_eq!(get(&p, "security.protocol"), Some("sasl_ssl"));
        assert_eq!(get(&p, "sasl.mechanism"), Some("SCRAM-SHA-256"));
        assert_eq!(get(&p, "sasl.password"), Some("s3cret"));
        assert_eq!(
            get(&p, "ssl.endpoint.identification.algorithm"),
            Some("none")
        );
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        let p = props(&[
            ("KAFKA_SECURITY_PROTOCOL", "sasl_plaintext"),
            ("KAFKA_SASL_MECHANISM", "PLAIN"),
            ("KAFKA_SASL_USERNAME", "orders"),
            ("KAFKA_SASL_PASSWORD", "s3cret"),
            ("KAFKA_OPTION_SSL_KEY_PASSWORD", "keypass"),
        ])
        .expect("valid");
        let shown = format!("{p:?}");
        assert!(
            !shown.contains("s3cret") && !shown.contains("keypass"),
            "{shown}"
        );
        assert!(shown.contains("orders"), "{shown}");
    }

    #[test]
    fn inconsistent_security_settings_name_their_variable() {
        let err = props(&[("KAFKA_SECURITY_PROTOCOL", "tls")]).expect_err("bad protocol");
        assert!(
            err.to_string().starts_with("KAFKA_SECURITY_PROTOCOL="),
            "{err}"
        );
        let err = props(&[("KAFKA_SECURITY_PROTOCOL", "sasl_ssl")]).expect_err("no mechanism");
        assert!(err.to_string().contains("KAFKA_SASL_MECHANISM"), "{err}");
        let err = props(&[("KAFKA_SASL_PASSWORD", "s3cret")]).expect_err("sasl off");
        assert!(err.to_string().contains("KAFKA_SASL_PASSWORD"), "{err}");
        assert!(!err.to_string().contains("s3cret"), "{err}");
        let err = props(&[("KAFKA_SSL_CA_LOCATION", "/nonexistent/ca.pem")]).expect_err("no CA");
        assert!(err.to_string().contains("KAFKA_SSL_CA_LOCATION"), "{err}");
    }

    #[test]
    fn a_passthrough_cannot_change_what_the_guarantees_rest_on() {
        let err = props(&[("KAFKA_OPTION_ENABLE_AUTO_OFFSET_STORE", "true")]).expect_err("managed");
        assert!(
            err.to_string()
                .contains("KAFKA_OPTION_ENABLE_AUTO_OFFSET_STORE"),
            "{err}"
        );
        assert_eq!(props(&[]).expect("empty"), ClientProperties::default());
    }

    #[test]
    fn incremental_rebalancing_and_other_guarantee_breaking_options_are_refused() {
        for (var, value) in [
            (
                "KAFKA_OPTION_PARTITION_ASSIGNMENT_STRATEGY",
                "cooperative-sticky",
            ),
            ("KAFKA_OPTION_GROUP_PROTOCOL", "consumer"),
            ("KAFKA_OPTION_GROUP_INSTANCE_ID", "orders-1"),
            ("KAFKA_OPTION_ISOLATION_LEVEL", "read_uncommitted"),
            ("KAFKA_OPTION_METADATA_BROKER_LIST", "elsewhere:9092"),
            ("KAFKA_OPTION_MESSAGE_TIMEOUT_MS", "600000"),
        ] {
            let err = props(&[(var, value)]).expect_err(var);
            let shown = err.to_string();
            assert!(shown.starts_with(var), "{shown}");
            assert!(shown.contains("cannot be set"), "{shown}");
        }
        // Tuning that leaves the guarantees alone still passes.
        let p = props(&[("KAFKA_OPTION_FETCH_MIN_BYTES", "1")]).expect("tuning");
        assert_eq!(get(&p, "fetch.min.bytes"), Some("1"));
    }
}
