//! Secured transports: a PostgreSQL that accepts TLS only (`sslmode=verify-full` against a CA
//! the test made), Kafka over SSL and over SASL_SSL with SCRAM — orders consumed, stored and
//! dead-lettered over each, wrong credentials refused loudly and never logged.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::helpers::*;

/// A private TLS-only PostgreSQL cluster, stopped when dropped.
struct TlsPostgres(PrivatePostgres);

impl std::ops::Deref for TlsPostgres {
    type Target = PrivatePostgres;
    fn deref(&self) -> &PrivatePostgres {
        &self.0
    }
}

impl TlsPostgres {
    fn start(dir: PathBuf) -> Self {
        Self(PrivatePostgres::start(dir, &["--tls"]))
    }

    fn ca(&self) -> String {
        let out = Command::new(repo_root().join("scripts/pg"))
            .args(["ca", self.dir.to_str().expect("path")])
            .output()
            .expect("scripts/pg ca");
        String::from_utf8(out.stdout)
            .expect("utf-8")
            .trim()
            .to_string()
    }

    /// `user`'s URL with `verify-full` against `ca`, by host name (the certificate names
    /// `localhost` and 127.0.0.1).
    fn url(&self, user: &str, ca: &str) -> String {
        format!(
            "postgres://{user}:{user}@localhost:{}/orders?sslmode=verify-full&sslrootcert={ca}",
            self.port
        )
    }

    fn psql(&self, sql: &str) -> String {
        self.0.psql("orders", sql)
    }
}

impl TlsPostgres {
    /// Where the server's files live (`scripts/pg` may keep them outside DIR, see its header).
    fn home(&self) -> PathBuf {
        std::fs::read_link(self.dir.join("home")).unwrap_or_else(|_| self.dir.clone())
    }

    /// `sql` through psql — libpq itself — as the superuser, by host name, with
    /// `sslmode=verify-full` against `root`: what PostgreSQL's documentation does.
    fn psql_verified(&self, root: &Path, sql: &str) -> Result<String, String> {
        let url = format!(
            "postgres://postgres:postgres@localhost:{}/orders?sslmode=verify-full&sslrootcert={}",
            self.port,
            root.display()
        );
        let out = Command::new("psql")
            .args([url.as_str(), "-X", "-tAc", sql])
            .env("PGCONNECT_TIMEOUT", "10")
            .output()
            .expect("psql");
        match out.status.success() {
            true => Ok(String::from_utf8_lossy(&out.stdout).trim().to_string()),
            false => Err(String::from_utf8_lossy(&out.stderr).into_owned()),
        }
    }

    /// Makes the server present `name`.crt (key `name`.key, both in `certs`) from its next
    /// connection on; `current` is the self-signed certificate it presents now (`None`: the
    /// one `scripts/pg` made, signed by its CA).
    fn present(&self, certs: &Path, name: &str, current: Option<&Path>) {
        let set = format!(
            "ALTER SYSTEM SET ssl_cert_file = '{0}/{name}.crt'; \
             ALTER SYSTEM SET ssl_key_file = '{0}/{name}.key'",
            certs.display()
        );
        let verified = |sql: &str| match current {
            Some(root) => self.psql_verified(root, sql).expect("psql"),
            None => self.psql(sql),
        };
        for sql in set.split("; ") {
            verified(sql);
        }
        verified("SELECT pg_reload_conf()");
    }
}

/// Makes, in `dir`, the certificates of PostgreSQL's documentation's TLS set-up (section
/// "Creating Certificates"): `server` (`openssl req -new -x509 -nodes -subj "/CN=localhost"`,
/// a self-signed CA certificate), `other` (the same, another key), and `expired` (self-signed,
/// CN=localhost, valid in January 2020 only). Keys are the postgres user's, mode 0600.
fn self_signed_certificates(dir: &Path) {
    std::fs::create_dir_all(dir).expect("dir");
    let script = r#"
set -e
for name in server other; do
  openssl req -new -x509 -days 365 -nodes -subj "/CN=localhost" \
    -out "$name.crt" -keyout "$name.key"
done
mkdir -p ca && touch ca/index.txt && echo 01 > ca/serial
cat > ca/ca.cnf <<'CNF'
[ca]
default_ca = self
[self]
dir = ca
database = ca/index.txt
new_certs_dir = ca
serial = ca/serial
default_md = sha256
policy = any
[any]
commonName = supplied
[v3]
basicConstraints = critical, CA:TRUE
CNF
openssl req -new -nodes -subj "/CN=localhost" -keyout expired.key -out ca/expired.csr
openssl ca -batch -notext -config ca/ca.cnf -extensions v3 -selfsign -keyfile expired.key \
  -in ca/expired.csr -out expired.crt -startdate 20200101000000Z -enddate 20200131000000Z
chmod 600 ./*.key
chown -R postgres:postgres . 2>/dev/null || true
"#;
    let out = Command::new("sh")
        .args(["-c", script])
        .current_dir(dir)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn postgres_over_tls_with_verify_full() {
    let env = TestEnv::new("pgtls").await;
    let dir = env.path("pgtls");
    let _ = std::fs::remove_dir_all(&dir);
    let pg = TlsPostgres::start(dir);
    let ca = pg.ca();
    assert!(Path::new(&ca).is_file(), "CA at {ca}");

    // A server certificate from another CA is refused, and said so.
    let other_ca = crate::helpers::env("TEST_KAFKA_CA_LOCATION");
    let mut wrong = Service::spawn(
        &env,
        &[
            ("DATABASE_URL", &pg.url("orders_app", &other_ca)),
            ("MIGRATION_DATABASE_URL", &pg.url("orders_owner", &other_ca)),
        ],
        Duration::from_secs(30),
    )
    .expect("listens");
    let refused = eventually(Duration::from_secs(20), || {
        let log = wrong.log_text();
        async move { log.contains("waiting for the database") && log.contains("ertificate") }
    })
    .await;
    assert!(refused, "log:\n{}", wrong.log_text());
    assert!(
        wrong.wait_ready(Duration::from_secs(1)).is_err(),
        "ready without a database"
    );
    let log = wrong.log_text();
    assert!(
        !log.contains("orders_app:orders_app@"),
        "password logged:\n{log}"
    );

    let service = Service::start(
        &env,
        &[
            ("DATABASE_URL", &pg.url("orders_app", &ca)),
            ("MIGRATION_DATABASE_URL", &pg.url("orders_owner", &ca)),
        ],
    );
    env.produce_orders((0..20).map(|i| format!("tls-{i}")))
        .await;
    env.produce(&[("bad", b"{".to_vec())]).await;
    let stored = eventually(Duration::from_secs(30), || async {
        pg.psql(
            "SELECT (SELECT count(*) FROM orders) || '/' || (SELECT count(*) FROM dead_letters)",
        ) == "20/1"
    })
    .await;
    assert!(stored, "log:\n{}", service.log_text());
    // Every connection of the service is encrypted (the server also refuses plain ones).
    let plain = pg.psql(
        "SELECT count(*) FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) \
         WHERE a.usename = 'orders_app' AND NOT s.ssl",
    );
    let encrypted = pg.psql(
        "SELECT count(*) FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) \
         WHERE a.usename = 'orders_app' AND s.ssl",
    );
    assert_eq!(plain, "0");
    assert!(encrypted.parse::<u32>().expect("count") >= 1, "{encrypted}");
    // `verify-ca` checks the chain but not the name; `verify-full` both: reached by an
    // address under a name the certificate does not carry, one connects, the other refuses.
    let other_name = |mode: &str| {
        format!(
            "postgres://orders_owner:orders_owner@not-in-the-certificate.test:{}/orders?hostaddr=127.0.0.1&sslmode={mode}&sslrootcert={ca}",
            pg.port
        )
    };
    for (mode, connects) in [
        ("verify-ca", true),
        ("verify-full", false),
        ("require", true),
    ] {
        let out = run_migrate(&pg.url("orders_app", &ca), Some(&other_name(mode)));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.success(), connects, "{mode}: {stderr}");
        if !connects {
            assert!(stderr.contains("not valid for name"), "{mode}: {stderr}");
        }
    }
    // A miss is read back over TLS too.
    let restarted = {
        drop(service);
        Service::start(
            &env,
            &[
                ("DATABASE_URL", &pg.url("orders_app", &ca)),
                ("CACHE_MAX_BYTES", "0"),
            ],
        )
    };
    let (status, order) = get_json(&restarted, "/order/tls-7").await;
    assert_eq!(status, 200, "{order}");
    assert_eq!(order["order_uid"], "tls-7");
}

/// TLS as PostgreSQL's documentation sets it up: the server's self-signed certificate is the
/// client's `sslrootcert`. libpq (psql) accepts it; so must the service, with libpq's
/// checks. Catches webpki's refusal of a CA certificate as the server's
/// (`CaUsedAsEndEntity`: the service waited for ever), and an exact-match rule that skips
/// the checks that remain: another self-signed certificate under the same name, the host
/// name under `verify-full`, the validity dates. The chain case is
/// `postgres_over_tls_with_verify_full`.
#[tokio::test]
async fn postgres_with_the_documentations_self_signed_certificate() {
    let env = TestEnv::new("pgselfsigned").await;
    let dir = env.path("pgselfsigned");
    let _ = std::fs::remove_dir_all(&dir);
    let pg = TlsPostgres::start(dir);
    let certs = pg.home().join("selfsigned");
    self_signed_certificates(&certs);
    let cert = |name: &str| certs.join(format!("{name}.crt"));
    pg.present(&certs, "server", None);
    pg.psql_verified(&cert("server"), "SELECT 1")
        .expect("psql accepts the self-signed certificate");

    let url = |user: &str, host: &str, mode: &str, root: &str| {
        format!(
            "postgres://{user}:{user}@{host}:{}/orders?hostaddr=127.0.0.1&sslmode={mode}&sslrootcert={}",
            pg.port,
            cert(root).display()
        )
    };
    let owner = |host: &str, mode: &str, root: &str| url("orders_owner", host, mode, root);
    for (host, mode, root, refused) in [
        ("localhost", "verify-full", "server", None),
        ("localhost", "verify-ca", "server", None),
        ("not-in-the-certificate.test", "verify-ca", "server", None),
        ("not-in-the-certificate.test", "require", "server", None),
        (
            "not-in-the-certificate.test",
            "verify-full",
            "server",
            Some("not valid for name"),
        ),
        ("localhost", "verify-full", "other", Some("ertificate")),
        ("localhost", "verify-ca", "other", Some("ertificate")),
    ] {
        let out = run_migrate(
            &url("orders_app", "localhost", "verify-full", "server"),
            Some(&owner(host, mode, root)),
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        match refused {
            None => assert!(out.status.success(), "{host} {mode} {root}: {stderr}"),
            Some(why) => {
                assert!(!out.status.success(), "{host} {mode} {root} connected");
                assert!(stderr.contains(why), "{host} {mode} {root}: {stderr}");
            }
        }
    }

    // The service itself, over it: orders consumed and stored.
    let service = Service::start(
        &env,
        &[
            (
                "DATABASE_URL",
                &url("orders_app", "localhost", "verify-full", "server"),
            ),
            (
                "MIGRATION_DATABASE_URL",
                &owner("localhost", "verify-full", "server"),
            ),
        ],
    );
    env.produce_orders((0..10).map(|i| format!("selfsigned-{i}")))
        .await;
    let stored = eventually(Duration::from_secs(30), || async {
        pg.psql_verified(&cert("server"), "SELECT count(*) FROM orders")
            .is_ok_and(|n| n == "10")
    })
    .await;
    assert!(stored, "log:\n{}", service.log_text());
    drop(service);

    // Out of its validity dates: refused by libpq, and by the service, saying why.
    pg.present(&certs, "expired", Some(&cert("server")));
    // (libpq says only "certificate verify failed"; the server's log has "certificate expired".)
    pg.psql_verified(&cert("expired"), "SELECT 1")
        .expect_err("psql refuses an expired certificate");
    let out = run_migrate(
        &url("orders_app", "localhost", "verify-full", "expired"),
        Some(&owner("localhost", "verify-ca", "expired")),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "connected with an expired certificate"
    );
    assert!(stderr.contains("xpired"), "{stderr}");
}

/// The service's Kafka settings for one of the broker's secured listeners.
fn secured(protocol: &str) -> Vec<(&'static str, String)> {
    let mut vars = vec![
        ("KAFKA_SECURITY_PROTOCOL", protocol.to_string()),
        ("KAFKA_SSL_CA_LOCATION", env("TEST_KAFKA_CA_LOCATION")),
        (
            "KAFKA_OPTION_SSL_ENDPOINT_IDENTIFICATION_ALGORITHM",
            "https".to_string(),
        ),
    ];
    if protocol == "sasl_ssl" {
        vars.push(("KAFKA_BROKERS", env("TEST_KAFKA_SASL_BROKERS")));
        vars.push(("KAFKA_SASL_MECHANISM", env("TEST_KAFKA_SASL_MECHANISM")));
        vars.push(("KAFKA_SASL_USERNAME", env("TEST_KAFKA_SASL_USERNAME")));
        vars.push(("KAFKA_SASL_PASSWORD", env("TEST_KAFKA_SASL_PASSWORD")));
    } else {
        vars.push(("KAFKA_BROKERS", env("TEST_KAFKA_SSL_BROKERS")));
    }
    vars
}

async fn consumes_over(protocol: &str) {
    let env = TestEnv::new(protocol).await;
    let vars = secured(protocol);
    let extra: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let service = Service::start(&env, &extra);
    env.produce_orders((0..20).map(|i| format!("{protocol}-{i}")))
        .await;
    env.produce(&[("bad", b"{".to_vec())]).await;
    let stored = eventually(Duration::from_secs(30), || async {
        count(&mut env.db().await, "SELECT count(*) AS n FROM orders").await == 20
    })
    .await;
    assert!(stored, "log:\n{}", service.log_text());
    // The DLQ producer uses the same settings: the dead letter reaches the topic.
    let letters = env.read_dlq(1);
    assert_eq!(letters.len(), 1, "log:\n{}", service.log_text());
    let (_, health) = get_json(&service, "/health/ready").await;
    assert_eq!(health["kafka"], "up", "{health}");
    assert_eq!(health["dlq"], "ok", "{health}");
}

#[tokio::test]
async fn kafka_over_ssl() {
    consumes_over("ssl").await;
}

#[tokio::test]
async fn kafka_over_sasl_ssl_with_scram() {
    consumes_over("sasl_ssl").await;
}

#[tokio::test]
async fn a_wrong_sasl_password_is_reported_and_never_logged() {
    let env = TestEnv::new("saslwrong").await;
    const CANARY: &str = "wrong-password-canary-7f3a";
    let mut vars = secured("sasl_ssl");
    for (name, value) in vars.iter_mut() {
        if *name == "KAFKA_SASL_PASSWORD" {
            *value = CANARY.to_string();
        }
    }
    let extra: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut service = Service::spawn(&env, &extra, Duration::from_secs(30)).expect("listens");
    let reported = eventually(Duration::from_secs(30), || {
        let log = service.log_text();
        async move { log.contains("uthentication") }
    })
    .await;
    assert!(reported, "log:\n{}", service.log_text());
    let _ = service.wait_ready(Duration::from_secs(20));
    let (status, health) = get_json(&service, "/health/ready").await;
    assert_eq!(status, 503, "{health}");
    assert_eq!(health["kafka"], "down", "{health}");
    let log = service.log_text();
    assert!(
        !log.contains(CANARY),
        "the SASL password is in the log:\n{log}"
    );
}
