//! Cheap abuse costs little, and nothing secret or personal reaches the log: concurrent
//! misses share one read, unknown ids are remembered briefly, a flood of unknown ids leaves
//! readiness and cached orders alone, a huge replay body is refused unread, `/stats` does not
//! count the table on every call, a flood of bad messages cannot flood the log, a password
//! never shows.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};

use crate::helpers::*;

async fn reads(service: &Service) -> f64 {
    metric(service, "orders_cache_db_reads_total")
        .await
        .expect("orders_cache_db_reads_total")
}

#[tokio::test]
async fn concurrent_misses_for_one_order_share_one_database_read() {
    let env = TestEnv::new("coalesce").await;
    // Cache off: every lookup is a miss, so only the sharing keeps reads down.
    let service = Service::start(&env, &[("CACHE_MAX_BYTES", "0")]);
    env.produce_orders(["shared-1".to_string()]).await;
    assert!(wait_until_drained(&env, Duration::from_secs(30)).await);

    // Hold the table so the first read waits: every request arrives while it is out.
    let mut blocker = AsyncPgConnection::establish(&env.database_url)
        .await
        .expect("connect");
    blocker
        .batch_execute("BEGIN; LOCK TABLE orders IN ACCESS EXCLUSIVE MODE")
        .await
        .expect("lock");
    let before = reads(&service).await;
    let client = http();
    let url = service.url("/order/shared-1");
    let requests: Vec<_> = (0..40)
        .map(|_| {
            let (client, url) = (client.clone(), url.clone());
            tokio::spawn(async move { client.get(url).send().await.map(|r| r.status().as_u16()) })
        })
        .collect();
    let waiting = eventually(Duration::from_secs(10), || async {
        metric(&service, "orders_cache_misses_total")
            .await
            .unwrap_or(0.0)
            >= 40.0
    })
    .await;
    assert!(waiting, "the 40 requests did not reach the cache");
    blocker.batch_execute("COMMIT").await.expect("unlock");
    for request in requests {
        assert_eq!(request.await.expect("task").expect("response"), 200);
    }
    let shared = reads(&service).await - before;
    assert_eq!(shared, 1.0, "40 concurrent misses should make one read");
}

#[tokio::test]
async fn an_unknown_id_is_remembered_briefly_and_forgotten_once_written() {
    let env = TestEnv::new("absent").await;
    let service = Service::start(&env, &[]);
    let (status, _) = get_json(&service, "/order/late-1").await;
    assert_eq!(status, 404);
    let before = reads(&service).await;
    for _ in 0..20 {
        assert_eq!(get_json(&service, "/order/late-1").await.0, 404);
    }
    assert_eq!(
        reads(&service).await - before,
        0.0,
        "repeated 404s read the database"
    );
    assert_eq!(
        metric(&service, "orders_cache_absent_hits_total").await,
        Some(20.0)
    );

    // Written now: found at once, although it was absent a moment ago. The GETs keep the
    // id freshly "absent" until the order is durable, so a write that did not clear it
    // would answer 404 here.
    env.produce_orders(["late-1".to_string()]).await;
    let durable = eventually(Duration::from_secs(30), || async {
        let _ = get_json(&service, "/order/late-1").await;
        env.committed().values().sum::<i64>() == 1
    })
    .await;
    assert!(durable);
    let (status, order) = get_json(&service, "/order/late-1").await;
    assert_eq!(status, 200, "{order}");
}

#[tokio::test]
async fn stats_do_not_count_the_orders_table_on_every_call() {
    let env = TestEnv::new("statscount").await;
    let service = Service::start(&env, &[]);
    env.produce_orders((0..3).map(|i| format!("count-{i}")))
        .await;
    assert!(wait_until_drained(&env, Duration::from_secs(30)).await);
    let (_, first) = get_json(&service, "/stats").await;
    assert_eq!(first["orders_stored"], 3, "{first}");
    for _ in 0..20 {
        let (_, again) = get_json(&service, "/stats").await;
        assert_eq!(
            again["orders_stored_counted_at"], first["orders_stored_counted_at"],
            "counted again"
        );
    }
}

#[tokio::test]
async fn a_flood_of_bad_messages_cannot_flood_the_log_and_payloads_are_never_logged_whole() {
    let env = TestEnv::new("logflood").await;
    let service = Service::start(&env, &[]);
    // Personal data in a field that fails validation, longer than any log line may quote.
    let canary = format!("PII-{}", "x".repeat(400));
    let payload = |uid: &str| {
        let mut order = model();
        order["order_uid"] = serde_json::json!(uid);
        order["delivery"]["email"] = serde_json::json!(canary);
        serde_json::to_vec(&order).expect("json")
    };
    env.produce_each((0..300).map(|i| format!("flood-{i}")), payload)
        .await;
    let kept = eventually(Duration::from_secs(60), || async {
        count(
            &mut env.db().await,
            "SELECT count(*) AS n FROM dead_letters",
        )
        .await
            == 300
    })
    .await;
    assert!(
        kept,
        "every rejection is kept; log:\n{}",
        service.log_text()
    );

    let log = service.log_text();
    let lines = log.matches("rejected message").count();
    assert!(
        (1..=40).contains(&lines),
        "{lines} per-message lines for 300 rejections"
    );
    let suppressed = metric(&service, "orders_log_lines_suppressed_total")
        .await
        .unwrap_or(0.0);
    assert!(
        suppressed as usize + lines >= 300,
        "suppressed {suppressed}, logged {lines}"
    );
    assert!(!log.contains(&canary), "a payload field was logged whole");
}

#[tokio::test]
async fn a_database_password_never_reaches_the_log() {
    let env = TestEnv::new("pwleak").await;
    const CANARY: &str = "db-password-canary-51c2";
    let url = env
        .database_url
        .replace("orders_app:orders_app@", &format!("orders_app:{CANARY}@"));
    let mut service =
        Service::spawn(&env, &[("DATABASE_URL", &url)], Duration::from_secs(30)).expect("listens");
    let refused = eventually(Duration::from_secs(20), || {
        let log = service.log_text();
        async move { log.matches("waiting for the database").count() >= 2 }
    })
    .await;
    assert!(refused, "log:\n{}", service.log_text());
    let (status, health) = get_json(&service, "/health/ready").await;
    assert_eq!(status, 503, "{health}");
    assert!(service.exited().is_none(), "it waits, it does not exit");
    let log = service.log_text();
    assert!(!log.contains(CANARY), "the password is in the log:\n{log}");
    assert!(
        log.contains("orders_app:***@"),
        "the URL is shown redacted:\n{log}"
    );
}

/// The `q`-quantile of `sorted` (nearest rank).
fn quantile(sorted: &[Duration], q: f64) -> Duration {
    let rank = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_unknown_ids_leaves_readiness_and_cached_orders_alone() {
    const CONNECTIONS: usize = 64;
    const FLOOD: Duration = Duration::from_secs(15);
    // A probe that takes longer fails, as an orchestrator's would (Kubernetes' default).
    const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
    // Readiness answers from memory and a cached order from the CacheActor: neither waits for
    // the misses' database reads, so both stay several times faster than a miss (about ten
    // times here). Relative bounds hold on a slow or busy machine, and fail when either
    // queues behind the misses: then it takes as long as one.
    const FASTER_THAN_A_MISS: u32 = 3;

    let env = TestEnv::new("missflood").await;
    let service = Service::start(&env, &[]);
    let cached: Vec<String> = (0..20).map(|i| format!("flood-cached-{i}")).collect();
    env.produce_orders(cached.clone()).await;
    assert!(wait_until_drained(&env, Duration::from_secs(30)).await);
    let url = service.url("");

    let stop = Arc::new(AtomicBool::new(false));
    let misses = Arc::new(AtomicU64::new(0));
    // Each connection its own client: 64 connections, each asking for ids never stored.
    let flood: Vec<_> = (0..CONNECTIONS)
        .map(|c| {
            let (stop, misses, url) = (stop.clone(), misses.clone(), url.clone());
            tokio::spawn(async move {
                let client = http();
                let (mut times, mut shed, mut other) = (Vec::new(), 0u64, Vec::new());
                for n in 0.. {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let asked = Instant::now();
                    let answer = client
                        .get(format!("{url}/order/flood-unknown-{c}-{n}"))
                        .send()
                        .await;
                    match answer.map(|r| r.status().as_u16()) {
                        Ok(404) => {
                            times.push(asked.elapsed());
                            misses.fetch_add(1, Ordering::Relaxed);
                        }
                        // Beyond MAX_MISSES_IN_FLIGHT a miss is shed: allowed, counted.
                        Ok(503) => shed += 1,
                        Ok(status) => other.push(status.to_string()),
                        Err(e) => other.push(e.to_string()),
                    }
                }
                (times, shed, other)
            })
        })
        .collect();
    let flowing = eventually(Duration::from_secs(10), || async {
        misses.load(Ordering::Relaxed) >= 500
    })
    .await;
    assert!(flowing, "the flood did not start");

    let started = Instant::now();
    let probes = {
        let (stop, url) = (stop.clone(), url.clone());
        tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .timeout(PROBE_TIMEOUT)
                .build()
                .expect("client");
            let (mut times, mut failed) = (Vec::new(), Vec::new());
            while !stop.load(Ordering::Relaxed) {
                let asked = Instant::now();
                let answer = client.get(format!("{url}/health/ready")).send().await;
                times.push(asked.elapsed());
                match answer {
                    Ok(r) if r.status() == 200 => {}
                    Ok(r) => failed.push(r.status().to_string()),
                    Err(e) if e.is_timeout() => failed.push("timeout".to_string()),
                    Err(e) => failed.push(e.to_string()),
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            (times, failed)
        })
    };
    let reads = {
        let (stop, url) = (stop.clone(), url.clone());
        tokio::spawn(async move {
            let client = http();
            let (mut times, mut not_hits) = (Vec::new(), 0u32);
            for uid in cached.iter().cycle() {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let asked = Instant::now();
                let res = client
                    .get(format!("{url}/order/{uid}"))
                    .send()
                    .await
                    .expect("cached order");
                let hit = res.status() == 200 && res.headers()["x-cache"] == "hit";
                res.bytes().await.expect("body");
                times.push(asked.elapsed());
                not_hits += u32::from(!hit);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            (times, not_hits)
        })
    };
    tokio::time::sleep(FLOOD).await;
    stop.store(true, Ordering::Relaxed);
    let elapsed = started.elapsed();
    let (mut probe_times, probes_failed) = probes.await.expect("probes");
    let (mut cached_times, not_hits) = reads.await.expect("reads");
    let (mut miss_times, mut shed, mut other) = (Vec::new(), 0, Vec::new());
    for task in flood {
        let (times, busy, odd) = task.await.expect("flood");
        miss_times.extend(times);
        shed += busy;
        other.extend(odd);
    }
    for times in [&mut probe_times, &mut cached_times, &mut miss_times] {
        times.sort();
    }
    let q = quantile;
    let (miss_p50, probe_p50, cached_p50, cached_p90) = (
        q(&miss_times, 0.5),
        q(&probe_times, 0.5),
        q(&cached_times, 0.5),
        q(&cached_times, 0.9),
    );
    eprintln!(
        "miss flood: {CONNECTIONS} connections, {} unknown ids in {elapsed:.1?} ({:.0}/s), miss \
         p50 {miss_p50:.1?} p90 {:.1?}, {shed} shed (503 busy), {} other answers; readiness \
         probes not 200: {} of {} \
         (p50 {probe_p50:.1?} p90 {:.1?} max {:.1?}); cached GET p50 {cached_p50:.1?} \
         p90 {cached_p90:.1?} p99 {:.1?} ({} reads, {not_hits} not hits)",
        miss_times.len(),
        miss_times.len() as f64 / elapsed.as_secs_f64(),
        q(&miss_times, 0.9),
        other.len(),
        probes_failed.len(),
        probe_times.len(),
        q(&probe_times, 0.9),
        probe_times.last().copied().unwrap_or_default(),
        q(&cached_times, 0.99),
        cached_times.len(),
    );
    assert!(other.is_empty(), "unknown ids got other answers: {other:?}");
    assert!(probe_times.len() >= 50, "{} probes", probe_times.len());
    assert!(
        probes_failed.is_empty(),
        "readiness failed under the flood: {probes_failed:?}"
    );
    assert_eq!(not_hits, 0, "cached orders stopped being hits");
    assert!(
        probe_p50 * FASTER_THAN_A_MISS <= miss_p50,
        "readiness (p50 {probe_p50:?}) is not faster than a miss (p50 {miss_p50:?})"
    );
    assert!(
        cached_p50 * FASTER_THAN_A_MISS <= miss_p50,
        "a cached order (p50 {cached_p50:?}) is not faster than a miss (p50 {miss_p50:?})"
    );
    assert!(
        cached_p90 <= miss_p50,
        "cached orders (p90 {cached_p90:?}) wait as long as a miss (p50 {miss_p50:?})"
    );
    let (status, health) = get_json(&service, "/health/ready").await;
    assert_eq!(status, 200, "{health}");
}

#[tokio::test]
async fn a_seven_megabyte_replay_body_is_refused_with_413_and_nothing_replayed() {
    let env = TestEnv::new("bigbody").await;
    let service = Service::start(&env, &[]);
    env.produce(&[("broken", b"{".to_vec())]).await;
    assert!(wait_until_drained(&env, Duration::from_secs(30)).await);
    // Valid JSON of the right shape, 7 MB of it: refused for its size, not its content.
    let ids: Vec<String> = (0..1_000_000).map(|i| i.to_string()).collect();
    let body = format!(
        "{{\"id\": [{}], \"reason\": [\"malformed\"]}}",
        ids.join(", ")
    );
    assert!(body.len() >= 7_000_000, "{} bytes", body.len());
    let res = http()
        .post(service.admin_url("/dead-letters/replay"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("replay");
    assert_eq!(res.status().as_u16(), 413);
    let answer: serde_json::Value = res.json().await.expect("a JSON error");
    assert!(answer["error"].is_string(), "{answer}");
    assert_eq!(
        count(
            &mut env.db().await,
            "SELECT count(*) AS n FROM dead_letter_replays"
        )
        .await,
        0
    );
    let (status, _) = get_json(&service, "/health/live").await;
    assert_eq!(status, 200);
}
