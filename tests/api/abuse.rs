//! Cheap abuse costs little, and nothing secret or personal reaches the log: concurrent
//! misses share one read, unknown ids are remembered briefly, `/stats` does not count the
//! table on every call, a flood of bad messages cannot flood the log, a password never shows.

use std::time::Duration;

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
