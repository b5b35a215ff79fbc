//! The read path against the real stack: every endpoint's statuses and bodies, warm-up
//! hits, read-through misses, the cache's byte bound, metrics, security headers, odd input.

use std::time::Duration;

use crate::helpers::*;
use serde_json::Value;

async fn get(service: &Service, path: &str) -> reqwest::Response {
    http().get(service.url(path)).send().await.expect("request")
}

/// Produces the orders and waits for them by events only (rows, then committed offsets),
/// never by GETs: a GET that polled would read the order through and hide a broken
/// write-through. Offsets are committed after the writer has sent the order to the cache.
async fn produce_and_wait(env: &TestEnv, service: &Service, uids: &[String]) {
    let messages: Vec<(&str, Vec<u8>)> = uids
        .iter()
        .map(|u| (u.as_str(), order_with_items(u, 2)))
        .collect();
    env.produce(&messages).await;
    let all = eventually(Duration::from_secs(30), || async {
        count(&mut env.db().await, "SELECT count(*) AS n FROM orders").await == uids.len() as i64
    })
    .await;
    assert!(all, "orders never stored; log:\n{}", service.log_text());
    assert!(wait_until_drained(env, Duration::from_secs(30)).await);
}

#[tokio::test]
async fn order_endpoint_statuses_bodies_and_cache_header() {
    let env = TestEnv::new("api").await;
    let service = Service::start(&env, &[]);
    produce_and_wait(&env, &service, &["api_order_1".to_string()]).await;

    let res = get(&service, "/order/api_order_1").await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/json");
    assert_eq!(
        res.headers()["x-cache"],
        "hit",
        "the first GET after the order is stored must be a hit: written through by the writer"
    );
    let csp = res.headers()["content-security-policy"]
        .to_str()
        .expect("csp")
        .to_string();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert_eq!(res.headers()["x-content-type-options"], "nosniff");
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["items"].as_array().map(Vec::len), Some(2));

    let (status, body) = get_json(&service, "/order/no_such_order").await;
    assert_eq!(status, 404);
    assert_eq!(body["error"], "not_found");
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("no_such_order"))
    );

    for bad in [
        "bad%20id",
        "x%3Cscript%3E",
        &"a".repeat(65),
        "%FF%FE",
        "..%2f..%2fetc%2fpasswd",
    ] {
        let (status, body) = get_json(&service, &format!("/order/{bad}")).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert_eq!(body["error"], "invalid_id", "{bad}");
    }
    // Very long ids, odd paths and methods: 4xx with a JSON body, never 5xx.
    for path in [
        format!("/order/{}", "a".repeat(5000)),
        "/..%2f..%2fCargo.toml".to_string(),
        "/static/../../etc/passwd".to_string(),
        "/%FF%FE%FD".to_string(),
        "/nope".to_string(),
        "/order/".to_string(),
    ] {
        let res = get(&service, &path).await;
        let status = res.status().as_u16();
        assert!((400..500).contains(&status), "{path}: {status}");
        let body: Value = res.json().await.unwrap_or(Value::Null);
        assert!(
            body["error"].is_string(),
            "{path}: JSON error body expected, got {body}"
        );
    }
    let odd = reqwest::Method::from_bytes(b"FOO1").expect("method");
    let res = http()
        .request(odd, service.url("/order/api_order_1"))
        .send()
        .await
        .expect("FOO1");
    assert_eq!(res.status(), 405);
    assert_eq!(
        res.json::<Value>().await.expect("json")["error"],
        "method_not_allowed"
    );
    let res = http()
        .post(service.url("/order/api_order_1"))
        .send()
        .await
        .expect("post");
    assert_eq!(res.status(), 405);
    assert!(res.json::<Value>().await.expect("json")["error"].is_string());
}

#[tokio::test]
async fn lists_health_stats_metrics_openapi_and_the_page() {
    let env = TestEnv::new("lists").await;
    let service = Service::start(&env, &[]);
    let uids: Vec<String> = (0..5).map(|i| format!("list_{i}")).collect();
    produce_and_wait(&env, &service, &uids).await;
    env.produce(&[("broken", b"{".to_vec())]).await;

    let (status, body) = get_json(&service, "/orders?limit=3").await;
    assert_eq!(status, 200);
    let listed = body["orders"].as_array().expect("orders");
    assert_eq!(listed.len(), 3);
    let listed_uids: Vec<String> = listed
        .iter()
        .filter_map(|o| o["order_uid"].as_str().map(str::to_string))
        .collect();
    let newest = uids_newest_first(&env).await;
    assert_eq!(listed_uids, newest[..3].to_vec(), "newest stored first");
    assert_eq!(listed[0]["items"], 2);
    assert_eq!(listed[0]["amount"], 2134);
    assert_eq!(listed[0]["currency"], "USD");
    assert_eq!(
        get_json(&service, "/orders").await.1["orders"]
            .as_array()
            .map(Vec::len),
        Some(5)
    );
    for bad in [
        "/orders?limit=0",
        "/orders?limit=abc",
        "/orders?limit=100000",
        "/dead-letters?limit=-1",
    ] {
        let (status, body) = get_json(&service, bad).await;
        assert_eq!(status, 400, "{bad}");
        assert_eq!(body["error"], "bad_request");
    }

    let seen = eventually(Duration::from_secs(20), || async {
        get_json(&service, "/dead-letters?limit=10").await.1["dead_letters"]
            .as_array()
            .is_some_and(|a| a.len() == 1)
    })
    .await;
    assert!(seen);
    let (_, letters) = get_json(&service, "/dead-letters").await;
    assert_eq!(letters["dead_letters"][0]["reason"], "malformed");
    assert_eq!(letters["dead_letters"][0]["payload"], "{");

    let (status, health) = get_json(&service, "/health").await;
    assert_eq!(status, 200, "{health}");
    assert_eq!(health["database"], "up");
    assert_eq!(health["kafka"], "up");
    assert_eq!(health["cache"], "warm");

    let (status, stats) = get_json(&service, "/stats").await;
    assert_eq!(status, 200);
    assert_eq!(stats["orders_stored"], 5);
    assert_eq!(stats["cache"]["entries"], 5);
    assert!(stats["consumer"]["partitions"].is_array());
    assert!(stats["uptime_seconds"].is_u64());

    get(&service, "/order/list_1").await;
    let metrics = http()
        .get(service.admin_url("/metrics"))
        .send()
        .await
        .expect("request")
        .text()
        .await
        .expect("metrics");
    for name in [
        "orders_messages_consumed_total",
        "orders_stored_total",
        "orders_duplicates_total",
        "orders_validation_failures_total",
        "orders_dead_letters_total",
        "orders_dlq_published_total",
        "orders_db_write_seconds_bucket",
        "orders_db_batch_size_bucket",
        "orders_in_flight",
        "orders_consumer_paused",
        "orders_cache_hits_total",
        "orders_cache_misses_total",
        "orders_cache_lookup_batches_total",
        "orders_cache_entries",
        "orders_cache_bytes",
        "orders_warmup_orders",
        "orders_db_up",
        "orders_kafka_up",
        "orders_http_requests_total",
        "orders_http_requests_duration_seconds_bucket",
    ] {
        assert!(metrics.contains(name), "/metrics lacks {name}");
    }
    // Every metric the service declares is documented in the operator's metrics table.
    let doc = std::fs::read_to_string(repo_root().join("docs/operations.md"))
        .expect("docs/operations.md");
    for name in orders_service::metrics::NAMES {
        assert!(
            doc.contains(&format!("`{name}")),
            "docs/operations.md's metrics table lacks {name}"
        );
    }
    // Route templates, never one series per order id.
    assert!(
        metrics.contains("endpoint=\"/order/{order_uid}\""),
        "{metrics}"
    );
    assert!(!metrics.contains("endpoint=\"/order/list_1\""));

    let (status, spec) = get_json(&service, "/openapi.json").await;
    assert_eq!(status, 200);
    assert!(
        spec["paths"]["/order/{order_uid}"]["get"].is_object(),
        "{spec}"
    );
    assert_eq!(
        spec["paths"]["/orders"]["servers"][0]["url"], "http://127.0.0.1:9081",
        "the list is documented on the admin listener"
    );

    let page = get(&service, "/").await;
    assert_eq!(page.status(), 200);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .expect("ct")
            .starts_with("text/html")
    );
    let html = page.text().await.expect("html");
    assert!(html.contains("app.js") && !html.contains("http://") && !html.contains("https://"));
    for asset in [
        "/app.js",
        "/style.css",
        "/favicon.svg",
        "/dom.js",
        "/base.css",
    ] {
        assert_eq!(get(&service, asset).await.status(), 200, "{asset}");
    }
}

#[tokio::test]
async fn the_public_listener_lists_orders_only_when_a_demo_turns_it_on() {
    let env = TestEnv::new("publist").await;
    let uids: Vec<String> = (0..3).map(|i| format!("publist_{i}")).collect();
    let service = Service::start(&env, &[]);
    produce_and_wait(&env, &service, &uids).await;

    // By default the public listener hands out no ids: /orders is an unknown path there.
    for path in ["/orders", "/orders?limit=1000"] {
        let res = get(&service, path).await;
        assert_eq!(res.status(), 404, "public {path}");
        let body: Value = res.json().await.expect("json");
        assert_eq!(body["error"], "not_found", "{body}");
    }
    let page = get(&service, "/").await.text().await.expect("page");
    assert!(page.contains(r#"<body data-order-list="off">"#), "{page}");
    // The operator has it, and opens any order there too.
    let (status, listed) = get_json(&service, "/orders").await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(listed["orders"].as_array().map(Vec::len), Some(3));
    let public = get(&service, "/order/publist_1")
        .await
        .bytes()
        .await
        .expect("body");
    let admin = http()
        .get(service.admin_url("/order/publist_1"))
        .send()
        .await
        .expect("admin order");
    assert_eq!(admin.status(), 200);
    assert_eq!(
        admin.bytes().await.expect("body"),
        public,
        "the same order on both"
    );
    assert!(!service.log_text().contains("PUBLIC_ORDER_LIST"));
    drop(service);

    // A demo turns it on, and is told what that exposes.
    let service = Service::start(&env, &[("PUBLIC_ORDER_LIST", "true")]);
    let res = get(&service, "/orders?limit=2").await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["orders"].as_array().map(Vec::len), Some(2), "{body}");
    let page = get(&service, "/").await.text().await.expect("page");
    assert!(page.contains(r#"<body data-order-list="on">"#), "{page}");
    let log = service.log_text();
    assert!(
        log.contains("PUBLIC_ORDER_LIST=true") && log.contains("for a demo only"),
        "{log}"
    );
}

#[tokio::test]
async fn orders_stored_before_start_up_are_hits_once_ready_and_misses_read_through() {
    let env = TestEnv::new("warm").await;
    let first = Service::start(&env, &[]);
    let uids: Vec<String> = (0..30).map(|i| format!("warm_{i}")).collect();
    produce_and_wait(&env, &first, &uids).await;
    assert!(wait_until_drained(&env, Duration::from_secs(30)).await);
    first.kill();

    let service = Service::start(&env, &[]);
    let (status, health) = get_json(&service, "/health").await;
    assert_eq!(health["cache"], "warm", "{status} {health}");
    for uid in &uids {
        let res = get(&service, &format!("/order/{uid}")).await;
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()["x-cache"], "hit", "{uid} should be warm");
    }
    service.kill();

    // A cache too small for all of them is warmed with the newest stored that fit.
    let small = Service::start(&env, &[("CACHE_MAX_BYTES", "6000")]);
    let by_age = uids_newest_first(&env).await;
    let (_, stats) = get_json(&small, "/stats").await;
    let cached = stats["cache"]["entries"].as_u64().expect("entries") as usize;
    assert!(cached > 0 && cached < uids.len(), "cached {cached}");
    assert!(stats["cache"]["bytes"].as_u64().expect("bytes") <= 6000);
    let newest = &by_age[0];
    let res = get(&small, &format!("/order/{newest}")).await;
    assert_eq!(res.headers()["x-cache"], "hit", "the newest order is warm");
    let oldest = &by_age[by_age.len() - 1];
    let res = get(&small, &format!("/order/{oldest}")).await;
    assert_eq!(
        res.headers()["x-cache"],
        "miss",
        "the oldest order did not fit"
    );
    small.kill();

    // With the cache off every read goes to the database.
    let cold = Service::start(&env, &[("CACHE_MAX_BYTES", "0")]);
    let res = get(&cold, "/order/warm_3").await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["x-cache"], "miss");
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["order_uid"], "warm_3");
}

#[tokio::test]
async fn the_cache_stays_under_its_byte_bound_and_evicts() {
    let env = TestEnv::new("evict").await;
    let bound: u64 = 20_000;
    let service = Service::start(&env, &[("CACHE_MAX_BYTES", "20000")]);
    let uids: Vec<String> = (0..120).map(|i| format!("evict_{i:03}")).collect();
    produce_and_wait(&env, &service, &uids).await;
    // Read everything, so read-through also inserts.
    for uid in &uids {
        assert_eq!(get(&service, &format!("/order/{uid}")).await.status(), 200);
    }
    let (_, stats) = get_json(&service, "/stats").await;
    let bytes = stats["cache"]["bytes"].as_u64().expect("bytes");
    let entries = stats["cache"]["entries"].as_u64().expect("entries");
    assert!(bytes <= bound, "cache holds {bytes} bytes, bound {bound}");
    assert!(entries < 120 && entries > 0, "entries {entries}");
    assert!(stats["cache"]["evictions"].as_u64().expect("evictions") > 0);
    assert!(stats["cache"]["misses"].as_u64().expect("misses") > 0);
}

/// The bodies of `uids`, each asserted to be answered from the cache as `expected`.
async fn bodies(service: &Service, uids: &[String], expected: &str) -> Vec<Vec<u8>> {
    let mut bodies = Vec::new();
    for uid in uids {
        let res = get(service, &format!("/order/{uid}")).await;
        assert_eq!(res.status(), 200, "{uid}");
        assert_eq!(res.headers()["x-cache"], expected, "{uid}");
        bodies.push(res.bytes().await.expect("body").to_vec());
    }
    bodies
}

/// `CACHE_COMPRESSION=zstd`: the orders the writers sent to the cache and the ones the
/// warm-up loaded are kept compressed, and every hit is the same bytes as without it. Fails
/// if hits are sent compressed, if the writers or the warm-up ignore the setting (the cache
/// is no smaller), or if `/stats` hides which form the cache is in.
#[tokio::test]
async fn compressed_entries_are_served_byte_for_byte_from_fewer_cache_bytes() {
    let env = TestEnv::new("zstd").await;
    let uids: Vec<String> = (0..20).map(|i| format!("zstd_{i:02}")).collect();
    let zstd = [("CACHE_COMPRESSION", "zstd")];
    let cache_of = |stats: &Value| {
        let cache = &stats["cache"];
        assert_eq!(cache["entries"], uids.len(), "{stats}");
        (
            cache["compression"]
                .as_str()
                .expect("compression")
                .to_string(),
            cache["bytes"].as_u64().expect("bytes"),
        )
    };

    // Written through by the writers.
    let writer = Service::start(&env, &zstd);
    produce_and_wait(&env, &writer, &uids).await;
    let written = bodies(&writer, &uids, "hit").await;
    let (compression, written_bytes) = cache_of(&get_json(&writer, "/stats").await.1);
    assert_eq!(compression, "zstd");
    writer.kill();

    // The reference: the same orders warmed as plain JSON.
    let plain = Service::start(&env, &[]);
    let reference = bodies(&plain, &uids, "hit").await;
    let (compression, plain_bytes) = cache_of(&get_json(&plain, "/stats").await.1);
    assert_eq!(compression, "off");
    plain.kill();
    for (body, uid) in reference.iter().zip(&uids) {
        let order: Value = serde_json::from_slice(body).expect("plain JSON");
        assert_eq!(order["order_uid"], uid.as_str());
    }
    assert!(
        written == reference,
        "written-through hits differ from plain ones"
    );

    // Warmed compressed.
    let warmed = Service::start(&env, &zstd);
    assert!(
        bodies(&warmed, &uids, "hit").await == reference,
        "warmed hits differ from plain ones"
    );
    let (_, warmed_bytes) = cache_of(&get_json(&warmed, "/stats").await.1);
    warmed.kill();
    for (form, bytes) in [("written", written_bytes), ("warmed", warmed_bytes)] {
        assert!(
            bytes * 10 < plain_bytes * 8,
            "{form} compressed: {bytes} cache bytes, plain: {plain_bytes}"
        );
    }
}

/// The service's user + system CPU time so far, in clock ticks (`/proc/<pid>/stat`).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    // Fields after the command name (which may hold spaces): utime and stime are 14 and 15.
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime")
}

/// `HTTP_IDLE_POLL_US`: with workers polling after each answer, every answer is still right,
/// the polling ends once requests stop (an idle service spends next to no CPU), and a SIGTERM
/// while the workers poll still stops the service at once. Fails if the setting is ignored
/// (no CPU spent polling between close requests), if the poller never sleeps again (a
/// core's worth of CPU while idle), if it keeps a worker from stopping, or if the polling
/// task starves the handlers or the CacheActor (wrong or missing answers).
#[tokio::test]
async fn idle_polling_serves_every_answer_then_sleeps_and_stops_on_sigterm() {
    let env = TestEnv::new("idle_poll").await;
    // 50 ms: long enough that a poller that never stopped would show in a second of CPU.
    let service = Service::start(&env, &[("HTTP_IDLE_POLL_US", "50000")]);
    let given = "idle polling of the public HTTP workers: 50000 µs (HTTP_IDLE_POLL_US)";
    let logged = eventually(Duration::from_secs(10), || {
        let text = service.log_text();
        async move { text.contains(given) }
    })
    .await;
    assert!(
        logged,
        "the setting is not what the workers were given:\n{}",
        service.log_text()
    );
    let uids: Vec<String> = (0..40).map(|i| format!("idle_poll_{i:02}")).collect();
    produce_and_wait(&env, &service, &uids).await;
    for round in 0..3 {
        for uid in &uids {
            let res = get(&service, &format!("/order/{uid}")).await;
            assert_eq!(res.status(), 200, "round {round}, {uid}");
            let body: Value = res.json().await.expect("json");
            assert_eq!(body["order_uid"], uid.as_str());
        }
    }

    let hz = 100; // CLK_TCK on Linux
    // Requests 30 ms apart, inside the 50 ms window: the worker polls between them, so a
    // second of them costs a good part of a core (71 ticks when measured on a busy 2-core
    // machine). Without polling (the setting ignored) the 33 answers cost 7 ticks there.
    let before = cpu_ticks(service.pid());
    let started = std::time::Instant::now();
    for (i, uid) in uids.iter().cycle().take(33).enumerate() {
        let due = started + Duration::from_millis(30 * i as u64);
        tokio::time::sleep_until(due.into()).await;
        assert_eq!(get(&service, &format!("/order/{uid}")).await.status(), 200);
    }
    let polling = cpu_ticks(service.pid()) - before;
    eprintln!("{polling} ticks of CPU in a second of requests 30 ms apart");
    assert!(
        polling >= hz / 4,
        "{polling} ticks of CPU in a second of requests 30 ms apart: the workers did not poll"
    );

    // Idle: after the window, a second of wall time must cost far less than a second of CPU.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = cpu_ticks(service.pid());
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = cpu_ticks(service.pid()) - before;
    assert!(
        idle < hz / 4,
        "{idle} ticks of CPU in one idle second: the workers kept polling"
    );

    // Requests again, then SIGTERM while the workers are polling.
    for uid in &uids[..5] {
        assert_eq!(get(&service, &format!("/order/{uid}")).await.status(), 200);
    }
    let asked = std::time::Instant::now();
    let status = service
        .terminate(Duration::from_secs(10))
        .expect("exited before the deadline");
    assert!(status.success(), "exit status {status}");
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "stop took {:?} with the workers polling",
        asked.elapsed()
    );
}
