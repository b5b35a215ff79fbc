//! Kafka client properties beyond the broker list: security (`KAFKA_SECURITY_PROTOCOL`,
//! `KAFKA_SASL_*`, `KAFKA_SSL_CA_LOCATION`) and any other librdkafka property as
//! `KAFKA_OPTION_<NAME>` (`KAFKA_OPTION_SSL_KEY_LOCATION` → `ssl.key.location`). The same
//! properties go to the consumer, the DLQ producer and the emulator.

use std::fmt;

use super::ConfigError;

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

/// librdkafka properties, in the order they are applied.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ClientProperties(Vec<(String, String)>);

impl ClientProperties {
    /// Reads the security variables and the `KAFKA_OPTION_*` passthrough from `vars`.
    pub fn from_vars<'a>(
        vars: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, ConfigError> {
        let mut named = std::collections::HashMap::new();
        let mut options = Vec::new();
        for (name, value) in vars {
            let value = value.trim();
            if value.is_empty() {
                continue;
            }
            if let Some(option) = name.strip_prefix(OPTION_PREFIX) {
                options.push((name, option.to_ascii_lowercase().replace('_', "."), value));
            } else if name.starts_with("KAFKA_") {
                named.insert(name, value);
            }
        }
        let mut props = Vec::new();
        let protocol = named
            .get("KAFKA_SECURITY_PROTOCOL")
            .map(|p| p.to_ascii_lowercase());
        if let Some(protocol) = &protocol {
            if !["plaintext", "ssl", "sasl_plaintext", "sasl_ssl"].contains(&protocol.as_str()) {
                return Err(invalid(
                    "KAFKA_SECURITY_PROTOCOL",
                    protocol,
                    "must be plaintext, ssl, sasl_plaintext or sasl_ssl",
                ));
            }
            props.push(("security.protocol".to_string(), protocol.clone()));
        }
        let sasl = protocol.as_deref().is_some_and(|p| p.starts_with("sasl_"));
        match named.get("KAFKA_SASL_MECHANISM") {
            Some(mechanism) => {
                let mechanism = mechanism.to_ascii_uppercase();
                if !["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"]
                    .contains(&mechanism.as_str())
                {
                    return Err(invalid(
                        "KAFKA_SASL_MECHANISM",
                        &mechanism,
                        "must be PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER",
                    ));
                }
                if !sasl {
                    return Err(invalid(
                        "KAFKA_SASL_MECHANISM",
                        &mechanism,
                        "needs KAFKA_SECURITY_PROTOCOL=sasl_ssl or sasl_plaintext",
                    ));
                }
                props.push(("sasl.mechanism".to_string(), mechanism));
            }
            None if sasl => {
                return Err(ConfigError::Missing {
                    name: "KAFKA_SASL_MECHANISM",
                    example: "SCRAM-SHA-256",
                });
            }
            None => {}
        }
        for (var, property) in [
            ("KAFKA_SASL_USERNAME", "sasl.username"),
            ("KAFKA_SASL_PASSWORD", "sasl.password"),
        ] {
            if let Some(value) = named.get(var) {
                if !sasl {
                    return Err(invalid(
                        var,
                        if property == "sasl.password" {
                            "***"
                        } else {
                            value
                        },
                        "needs KAFKA_SECURITY_PROTOCOL=sasl_ssl or sasl_plaintext",
                    ));
                }
                props.push((property.to_string(), value.to_string()));
            }
        }
        if let Some(ca) = named.get("KAFKA_SSL_CA_LOCATION") {
            if !std::path::Path::new(ca).is_file() {
                return Err(invalid(
                    "KAFKA_SSL_CA_LOCATION",
                    ca,
                    "no such file (a PEM file of CA certificates)",
                ));
            }
            props.push(("ssl.ca.location".to_string(), ca.to_string()));
        }
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

    /// Reads the process environment (for the emulator, which has no `Config`).
    pub fn from_env() -> Result<Self, ConfigError> {
        let vars: Vec<(String, String)> = super::env_vars().collect();
        Self::from_vars(vars.iter().map(|(k, v)| (k.as_str(), v.as_str())))
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

fn invalid(name: &'static str, value: &str, reason: &str) -> ConfigError {
    ConfigError::Invalid {
        name,
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
        ClientProperties::from_vars(pairs.iter().copied())
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
