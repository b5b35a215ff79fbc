//! Database outage: PostgreSQL stops for 20 s in the middle of a stream. Nothing valid is
//! dead-lettered, nothing is lost, `/health` reports it, cached orders keep being served, and
//! ingestion resumes by itself within 5 s of the database coming back.

use std::time::{Duration, Instant};

use crate::helpers::*;

async fn status(client: &reqwest::Client, url: &str) -> u16 {
    client
        .get(url)
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

/// The port of a `postgres://…:PORT/db` URL.
fn env_port(url: &str) -> String {
    url.rsplit_once(':')
        .and_then(|(_, rest)| rest.split('/').next())
        .expect("url has a port")
        .to_string()
}

#[tokio::test]
async fn a_20_second_database_outage_loses_nothing_and_heals_by_itself() {
    let env = TestEnv::exclusive("dbdown").await;
    let service = Service::start(&env, &[("DB_RETRY_MAX_BACKOFF_MS", "1000")]);
    let client = http();

    // An order cached before the outage.
    env.produce(&[(
        "b563feb7b2b84b6test",
        serde_json::to_vec(&model()).expect("json"),
    )])
    .await;
    let order_url = service.url("/order/b563feb7b2b84b6test");
    assert!(
        eventually(Duration::from_secs(30), || async {
            status(&client, &order_url).await == 200
        })
        .await
    );

    let mut stream = Stream::start(&env, StreamSpec::new(20_000, 700));
    // The database stops while the stream is being stored.
    assert!(
        wait_stored(&service, 1_000, Duration::from_secs(60)).await,
        "the stream was not being stored; log:\n{}",
        service.log_text()
    );

    infra(&env, "pg", "stop", "pg");
    let outage_started = Instant::now();
    let health_url = service.url("/health");
    assert!(
        eventually(Duration::from_secs(10), || async {
            status(&client, &health_url).await == 503
        })
        .await,
        "/health did not report the database outage"
    );
    // The process is alive (an orchestrator must not restart it), just not ready.
    assert_eq!(status(&client, &service.url("/health/live")).await, 200);
    assert_eq!(status(&client, &service.url("/health/ready")).await, 503);
    // An order that is not cached cannot be read: a plain 503 that names no host, port,
    // role or driver message (those are in the log).
    let res = client
        .get(service.url("/order/not_cached_during_outage"))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status().as_u16(), 503);
    let body = res.text().await.expect("body");
    let pg_port = env_port(&env.database_url);
    for secret in [
        "127.0.0.1",
        pg_port.as_str(),
        "orders_app",
        "postgres",
        "onnect",
    ] {
        assert!(!body.contains(secret), "503 body leaks {secret:?}: {body}");
    }
    assert!(body.contains("unavailable"), "{body}");
    // Cached reads keep working while the database is down.
    let res = client.get(&order_url).send().await.expect("request");
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(res.headers()["x-cache"], "hit");
    let stats = client
        .get(service.admin_url("/stats"))
        .send()
        .await
        .expect("stats");
    assert_eq!(
        stats.status().as_u16(),
        200,
        "/stats must answer during an outage"
    );

    tokio::time::sleep(Duration::from_secs(20).saturating_sub(outage_started.elapsed())).await;
    let stored_before = {
        infra(&env, "pg", "start", "pg");
        count(&mut env.db().await, "SELECT count(*) AS n FROM orders").await
    };
    let back = Instant::now();
    let resumed = eventually(Duration::from_secs(5), || async {
        count(&mut env.db().await, "SELECT count(*) AS n FROM orders").await > stored_before
    })
    .await;
    let resumed_after = back.elapsed();
    assert!(
        resumed,
        "ingestion did not resume within 5 s of the database returning"
    );
    eprintln!("ingestion resumed {resumed_after:?} after PostgreSQL came back");

    stream.finish();
    // The order produced before the stream is expected too.
    let mut list = std::fs::read_to_string(&stream.uids).expect("uids");
    list.push_str("b563feb7b2b84b6test\t1\n");
    std::fs::write(&stream.uids, list).expect("uids");
    assert!(
        wait_until_drained(&env, Duration::from_secs(120)).await,
        "not drained; log:\n{}",
        service.log_text()
    );
    stream
        .assert_exactly_its_valid_orders_are_stored(&env)
        .await;
    assert!(
        eventually(Duration::from_secs(10), || async {
            status(&client, &health_url).await == 200
        })
        .await,
        "/health did not recover"
    );
    let mut conn = env.db().await;
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) AS n FROM dead_letters WHERE reason IN ('storage', 'conflict')"
        )
        .await,
        0,
        "the outage must not dead-letter anything"
    );
}

/// An order with `n` lines, each named after its order and position, so that a read that
/// mixes up orders or lines shows it.
fn order_with_lines(uid: &str, n: usize) -> serde_json::Value {
    let mut v: serde_json::Value = serde_json::from_slice(&order_with_items(uid, n)).expect("json");
    for (k, item) in v["items"]
        .as_array_mut()
        .expect("items")
        .iter_mut()
        .enumerate()
    {
        item["name"] = format!("{uid} line {k}").into();
        item["chrt_id"] = (1000 + k as i64).into();
    }
    v
}

/// A restart of PostgreSQL closes every pooled read connection. The pool must see that (the
/// driver marks a connection closed when the server closes it) and open new ones instead of
/// handing the dead ones to requests. Catches a pool that checks nothing on check-out (each
/// dead connection would fail one miss with a 503) — the default check, a `SELECT 1` per
/// check-out, passes too but costs every miss a round trip. Every answer is compared with
/// the order as produced (1–4 lines each): the miss path reads an order and its lines in
/// two pipelined statements, and must not mix up orders or lines.
#[tokio::test]
async fn misses_right_after_a_database_restart_are_all_answered() {
    let env = TestEnv::exclusive("dbrestart").await;
    // The cache off: every read is a miss, served by a read-pool connection.
    let service = Service::start(&env, &[("CACHE_MAX_BYTES", "0"), ("DB_POOL_SIZE", "8")]);
    let client = http();
    let uids: Vec<String> = (0..16).map(|i| format!("restart_{i:02}")).collect();
    let lines = |uid: &str| 1 + uid.bytes().last().map_or(0, |b| b % 4) as usize;
    env.produce_each(uids.clone(), |uid| {
        serde_json::to_vec(&order_with_lines(uid, lines(uid))).expect("json")
    })
    .await;
    let read = |uid: &str| {
        let request = client.get(service.url(&format!("/order/{uid}"))).send();
        async move {
            match request.await {
                Ok(res) if res.status() == 200 => res.json::<serde_json::Value>().await.ok(),
                _ => None,
            }
        }
    };
    let all_read = || async {
        futures::future::join_all(uids.iter().map(|u| read(u)))
            .await
            .into_iter()
            .all(|body| body.is_some())
    };
    assert!(
        eventually(Duration::from_secs(30), all_read).await,
        "the orders were not stored; log:\n{}",
        service.log_text()
    );
    // Different orders at once (misses for one order share a read), so the pool grows to
    // its 8 connections.
    for _ in 0..3 {
        assert!(all_read().await);
    }

    infra(&env, "pg", "stop", "pg");
    // Returns once PostgreSQL accepts connections again.
    infra(&env, "pg", "start", "pg");
    for (i, uid) in uids.iter().cycle().take(24).enumerate() {
        let body = read(uid).await;
        assert_eq!(
            body,
            Some(order_with_lines(uid, lines(uid))),
            "miss {i} ({uid}) after the restart; log:\n{}",
            service.log_text()
        );
    }
}
