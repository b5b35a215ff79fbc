//! Shared support for the integration tests: a fresh database and topic per test, the real
//! service binary started as a child process on port 0, the emulator, and database checks.
//!
//! The tests need the real PostgreSQL and Kafka that `scripts/test` starts; it exports
//! `TEST_ADMIN_DATABASE_URL`, `TEST_KAFKA_BROKERS` and `TEST_INFRA_DIR`.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use diesel::sql_query;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};

mod checks;
mod cluster;
mod private_pg;
mod service;
mod stream;

pub use checks::*;
pub use cluster::*;
pub use private_pg::*;
pub use service::*;
pub use stream::*;

pub fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the integration tests through scripts/test, which starts PostgreSQL and Kafka")
    })
}

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The reference order (`tests/fixtures/model.json`).
pub fn model() -> serde_json::Value {
    let path = repo_root().join("tests/fixtures/model.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("model.json parses")
}

fn unique(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .subsec_nanos();
    format!("{name}_{}_{nanos:x}", std::process::id())
}

/// A free TCP port for a server a test starts itself (a PostgreSQL of its own), below the
/// kernel's ephemeral range. A port from `bind(":0")` lies inside that range: a client
/// retrying while that server is down can be given the same port as its source port and
/// connect to itself (TCP simultaneous open), and then holds the port so the server cannot
/// start there again. Ports are handed out from 30000 up to the range's start, each once
/// per test binary, after a check that nothing listens there.
pub fn server_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let (low, high) = (30000u16, ephemeral_low().clamp(30001, 32768));
    let span = u32::from(high - low);
    // Test binaries running at once start at different offsets.
    let start = std::process::id() % span;
    for _ in 0..span {
        let offset = (start + NEXT.fetch_add(1, Ordering::Relaxed)) % span;
        let port = low + u16::try_from(offset).expect("offset < span <= u16::MAX");
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in {low}..{high}");
}

/// The first port of the kernel's ephemeral range (Linux's default: 32768).
fn ephemeral_low() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768)
}

#[test]
fn server_ports_lie_below_the_ephemeral_range_and_are_not_handed_out_twice() {
    let ports: Vec<u16> = (0..20).map(|_| server_port()).collect();
    for port in &ports {
        assert!(
            (30000..ephemeral_low()).contains(port),
            "{port} is outside 30000..{}",
            ephemeral_low()
        );
    }
    let distinct: std::collections::HashSet<_> = ports.iter().collect();
    assert_eq!(
        distinct.len(),
        ports.len(),
        "a port handed out twice: {ports:?}"
    );
}

/// Tests that stop or kill the shared PostgreSQL or Kafka hold this for writing; the others
/// hold it for reading, so they never run while a server is down on purpose.
static INFRA: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

/// Held for the test's lifetime, never read.
struct InfraGuard {
    _shared: Option<tokio::sync::RwLockReadGuard<'static, ()>>,
    _exclusive: Option<tokio::sync::RwLockWriteGuard<'static, ()>>,
}

/// A test's own database, topic and consumer group.
pub struct TestEnv {
    pub name: String,
    /// This test's database (dropped with the `TestEnv`, kept if the test failed).
    pub database: String,
    pub database_url: String,
    pub brokers: String,
    pub topic: String,
    pub dlq_topic: String,
    pub group: String,
    pub infra_dir: PathBuf,
    pub log_dir: PathBuf,
    /// Where the database is dropped from at the end (a superuser's URL).
    admin_url: String,
    _infra: InfraGuard,
}

/// Which of its topics a test creates before it starts (the broker never auto-creates).
#[derive(Clone, Copy)]
pub struct Topics {
    pub orders: bool,
    pub dlq: bool,
}

const ALL_TOPICS: Topics = Topics {
    orders: true,
    dlq: true,
};

impl TestEnv {
    pub async fn new(name: &str) -> Self {
        Self::with_topics(name, ALL_TOPICS).await
    }

    /// For a test that stops or kills the shared servers: no other test runs meanwhile.
    pub async fn exclusive(name: &str) -> Self {
        let guard = InfraGuard {
            _shared: None,
            _exclusive: Some(INFRA.write().await),
        };
        Self::build(name, ALL_TOPICS, guard).await
    }

    pub async fn with_topics(name: &str, topics: Topics) -> Self {
        let guard = InfraGuard {
            _shared: Some(INFRA.read().await),
            _exclusive: None,
        };
        Self::build(name, topics, guard).await
    }

    async fn build(name: &str, topics: Topics, guard: InfraGuard) -> Self {
        let id = unique(name);
        let admin_url = env("TEST_ADMIN_DATABASE_URL");
        let brokers = env("TEST_KAFKA_BROKERS");
        let infra_dir = PathBuf::from(env("TEST_INFRA_DIR"));
        let mut admin = AsyncPgConnection::establish(&admin_url)
            .await
            .expect("connect as admin");
        let db = format!("t_{id}").to_lowercase();
        sql_query(format!("CREATE DATABASE \"{db}\" OWNER orders_app"))
            .execute(&mut admin)
            .await
            .expect("create test database");
        let database_url = admin_url
            .replace("postgres:postgres@", "orders_app:orders_app@")
            .rsplit_once('/')
            .map(|(base, _)| format!("{base}/{db}"))
            .expect("url has a path");
        let topic = format!("orders_{id}");
        let dlq_topic = format!("{topic}.dlq");
        let mut wanted = Vec::new();
        if topics.orders {
            wanted.push((topic.as_str(), 6));
        }
        if topics.dlq {
            wanted.push((dlq_topic.as_str(), 1));
        }
        if !wanted.is_empty() {
            create_topics(&brokers, &wanted).await;
        }
        let log_dir = repo_root().join("target/test-logs");
        std::fs::create_dir_all(&log_dir).expect("log dir");
        Self {
            name: id.clone(),
            database: db,
            database_url,
            brokers,
            topic,
            dlq_topic,
            group: format!("group_{id}"),
            infra_dir,
            log_dir,
            admin_url,
            _infra: guard,
        }
    }

    /// The service's environment for this test.
    pub fn service_env(&self) -> Vec<(String, String)> {
        [
            ("DATABASE_URL", self.database_url.as_str()),
            ("KAFKA_BROKERS", &self.brokers),
            ("KAFKA_TOPIC", &self.topic),
            ("KAFKA_DLQ_TOPIC", &self.dlq_topic),
            ("KAFKA_GROUP_ID", &self.group),
            ("KAFKA_SESSION_TIMEOUT_MS", "6000"),
            ("HTTP_ADDR", "127.0.0.1:0"),
            ("ADMIN_ADDR", "127.0.0.1:0"),
            ("SHUTDOWN_TIMEOUT_MS", "10000"),
            ("DB_RETRY_MAX_BACKOFF_MS", "500"),
            ("RUST_LOG", "info,librdkafka=warn,rdkafka=warn"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    pub async fn db(&self) -> AsyncPgConnection {
        AsyncPgConnection::establish(&self.database_url)
            .await
            .expect("connect to the test database")
    }

    /// Produces raw messages (key, payload) synchronously; returns where each landed.
    pub async fn produce(&self, messages: &[(&str, Vec<u8>)]) -> Vec<(i32, i64)> {
        let mut positions = Vec::new();
        use rdkafka::producer::{FutureProducer, FutureRecord};
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", &self.brokers)
            .set("acks", "all")
            .create()
            .expect("producer");
        for (key, payload) in messages {
            let position = producer
                .send(
                    FutureRecord::to(&self.topic)
                        .key(*key)
                        .payload(payload.as_slice()),
                    Duration::from_secs(10),
                )
                .await
                .expect("delivered");
            positions.push((position.partition, position.offset));
        }
        positions
    }

    /// Produces the reference order under each of these ids (key = id); returns positions.
    pub async fn produce_orders(&self, uids: impl IntoIterator<Item = String>) -> Vec<(i32, i64)> {
        self.produce_each(uids, order_json).await
    }

    /// Produces `payload(key)` under each key; returns positions.
    pub async fn produce_each(
        &self,
        keys: impl IntoIterator<Item = String>,
        payload: impl Fn(&str) -> Vec<u8>,
    ) -> Vec<(i32, i64)> {
        let messages: Vec<(String, Vec<u8>)> = keys
            .into_iter()
            .map(|key| {
                let bytes = payload(&key);
                (key, bytes)
            })
            .collect();
        let refs: Vec<(&str, Vec<u8>)> = messages
            .iter()
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect();
        self.produce(&refs).await
    }

    /// `orders-service migrate` against this test's database.
    pub fn migrate(&self) {
        let out = run_migrate(&self.database_url, None);
        assert!(
            out.status.success(),
            "migrate failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Runs SQL statements on this test's database as its owner.
    pub async fn sql(&self, statements: &str) {
        use diesel_async::SimpleAsyncConnection;
        self.db()
            .await
            .batch_execute(statements)
            .await
            .unwrap_or_else(|e| panic!("{statements}: {e}"));
    }

    pub fn path(&self, file: &str) -> PathBuf {
        self.log_dir.join(format!("{}-{file}", self.name))
    }

    /// Committed offsets of this test's group, per partition (next offset to read).
    pub fn committed(&self) -> BTreeMap<i32, i64> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.brokers)
            .set("group.id", &self.group)
            .create()
            .expect("consumer");
        let mut tpl = TopicPartitionList::new();
        for p in 0..6 {
            tpl.add_partition(&self.topic, p);
        }
        let committed = consumer
            .committed_offsets(tpl, Duration::from_secs(10))
            .expect("committed offsets");
        committed
            .elements()
            .iter()
            .filter_map(|e| match e.offset() {
                Offset::Offset(o) => Some((e.partition(), o)),
                _ => None,
            })
            .collect()
    }

    /// High watermarks of the topic, per partition.
    pub fn end_offsets(&self) -> BTreeMap<i32, i64> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.brokers)
            .create()
            .expect("consumer");
        (0..6)
            .map(|p| {
                let (_, high) = consumer
                    .fetch_watermarks(&self.topic, p, Duration::from_secs(10))
                    .expect("watermarks");
                (p, high)
            })
            .collect()
    }

    /// Every message of the DLQ topic: (key, reason header, payload).
    pub fn read_dlq(&self, expected: usize) -> Vec<(Option<String>, HashMap<String, String>)> {
        use rdkafka::message::{Headers, Message};
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.brokers)
            .set("group.id", format!("{}_dlq_reader", self.group))
            .set("auto.offset.reset", "earliest")
            .create()
            .expect("consumer");
        consumer.subscribe(&[&self.dlq_topic]).expect("subscribe");
        let mut out = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while out.len() < expected && Instant::now() < deadline {
            if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
                let mut headers = HashMap::new();
                if let Some(h) = m.headers() {
                    for header in h.iter() {
                        headers.insert(
                            header.key.to_string(),
                            String::from_utf8_lossy(header.value.unwrap_or_default()).into_owned(),
                        );
                    }
                }
                out.push((
                    m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
                    headers,
                ));
            }
        }
        out
    }
}

/// `orders-service migrate` with these URLs and nothing else in its environment; run outside
/// the repository, whose .env would add the demo's MIGRATION_DATABASE_URL.
pub fn run_migrate(database_url: &str, migration_url: Option<&str>) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_orders-service"));
    cmd.arg("migrate")
        .current_dir(std::env::temp_dir())
        .env_clear()
        .env("DATABASE_URL", database_url);
    if let Some(url) = migration_url {
        cmd.env("MIGRATION_DATABASE_URL", url);
    }
    cmd.output().expect("run migrate")
}

/// The reference order with another id (and so other content).
pub fn order_json(uid: &str) -> Vec<u8> {
    let mut v = model();
    v["order_uid"] = uid.into();
    serde_json::to_vec(&v).expect("json")
}

/// A valid order with `items` copies of the reference order's item (money adjusted).
pub fn order_with_items(uid: &str, items: usize) -> Vec<u8> {
    let mut v = model();
    v["order_uid"] = uid.into();
    let item = v["items"][0].clone();
    v["items"] = serde_json::Value::Array(vec![item; items]);
    let goods = 317 * items as i64;
    v["payment"]["goods_total"] = goods.into();
    v["payment"]["amount"] = (goods + 1500).into();
    serde_json::to_vec(&v).expect("json")
}

pub async fn create_topics(brokers: &str, topics: &[(&str, i32)]) {
    create_topics_replicated(brokers, topics, 1, &[]).await
}

/// Creates `topics` (name, partitions) with `replication` replicas each and the topic
/// `configs`; panics naming the topic the broker refused.
pub async fn create_topics_replicated(
    brokers: &str,
    topics: &[(&str, i32)],
    replication: i32,
    configs: &[(&str, &str)],
) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .expect("admin client");
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|(name, partitions)| {
            configs.iter().fold(
                NewTopic::new(name, *partitions, TopicReplication::Fixed(replication)),
                |topic, (key, value)| topic.set(key, value),
            )
        })
        .collect();
    let results = admin
        .create_topics(
            &new,
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
        )
        .await
        .expect("create topics");
    for r in results {
        if let Err((topic, e)) = r {
            panic!("create topic {topic}: {e}");
        }
    }
}

impl Drop for TestEnv {
    /// Drops the test's database and topics, so a run of the suite leaves nothing behind;
    /// a failed test keeps them for inspection (and says so).
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "{}: kept database {} and topics {}, {} for inspection",
                self.name, self.database, self.topic, self.dlq_topic
            );
            return;
        }
        let admin_url = self.admin_url.clone();
        let (database, brokers) = (self.database.clone(), self.brokers.clone());
        let topics = [self.topic.clone(), self.dlq_topic.clone()];
        // Drop runs inside the test's runtime, which cannot be blocked on: clean up on a
        // thread with a runtime of its own.
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async {
                if let Ok(mut admin) = AsyncPgConnection::establish(&admin_url).await {
                    let drop = format!("DROP DATABASE IF EXISTS \"{database}\" WITH (FORCE)");
                    if let Err(e) = sql_query(drop).execute(&mut admin).await {
                        eprintln!("could not drop the test database {database}: {e}");
                    }
                }
                let admin: Result<AdminClient<DefaultClientContext>, _> = ClientConfig::new()
                    .set("bootstrap.servers", &brokers)
                    .create();
                if let Ok(admin) = admin {
                    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
                    let options =
                        AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
                    // A topic the test never created is fine: nothing to delete.
                    let _ = admin.delete_topics(&names, &options).await;
                }
            });
        });
        let _ = cleanup.join();
    }
}

/// Polls `check` until it returns true or `timeout` passes; returns whether it did.
pub async fn eventually<F, Fut>(timeout: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
