//! Operating it: dead-letter replay (CLI and admin endpoint), keyset paging with filters
//! under concurrent inserts, the index behind each list. (Retention: `retention.rs`.)

use std::collections::HashSet;
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::*;

/// `orders-service replay ARGS` against this test's database; returns stdout.
fn replay(env: &TestEnv, extra: &[(&str, &str)], args: &[&str]) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_orders-service"));
    cmd.arg("replay")
        .args(args)
        .current_dir(std::env::temp_dir())
        .env_clear();
    for (k, v) in env.service_env() {
        cmd.env(k, v);
    }
    for (k, v) in extra {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run replay");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "replay {args:?} failed: {}{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

async fn admin_post(service: &Service, path: &str, body: Value) -> (u16, Value) {
    let response = http()
        .post(service.admin_url(path))
        .json(&body)
        .send()
        .await
        .expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_too_large_order_is_stored_unchanged_once_the_limit_is_raised_and_replaying_again_changes_nothing()
 {
    let env = TestEnv::new("replay").await;
    let small = [("MAX_PAYLOAD_BYTES", "2048")];
    let service = Service::start(&env, &small);
    let big = order_with_items("replay-big", 12);
    assert!(big.len() > 2048, "the order must exceed the limit");
    env.produce(&[("replay-big", big.clone()), ("broken", b"{".to_vec())])
        .await;
    assert!(wait_until_drained(&env, Duration::from_secs(30)).await);
    let letters = count(
        &mut env.db().await,
        "SELECT count(*) AS n FROM dead_letters",
    )
    .await;
    assert_eq!(letters, 2);

    // Dry run: says what would happen, writes nothing.
    let dry = replay(&env, &[], &["--reason", "too_large", "--dry-run", "--json"]);
    let dry: Value = serde_json::from_str(&dry).expect("json");
    assert_eq!(
        (dry["selected"].as_u64(), dry["valid"].as_u64()),
        (Some(1), Some(1)),
        "{dry}"
    );
    assert_eq!(
        count(&mut env.db().await, "SELECT count(*) AS n FROM orders").await,
        0
    );

    // The limit raised (the current configuration): stored, while the service runs.
    let out = replay(&env, &[], &["--reason", "too_large"]);
    assert!(out.contains("1 stored"), "{out}");
    let (status, order) = get_json(&service, "/order/replay-big").await;
    assert_eq!(status, 200, "the running instance serves it: {order}");
    let produced: Value = serde_json::from_slice(&big).expect("json");
    assert_eq!(order, produced, "stored exactly as produced");

    // Again: nothing selected, nothing recorded.
    let again = replay(&env, &[], &["--reason", "too_large", "--json"]);
    let again: Value = serde_json::from_str(&again).expect("json");
    assert_eq!(again["selected"], 0, "{again}");

    // The malformed one stays a dead letter: recorded once, then unchanged.
    let first = replay(&env, &[], &["--reason", "malformed", "--json"]);
    let first: Value = serde_json::from_str(&first).expect("json");
    assert_eq!(first["rejected"], 1, "{first}");
    let (status, summary) = admin_post(
        &service,
        "/dead-letters/replay",
        json!({"reason": ["malformed"]}),
    )
    .await;
    assert_eq!(status, 200, "{summary}");
    assert_eq!(summary["unchanged"], 1, "{summary}");

    let mut conn = env.db().await;
    assert_eq!(
        count(&mut conn, "SELECT count(*) AS n FROM dead_letters").await,
        2,
        "history kept"
    );
    assert_eq!(
        count(&mut conn, "SELECT count(*) AS n FROM dead_letter_replays").await,
        2,
        "one stored, one rejected"
    );
    // The dead letter shows its replays.
    let (_, page) = get_json(&service, "/dead-letters?reason=too_large").await;
    let replays = &page["dead_letters"][0]["replays"];
    assert_eq!(replays[0]["result"], "stored", "{page}");

    // Unknown reasons and bad times are refused, not silently empty.
    let (status, _) = admin_post(
        &service,
        "/dead-letters/replay",
        json!({"reason": ["tooo_large"]}),
    )
    .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn the_admin_replay_puts_the_order_in_the_cache_of_the_instance() {
    let env = TestEnv::new("replayhttp").await;
    let service = Service::start(&env, &[("MAX_PAYLOAD_BYTES", "2048")]);
    env.produce(&[("replay-http", order_with_items("replay-http", 12))])
        .await;
    assert!(wait_until_drained(&env, Duration::from_secs(30)).await);
    // Asked before: remembered as absent for a moment.
    assert_eq!(get_json(&service, "/order/replay-http").await.0, 404);
    drop(service);
    let service = Service::start(&env, &[]);
    let (status, summary) = admin_post(&service, "/dead-letters/replay", json!({})).await;
    assert_eq!(status, 200, "{summary}");
    assert_eq!(summary["stored"], 1, "{summary}");
    let response = http()
        .get(service.url("/order/replay-http"))
        .send()
        .await
        .expect("get");
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.headers()["x-cache"], "hit");
}

/// What arrives between two pages.
#[derive(Clone, Copy)]
enum Arrival {
    DeadLetter,
    Order,
}

/// Follows `next_before` from the newest page to the end, storing a new row after each page
/// (and waiting until it is there); returns the `order_uid` of every row listed.
async fn page_through(
    env: &TestEnv,
    service: &Service,
    path: &str,
    key: &str,
    arrival: Arrival,
) -> Vec<String> {
    let mut seen = Vec::new();
    let mut cursor: Option<i64> = None;
    for page in 0.. {
        let sep = if path.contains('?') { '&' } else { '?' };
        let url = match cursor {
            Some(c) => format!("{path}{sep}limit=7&before={c}"),
            None => format!("{path}{sep}limit=7"),
        };
        let (status, body) = get_json(service, &url).await;
        assert_eq!(status, 200, "{url}: {body}");
        seen.extend(
            body[key]
                .as_array()
                .expect("list")
                .iter()
                .filter_map(|item| item["order_uid"].as_str().map(str::to_string)),
        );
        let uid = format!("new-{page}");
        match arrival {
            Arrival::DeadLetter => {
                env.produce(&[(uid.as_str(), b"{".to_vec())]).await;
            }
            Arrival::Order => {
                env.produce_orders([uid.clone()]).await;
            }
        }
        let table = match arrival {
            Arrival::DeadLetter => "dead_letters",
            Arrival::Order => "orders",
        };
        let stored = eventually(Duration::from_secs(20), || async {
            count(
                &mut env.db().await,
                &format!("SELECT count(*) AS n FROM {table} WHERE order_uid = '{uid}'"),
            )
            .await
                == 1
        })
        .await;
        assert!(stored, "{uid} not stored");
        match body["next_before"].as_i64() {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    seen
}

#[tokio::test]
async fn cursors_stay_stable_while_new_rows_arrive() {
    let env = TestEnv::new("paging").await;
    let service = Service::start(&env, &[]);
    env.produce_orders((0..25).map(|i| format!("page-{i}")))
        .await;
    env.produce_each((0..30).map(|i| format!("bad-{i}")), |_| b"{".to_vec())
        .await;
    assert!(wait_until_drained(&env, Duration::from_secs(30)).await);

    let letters = page_through(
        &env,
        &service,
        "/dead-letters?reason=malformed",
        "dead_letters",
        Arrival::DeadLetter,
    )
    .await;
    let orders = page_through(&env, &service, "/orders", "orders", Arrival::Order).await;
    for (all, prefix, expected) in [(&letters, "bad-", 30), (&orders, "page-", 25)] {
        let unique: HashSet<&String> = all.iter().collect();
        assert_eq!(unique.len(), all.len(), "a row was listed twice: {all:?}");
        let old = all.iter().filter(|u| u.starts_with(prefix)).count();
        assert_eq!(
            old, expected,
            "every row present before paging began, once: {all:?}"
        );
        assert!(
            !all.iter().any(|u| u.starts_with("new-")),
            "rows newer than the first page do not slip into later pages: {all:?}"
        );
    }

    // Filters.
    let (_, none) = get_json(&service, "/dead-letters?since=2999-01-01T00:00:00Z").await;
    assert_eq!(none["dead_letters"].as_array().map(Vec::len), Some(0));
    let (_, one) = get_json(&service, "/dead-letters?order_uid=bad-3").await;
    assert_eq!(
        one["dead_letters"].as_array().map(Vec::len),
        Some(1),
        "{one}"
    );
    let (status, _) = get_json(&service, "/dead-letters?before=abc").await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn each_list_query_is_an_index_range_scan() {
    let env = TestEnv::new("explain").await;
    let _service = Service::start(&env, &[]);
    env.sql(
        "INSERT INTO dead_letters (topic, kafka_partition, kafka_offset, payload, reason, detail, order_uid, received_at) \
         SELECT 't', 0, g, '{', CASE WHEN g % 200 = 0 THEN 'schema' ELSE 'malformed' END, 'd', 'uid-' || g, \
                now() - make_interval(secs => 50000 - g) \
           FROM generate_series(1, 50000) g; ANALYZE dead_letters",
    )
    .await;
    use diesel::sql_query;
    use diesel_async::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct Line {
        #[diesel(sql_type = diesel::sql_types::Text, column_name = "QUERY PLAN")]
        line: String,
    }
    let mut conn = env.db().await;
    for (sql, index) in [
        (
            "WHERE reason = 'schema' AND id < 40000 ORDER BY id DESC LIMIT 20",
            "dead_letters_reason_id_idx",
        ),
        (
            "WHERE order_uid = 'uid-77' ORDER BY id DESC LIMIT 20",
            "dead_letters_order_uid_id_idx",
        ),
        (
            "WHERE id < 40000 ORDER BY id DESC LIMIT 20",
            "dead_letters_pkey",
        ),
    ] {
        let plan: Vec<Line> = sql_query(format!("EXPLAIN SELECT * FROM dead_letters {sql}"))
            .load(&mut conn)
            .await
            .expect("explain");
        let plan: String = plan.into_iter().map(|l| l.line + "\n").collect();
        assert!(plan.contains(index), "{sql}:\n{plan}");
        assert!(
            !plan.contains("Seq Scan") && !plan.contains("Sort"),
            "{sql}:\n{plan}"
        );
        eprintln!("EXPLAIN {sql}\n{plan}");
    }
}
