//! The cluster tests' side of `scripts/cluster`: a test's database and topics on the
//! replicated engines (3 Kafka brokers, a PostgreSQL primary and two standbys), the fault
//! commands, and what the tests measure with.
//!
//! `scripts/chaos cluster` starts the cluster with `scripts/cluster up --no-service` and
//! names it in `TEST_CLUSTER_DIR`; every test runs its own instances of the service. A cluster test
//! holds the infrastructure for itself (no other test runs meanwhile: on two cores, three
//! brokers, three PostgreSQL servers and the instances are load enough) and starts with
//! `scripts/cluster heal`, so a test that failed half-way leaves no fault behind for the next.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use diesel::sql_query;
use diesel_async::{AsyncConnection, AsyncPgConnection};
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use super::*;

/// One PostgreSQL node as `scripts/cluster pg-status` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgNode {
    pub n: u8,
    /// `primary`, `standby` or `stopped`.
    pub role: String,
    pub port: u16,
    /// As the primary reports it: `sync`, `async`, `disconnected`, `-` (the primary).
    pub sync_state: String,
}

/// The running cluster (`TEST_CLUSTER_DIR`).
pub struct Cluster {
    pub dir: PathBuf,
    vars: HashMap<String, String>,
}

impl Cluster {
    fn from_env() -> Self {
        let dir = PathBuf::from(std::env::var("TEST_CLUSTER_DIR").unwrap_or_else(|_| {
            panic!("TEST_CLUSTER_DIR is not set: the cluster tests run through scripts/chaos cluster, which starts scripts/cluster")
        }));
        let cluster = Self {
            dir,
            vars: HashMap::new(),
        };
        let vars = cluster
            .run(&["env"])
            .lines()
            .filter_map(|l| {
                let (k, v) = l.strip_prefix("export ")?.split_once('=')?;
                Some((k.to_string(), v.trim_matches('\'').to_string()))
            })
            .collect();
        Self { vars, ..cluster }
    }

    /// A variable of `scripts/cluster env` (`KAFKA_BROKERS`, `ADMIN_DATABASE_URL`, …).
    pub fn var(&self, name: &str) -> &str {
        self.vars
            .get(name)
            .unwrap_or_else(|| panic!("scripts/cluster env has no {name}"))
    }

    /// Runs `scripts/cluster ARGS` on this cluster; returns its stdout. Each fault command
    /// returns once the state it names is reached: what a test sequences on.
    pub fn run(&self, args: &[&str]) -> String {
        let started = Instant::now();
        let mut cmd = Command::new(repo_root().join("scripts/cluster"));
        cmd.env("CLUSTER_DIR", &self.dir)
            .env_remove("CLUSTER_PORT_BASE");
        if args == ["env"] {
            cmd.args(["env", self.dir.to_str().expect("path")]);
        } else {
            cmd.args(args);
        }
        let out = cmd.output().expect("run scripts/cluster");
        let stdout = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert!(
            out.status.success(),
            "scripts/cluster {} failed:\n{stdout}\n{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        if args != ["env"] && args != ["pg-status"] {
            eprintln!(
                "[{:>6} ms] scripts/cluster {}: {stdout}",
                started.elapsed().as_millis(),
                args.join(" ")
            );
        }
        stdout
    }

    pub fn pg_status(&self) -> Vec<PgNode> {
        self.run(&["pg-status"])
            .lines()
            .map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                PgNode {
                    n: f[0].trim_start_matches("pg").parse().expect("node number"),
                    role: f[1].to_string(),
                    port: f[2].parse().expect("port"),
                    sync_state: f[4].to_string(),
                }
            })
            .collect()
    }

    pub fn primary(&self) -> PgNode {
        self.pg_status()
            .into_iter()
            .find(|n| n.role == "primary")
            .expect("a running primary")
    }

    /// The standbys, the synchronous one first.
    pub fn standbys(&self) -> Vec<PgNode> {
        let mut standbys: Vec<PgNode> = self
            .pg_status()
            .into_iter()
            .filter(|n| n.role == "standby")
            .collect();
        standbys.sort_by_key(|n| (n.sync_state != "sync", n.n));
        standbys
    }

    /// A URL of `nodes` for database `db` as `user` (whose password is its name).
    pub fn pg_url(&self, user: &str, db: &str, nodes: &[&PgNode], attrs: &str) -> String {
        let hosts: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        format!("postgres://{user}:{user}@{}/{db}{attrs}", hosts.join(","))
    }

    /// SQL as the superuser on node `n`, database `db`; the unaligned result.
    pub fn psql(&self, n: u8, db: &str, sql: &str) -> String {
        let out = Command::new(repo_root().join("scripts/pg"))
            .args([
                "psql",
                self.dir.join(format!("pg{n}")).to_str().expect("path"),
            ])
            .args(["-d", db, "-tA", "-c", sql])
            .output()
            .expect("scripts/pg psql");
        assert!(
            out.status.success(),
            "pg{n}: {sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// The broker leading the most partitions of `topic`, and how many it leads.
    pub fn busiest_leader(&self, topic: &str) -> (u8, usize) {
        let mut led: BTreeMap<u8, usize> = BTreeMap::new();
        for line in self.run(&["leaders", topic]).lines() {
            if let Some(leader) = line
                .split_whitespace()
                .find_map(|f| f.strip_prefix("leader="))
                .and_then(|l| l.parse::<u8>().ok())
            {
                *led.entry(leader).or_default() += 1;
            }
        }
        led.into_iter()
            .max_by_key(|&(broker, n)| (n, std::cmp::Reverse(broker)))
            .expect("the topic has leaders")
    }
}

/// A test's database and topics on the cluster (6 partitions, replication factor 3,
/// `min.insync.replicas=2`, unclean leader election off), the cluster healed first.
pub async fn cluster_env(name: &str) -> (TestEnv, Cluster) {
    use diesel_async::RunQueryDsl;

    let guard = InfraGuard {
        _shared: None,
        _exclusive: Some(INFRA.write().await),
    };
    let cluster = Cluster::from_env();
    cluster.run(&["heal"]);
    let id = unique(name);
    let admin_url = cluster.var("ADMIN_DATABASE_URL").to_string();
    let mut admin = AsyncPgConnection::establish(&admin_url)
        .await
        .expect("connect to the cluster's primary as admin");
    let db = format!("t_{id}").to_lowercase();
    sql_query(format!("CREATE DATABASE \"{db}\" OWNER orders_app"))
        .execute(&mut admin)
        .await
        .expect("create test database");
    // Every node, the primary of the moment first (as an operator lists them): after a
    // failover of it, only the multi-host URL leads the service to the new one.
    let (primary, standbys) = (cluster.primary(), cluster.standbys());
    let all: Vec<&PgNode> = std::iter::once(&primary).chain(&standbys).collect();
    let database_url = cluster.pg_url("orders_app", &db, &all, "?target_session_attrs=read-write");
    let brokers = cluster.var("KAFKA_BROKERS").to_string();
    let topic = format!("orders_{id}");
    let dlq_topic = format!("{topic}.dlq");
    create_replicated_topics(&brokers, &[(topic.as_str(), 6), (dlq_topic.as_str(), 1)]).await;
    let log_dir = repo_root().join("target/test-logs");
    std::fs::create_dir_all(&log_dir).expect("log dir");
    let env = TestEnv {
        name: id.clone(),
        database: db,
        database_url,
        brokers,
        topic,
        dlq_topic,
        group: format!("group_{id}"),
        infra_dir: cluster.dir.clone(),
        log_dir,
        admin_url,
        _infra: guard,
    };
    (env, cluster)
}

async fn create_replicated_topics(brokers: &str, topics: &[(&str, i32)]) {
    create_topics_replicated(
        brokers,
        topics,
        3,
        &[
            ("min.insync.replicas", "2"),
            ("unclean.leader.election.enable", "false"),
        ],
    )
    .await
}

/// The service's environment on the cluster beyond `TestEnv::service_env`: the orders
/// topic's expected replication and, if given, the read standby(s).
pub fn cluster_service_env(read_url: Option<&str>) -> Vec<(&str, &str)> {
    let mut extra = vec![("KAFKA_EXPECTED_REPLICATION", "3")];
    if let Some(url) = read_url {
        extra.push(("READ_DATABASE_URL", url));
    }
    extra
}

/// `/health` of a service (200 or 503), as JSON.
pub async fn health(service: &Service) -> serde_json::Value {
    get_json(service, "/health").await.1
}

/// Waits until `/health` satisfies `check`; returns the last report and whether it did.
pub async fn wait_health(
    service: &Service,
    timeout: Duration,
    check: impl Fn(&serde_json::Value) -> bool,
) -> (serde_json::Value, bool) {
    let deadline = Instant::now() + timeout;
    loop {
        let report = health(service).await;
        if check(&report) {
            return (report, true);
        }
        if Instant::now() > deadline {
            return (report, false);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Whether any of the report's `warnings` contains `text`.
pub fn warns(report: &serde_json::Value, text: &str) -> bool {
    report["warnings"].as_array().is_some_and(|w| {
        w.iter()
            .any(|w| w.as_str().is_some_and(|w| w.contains(text)))
    })
}

/// The sum of an unlabelled metric over several services (absent counts as 0).
pub async fn metric_sum(services: &[&Service], name: &str) -> f64 {
    let mut sum = 0.0;
    for service in services {
        sum += metric(service, name).await.unwrap_or(0.0);
    }
    sum
}

/// Waits until the services together have stored more than `before` orders; returns how
/// long that took (`None`: not within `timeout`). "Writing again" after a fault.
pub async fn time_to_store_past(
    services: &[&Service],
    before: f64,
    timeout: Duration,
) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < timeout {
        if metric_sum(services, "orders_stored_total").await > before {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

/// One message of the orders topic.
#[derive(Debug, Clone)]
pub struct Record {
    pub key: String,
    /// Produce time, milliseconds since the epoch.
    pub timestamp_ms: i64,
}

/// The messages of the test's topic from `from[p]` (inclusive) to `to[p]` (exclusive), per
/// partition (a partition missing from `from` starts at 0).
pub fn messages_between(
    env: &TestEnv,
    from: &BTreeMap<i32, i64>,
    to: &BTreeMap<i32, i64>,
) -> Vec<Record> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &env.brokers)
        .set("group.id", format!("{}_reader", env.group))
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    let mut wanted = 0;
    for (&p, &end) in to {
        let start = from.get(&p).copied().unwrap_or(0);
        if end > start {
            tpl.add_partition_offset(&env.topic, p, Offset::Offset(start))
                .expect("offset");
            wanted += end - start;
        }
    }
    if wanted == 0 {
        return Vec::new();
    }
    consumer.assign(&tpl).expect("assign");
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = 0;
    while seen < wanted && Instant::now() < deadline {
        let Some(Ok(m)) = consumer.poll(Duration::from_millis(500)) else {
            continue;
        };
        let start = from.get(&m.partition()).copied().unwrap_or(0);
        let end = to.get(&m.partition()).copied().unwrap_or(0);
        if (start..end).contains(&m.offset()) {
            seen += 1;
            out.push(Record {
                key: m
                    .key()
                    .map(|k| String::from_utf8_lossy(k).into_owned())
                    .unwrap_or_default(),
                timestamp_ms: m.timestamp().to_millis().unwrap_or(0),
            });
        }
    }
    assert_eq!(seen, wanted, "read {seen} of {wanted} messages");
    out
}

/// Sum over partitions of how far `ahead` is past `base`.
pub fn offsets_past(ahead: &BTreeMap<i32, i64>, base: &BTreeMap<i32, i64>) -> i64 {
    ahead
        .iter()
        .map(|(p, &o)| (o - base.get(p).copied().unwrap_or(0)).max(0))
        .sum()
}

/// Runs `work` on a thread and runtime of its own: a test's runtime has one thread, which
/// the test's blocking calls (`scripts/cluster`, offsets) hold for seconds at a time, and a
/// measurement must not pause with them.
fn on_own_thread(
    work: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(work);
    })
}

/// GETs through the front, round after round, until stopped; every answer's status and
/// time is kept.
pub struct FrontReader {
    answers: Arc<Mutex<Vec<(Instant, u16)>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    task: std::thread::JoinHandle<()>,
}

impl FrontReader {
    /// Reads `GET {front}/order/{uid}` for each of `uids` in turn, without pause.
    pub fn start(front: &str, uids: Vec<String>) -> Self {
        let answers = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (a, s, front) = (answers.clone(), stop.clone(), front.to_string());
        let task = on_own_thread(async move {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .expect("client");
            for uid in uids.iter().cycle() {
                if std::sync::atomic::AtomicBool::load(&s, std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                let status = match client.get(format!("{front}/order/{uid}")).send().await {
                    Ok(r) => r.status().as_u16(),
                    Err(_) => 0,
                };
                a.lock().expect("answers").push((Instant::now(), status));
            }
        });
        Self {
            answers,
            stop,
            task,
        }
    }

    /// Stops reading; returns every (time, status); status 0: no HTTP answer.
    pub async fn finish(self) -> Vec<(Instant, u16)> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = tokio::task::spawn_blocking(move || self.task.join()).await;
        Arc::try_unwrap(self.answers)
            .map(|m| m.into_inner().expect("answers"))
            .unwrap_or_default()
    }
}

/// Starts the front (haproxy, round-robin over the instances' public ports, checking
/// `/health/ready`); stops it when dropped.
pub struct Front<'a> {
    cluster: &'a Cluster,
    pub url: String,
}

impl<'a> Front<'a> {
    pub fn start(cluster: &'a Cluster) -> Self {
        cluster.run(&["front-start"]);
        Self {
            cluster,
            url: cluster.var("CLUSTER_FRONT").to_string(),
        }
    }

    /// Instance name → haproxy's state of it (`UP`, `DOWN`, …).
    pub fn states(&self) -> BTreeMap<String, String> {
        self.cluster
            .run(&["front-status"])
            .lines()
            .filter_map(|l| {
                let (name, state) = l.split_once(' ')?;
                Some((name.to_string(), state.trim().to_string()))
            })
            .collect()
    }

    /// Waits until haproxy reports `instance` in `state` (`UP`, `DOWN`); returns how long.
    pub async fn wait_state(&self, instance: &str, state: &str, timeout: Duration) -> Duration {
        let started = Instant::now();
        loop {
            if self
                .states()
                .get(instance)
                .is_some_and(|s| s.starts_with(state))
            {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < timeout,
                "the front did not see {instance} {state} within {timeout:?}: {:?}",
                self.states()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Front<'_> {
    fn drop(&mut self) {
        let _ = Command::new(repo_root().join("scripts/cluster"))
            .arg("front-stop")
            .env("CLUSTER_DIR", &self.cluster.dir)
            .env_remove("CLUSTER_PORT_BASE")
            .output();
    }
}

/// The ports of instance `i` (1..3) as the front knows them: `(public, admin)`.
pub fn instance_addrs(cluster: &Cluster, i: usize) -> (String, String) {
    let public = cluster
        .var("CLUSTER_INSTANCES")
        .split(',')
        .nth(i - 1)
        .expect("instance");
    let admin = cluster
        .var("CLUSTER_ADMINS")
        .split(',')
        .nth(i - 1)
        .expect("instance");
    let addr = |url: &str| url.trim_start_matches("http://").to_string();
    (addr(public), addr(admin))
}

/// The number of stored orders, sampled every 100 ms from the database (the primary of
/// the moment: the test's URL names every node), and the number of messages produced (the
/// topic's high watermarks), for as long as it runs: a pause in storing is the service's
/// only if production went on.
pub struct Progress {
    /// Where the samples are written at the end (`ms_since_start<TAB>what<TAB>count`).
    file: PathBuf,
    started: Instant,
    samples: Arc<Mutex<Vec<(Instant, i64)>>>,
    produced: Arc<Mutex<Vec<(Instant, i64)>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    task: std::thread::JoinHandle<()>,
    watermarks: std::thread::JoinHandle<()>,
}

/// The longest pauses after a fault: in producing and in storing.
#[derive(Debug, Clone, Copy)]
pub struct Pauses {
    pub producing: Duration,
    pub storing: Duration,
}

impl std::fmt::Display for Pauses {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "longest pause in producing {} ms, in storing {} ms",
            self.producing.as_millis(),
            self.storing.as_millis()
        )
    }
}

impl Progress {
    pub fn start(env: &TestEnv) -> Self {
        let samples = Arc::new(Mutex::new(Vec::new()));
        let produced = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (p, halt, brokers, topic) = (
            produced.clone(),
            stop.clone(),
            env.brokers.clone(),
            env.topic.clone(),
        );
        let watermarks = std::thread::spawn(move || {
            let consumer: BaseConsumer = ClientConfig::new()
                .set("bootstrap.servers", &brokers)
                .create()
                .expect("consumer");
            while !std::sync::atomic::AtomicBool::load(&halt, std::sync::atomic::Ordering::Relaxed)
            {
                let high: Option<i64> = (0..6)
                    .map(|part| {
                        consumer
                            .fetch_watermarks(&topic, part, Duration::from_secs(1))
                            .ok()
                            .map(|(_, high)| high)
                    })
                    .sum();
                if let Some(high) = high {
                    p.lock().expect("samples").push((Instant::now(), high));
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        let (s, halt, url) = (samples.clone(), stop.clone(), env.database_url.clone());
        let task = on_own_thread(async move {
            let mut conn: Option<AsyncPgConnection> = None;
            while !std::sync::atomic::AtomicBool::load(&halt, std::sync::atomic::Ordering::Relaxed)
            {
                if conn.is_none() {
                    conn = tokio::time::timeout(
                        Duration::from_secs(2),
                        AsyncPgConnection::establish(&url),
                    )
                    .await
                    .ok()
                    .and_then(Result::ok);
                }
                if let Some(c) = conn.as_mut() {
                    let n = tokio::time::timeout(
                        Duration::from_secs(2),
                        count_rows(c, "SELECT count(*) AS n FROM orders"),
                    )
                    .await;
                    match n {
                        Ok(Some(n)) => s.lock().expect("samples").push((Instant::now(), n)),
                        _ => conn = None,
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        Self {
            file: env.path("progress.tsv"),
            started: Instant::now(),
            samples,
            produced,
            stop,
            task,
            watermarks,
        }
    }

    /// Stops sampling; returns the longest times after `from` during which each count did
    /// not grow, up to when it reached its last value.
    pub async fn pauses_after(self, from: Instant) -> Pauses {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = tokio::task::spawn_blocking(move || self.task.join()).await;
        let _ = tokio::task::spawn_blocking(move || self.watermarks.join()).await;
        let stored = self.samples.lock().expect("samples").clone();
        let produced = self.produced.lock().expect("samples").clone();
        let mut text = String::new();
        for (what, samples) in [("produced", &produced), ("stored", &stored)] {
            for (at, n) in samples {
                let since = at.duration_since(self.started).as_millis();
                text.push_str(&format!("{since}\t{what}\t{n}\n"));
            }
        }
        let _ = std::fs::write(&self.file, text);
        Pauses {
            producing: longest_pause(&produced, from),
            storing: longest_pause(&stored, from),
        }
    }
}

async fn count_rows(conn: &mut AsyncPgConnection, sql: &str) -> Option<i64> {
    use diesel_async::RunQueryDsl;

    #[derive(diesel::QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    sql_query(sql).get_result::<N>(conn).await.ok().map(|r| r.n)
}

/// See [`Progress::longest_pause_after`].
fn longest_pause(samples: &[(Instant, i64)], from: Instant) -> Duration {
    let Some(&(_, last)) = samples.last() else {
        return Duration::ZERO;
    };
    let mut longest = Duration::ZERO;
    let mut since: Option<(Instant, i64)> = None;
    for &(at, n) in samples {
        match since {
            Some((t, seen)) if n > seen => {
                if t >= from || at >= from {
                    longest = longest.max(at.duration_since(t.max(from)));
                }
                since = Some((at, n));
            }
            None => since = Some((at, n)),
            _ => {}
        }
        if n >= last {
            break;
        }
    }
    longest
}

#[test]
fn a_pause_in_storing_is_measured_from_the_fault_to_the_next_growth() {
    let t = Instant::now();
    let at = |ms: u64| t + Duration::from_millis(ms);
    let samples = [
        (at(0), 10),
        (at(100), 20),
        (at(200), 20),
        (at(1_500), 20),
        (at(1_600), 30),
        (at(1_700), 40),
        (at(9_000), 40),
    ];
    // The fault at 150 ms: nothing grew from 150 to 1 600 ms.
    assert_eq!(
        longest_pause(&samples, at(150)),
        Duration::from_millis(1_450)
    );
    // The idle tail after the last order does not count.
    assert_eq!(
        longest_pause(&samples, at(1_650)),
        Duration::from_millis(50)
    );
}
