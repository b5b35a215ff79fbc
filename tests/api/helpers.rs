//! Shared support for the integration tests: a fresh database and topic per test, the real
//! service binary started as a child process on port 0, the emulator, and database checks.
//!
//! The tests need the real PostgreSQL and Kafka that `scripts/test` starts; it exports
//! `TEST_ADMIN_DATABASE_URL`, `TEST_KAFKA_BROKERS` and `TEST_INFRA_DIR`.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use diesel::sql_types::{BigInt, Text};
use diesel::{QueryableByName, sql_query};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};

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
    pub database_url: String,
    pub brokers: String,
    pub topic: String,
    pub dlq_topic: String,
    pub group: String,
    pub infra_dir: PathBuf,
    pub log_dir: PathBuf,
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
            database_url,
            brokers,
            topic,
            dlq_topic,
            group: format!("group_{id}"),
            infra_dir,
            log_dir,
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
        let messages: Vec<(String, Vec<u8>)> = uids
            .into_iter()
            .map(|uid| {
                let json = order_json(&uid);
                (uid, json)
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
        let out = Command::new(env!("CARGO_BIN_EXE_orders-service"))
            .arg("migrate")
            .env_clear()
            .env("DATABASE_URL", &self.database_url)
            .output()
            .expect("run migrate");
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

/// GETs `url` and returns status and JSON body.
pub async fn get_json(url: &str) -> (u16, serde_json::Value) {
    let response = http().get(url).send().await.expect("request");
    let status = response.status().as_u16();
    (
        status,
        response.json().await.unwrap_or(serde_json::Value::Null),
    )
}

/// The value of an unlabelled metric on `/metrics`, if exported.
pub async fn metric(service: &Service, name: &str) -> Option<f64> {
    let text = http()
        .get(service.url("/metrics"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

pub async fn create_topics(brokers: &str, topics: &[(&str, i32)]) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .expect("admin client");
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|(name, partitions)| NewTopic::new(name, *partitions, TopicReplication::Fixed(1)))
        .collect();
    let results = admin
        .create_topics(
            &new,
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(20))),
        )
        .await
        .expect("create topics");
    for r in results {
        if let Err((topic, e)) = r {
            panic!("create topic {topic}: {e}");
        }
    }
}

/// The service binary running as a child process.
pub struct Service {
    child: Child,
    pub base: String,
    pub log: PathBuf,
    stdout: mpsc::Receiver<String>,
}

impl Service {
    /// Starts the service and waits until it is ready (`orders-service ready` on stdout:
    /// database reached, migrations, warm-up and Kafka done).
    pub fn start(env: &TestEnv, extra: &[(&str, &str)]) -> Service {
        Self::try_start(env, extra, Duration::from_secs(60)).expect("service starts")
    }

    pub fn try_start(
        env: &TestEnv,
        extra: &[(&str, &str)],
        timeout: Duration,
    ) -> Result<Service, String> {
        let mut service = Self::spawn(env, extra, timeout)?;
        service.wait_ready(timeout)?;
        Ok(service)
    }

    /// Starts the service and returns once it listens (it answers `/health` from then on),
    /// without waiting for it to be ready.
    pub fn spawn(
        env: &TestEnv,
        extra: &[(&str, &str)],
        timeout: Duration,
    ) -> Result<Service, String> {
        let mut n = 0;
        let log = loop {
            let p = env.path(&format!("service-{n}.log"));
            if !p.exists() {
                break p;
            }
            n += 1;
        };
        let stderr = std::fs::File::create(&log).expect("log file");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_orders-service"));
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .current_dir(std::env::temp_dir())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr);
        for (k, v) in env.service_env() {
            cmd.env(k, v);
        }
        for (k, v) in extra {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().map_err(|e| e.to_string())?;
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut service = Service {
            child,
            base: String::new(),
            log,
            stdout: rx,
        };
        match service.wait_line("orders-service listening on ", timeout) {
            Ok(url) => {
                service.base = url;
                Ok(service)
            }
            Err(e) => Err(e),
        }
    }

    /// Waits for `orders-service ready` on stdout.
    pub fn wait_ready(&mut self, timeout: Duration) -> Result<(), String> {
        self.wait_line("orders-service ready", timeout).map(|_| ())
    }

    /// Waits for a stdout line starting with `prefix`; returns the rest of it.
    fn wait_line(&mut self, prefix: &str, timeout: Duration) -> Result<String, String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stdout.recv_timeout(left) {
                Ok(line) => {
                    if let Some(rest) = line.strip_prefix(prefix) {
                        return Ok(rest.to_string());
                    }
                }
                Err(_) => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    return Err(format!(
                        "service did not print {prefix:?} within {timeout:?}; log {}:\n{}",
                        self.log.display(),
                        std::fs::read_to_string(&self.log).unwrap_or_default()
                    ));
                }
            }
        }
    }

    /// Whether the process has exited (and with what).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL: the crash the service must survive.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM and wait for the exit, at most `timeout`.
    pub fn terminate(mut self, timeout: Duration) -> Option<ExitStatus> {
        signal(self.child.id(), "TERM");
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status();
}

/// Runs one of the infrastructure scripts (`pg stop DIR`, `kafka kill DIR` …).
pub fn infra(env: &TestEnv, script: &str, action: &str, component: &str) {
    let status = Command::new(repo_root().join("scripts").join(script))
        .arg(action)
        .arg(env.infra_dir.join(component))
        .stdout(Stdio::null())
        .status()
        .expect("run infra script");
    assert!(status.success(), "scripts/{script} {action} failed");
}

#[derive(QueryableByName, Debug)]
pub struct UidCount {
    #[diesel(sql_type = Text)]
    pub order_uid: String,
    #[diesel(sql_type = BigInt)]
    pub items: i64,
}

/// Every stored order with its item count.
pub async fn stored_orders(conn: &mut AsyncPgConnection) -> Vec<UidCount> {
    sql_query(
        "SELECT o.order_uid, count(i.position) AS items FROM orders o \
         LEFT JOIN items i ON i.order_id = o.id GROUP BY o.order_uid",
    )
    .load(conn)
    .await
    .expect("stored orders")
}

#[derive(QueryableByName, Debug)]
pub struct LetterRow {
    #[diesel(sql_type = diesel::sql_types::Nullable<Text>)]
    pub order_uid: Option<String>,
    #[diesel(sql_type = Text)]
    pub reason: String,
}

pub async fn dead_letters(conn: &mut AsyncPgConnection) -> Vec<LetterRow> {
    sql_query("SELECT order_uid, reason FROM dead_letters")
        .load(conn)
        .await
        .expect("dead letters")
}

pub async fn count(conn: &mut AsyncPgConnection, sql: &str) -> i64 {
    #[derive(QueryableByName)]
    struct N {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let rows: Vec<N> = sql_query(sql).load(conn).await.expect("count query");
    rows.into_iter().next().map_or(0, |r| r.n)
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

/// Reads an emulator output file of `first<TAB>second` lines.
fn read_pairs(path: &Path, shape: &str) -> Vec<(String, String)> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let (first, second) = l.split_once('\t').expect(shape);
            (first.to_string(), second.trim().to_string())
        })
        .collect()
}

/// Reads an emulator `--uids-out` file: uid → item count.
pub fn read_uids(path: &Path) -> HashMap<String, i64> {
    read_pairs(path, "uid<TAB>items")
        .into_iter()
        .map(|(uid, items)| (uid, items.parse().expect("item count")))
        .collect()
}

pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("http client")
}

/// Starts the emulator in the background (for faults injected while it produces).
pub fn spawn_emulator(env: &TestEnv, args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_emulator"))
        .args(["--brokers", &env.brokers, "--topic", &env.topic, "--quiet"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the emulator")
}

/// Waits for a background emulator and asserts it succeeded.
pub fn finish_emulator(child: Child) -> String {
    let out = child.wait_with_output().expect("emulator output");
    assert!(
        out.status.success(),
        "emulator failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Reads an emulator `--rejects-out` file: (uid or key, expected reason).
pub fn read_rejects(path: &Path) -> Vec<(String, String)> {
    read_pairs(path, "key<TAB>reason")
}

/// Waits until the group has committed the whole topic and returns the final counts.
pub async fn wait_until_drained(env: &TestEnv, timeout: Duration) -> bool {
    let end = env.end_offsets();
    eventually(timeout, || async {
        let committed = env.committed();
        end.iter()
            .all(|(p, high)| *high == 0 || committed.get(p) == Some(high))
    })
    .await
}

/// The checks every fault test ends with: the stored orders are exactly the valid orders
/// produced, each once, with their exact item counts, and no valid order was dead-lettered.
pub async fn assert_exactly_the_valid_orders_are_stored(env: &TestEnv, uids_file: &Path) {
    let expected = read_uids(uids_file);
    assert!(
        !expected.is_empty(),
        "the emulator reported no valid orders"
    );
    let mut conn = env.db().await;
    let stored = stored_orders(&mut conn).await;
    let stored_map: HashMap<String, i64> = stored
        .iter()
        .map(|r| (r.order_uid.clone(), r.items))
        .collect();
    assert_eq!(
        stored.len(),
        stored_map.len(),
        "an order_uid is stored twice"
    );
    let missing: Vec<&String> = expected
        .keys()
        .filter(|u| !stored_map.contains_key(*u))
        .collect();
    let unexpected: Vec<&String> = stored_map
        .keys()
        .filter(|u| !expected.contains_key(*u))
        .collect();
    assert!(
        missing.is_empty() && unexpected.is_empty(),
        "{} valid orders missing (e.g. {:?}), {} unexpected stored (e.g. {:?})",
        missing.len(),
        missing.iter().take(5).collect::<Vec<_>>(),
        unexpected.len(),
        unexpected.iter().take(5).collect::<Vec<_>>()
    );
    for (uid, items) in &expected {
        assert_eq!(stored_map[uid], *items, "item count of {uid}");
    }
    let wrongly_rejected: Vec<LetterRow> = dead_letters(&mut conn)
        .await
        .into_iter()
        .filter(|l| l.reason != "conflict")
        .filter(|l| {
            l.order_uid
                .as_ref()
                .is_some_and(|u| expected.contains_key(u))
        })
        .collect();
    assert!(
        wrongly_rejected.is_empty(),
        "valid orders dead-lettered: {wrongly_rejected:?}"
    );
}

/// The stored order ids, most recently stored first.
pub async fn uids_newest_first(env: &TestEnv) -> Vec<String> {
    #[derive(QueryableByName)]
    struct Uid {
        #[diesel(sql_type = Text)]
        order_uid: String,
    }
    let rows: Vec<Uid> = sql_query("SELECT order_uid FROM orders ORDER BY id DESC")
        .load(&mut env.db().await)
        .await
        .expect("stored order ids");
    rows.into_iter().map(|r| r.order_uid).collect()
}
