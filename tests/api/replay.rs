//! Replay's bounds: letters per run with a cursor, selectors-only bodies, one run at a time,
//! and a run's stored orders committed together with its records (or neither).

use std::process::{Command, Output};
use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::*;

/// `orders-service replay ARGS` against this test's database.
fn replay(env: &TestEnv, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_orders-service"));
    cmd.arg("replay")
        .args(args)
        .current_dir(std::env::temp_dir())
        .env_clear()
        .envs(env.service_env());
    cmd.output().expect("run replay")
}

fn json_of(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "replay failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json summary")
}

async fn admin_post(service: &Service, body: &[u8]) -> (u16, Value) {
    let response = http()
        .post(service.admin_url("/dead-letters/replay"))
        .header("content-type", "application/json")
        .body(body.to_vec())
        .send()
        .await
        .expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// `count` orders too large for a 2 KiB limit, dead-lettered `too_large` by a service that
/// is then stopped; the returned service runs with the default limit, so they replay as
/// `stored`.
async fn too_large_letters(env: &TestEnv, count: usize) -> Service {
    let small = Service::start(env, &[("MAX_PAYLOAD_BYTES", "2048")]);
    env.produce_each((0..count).map(|i| format!("big-{i}")), |uid| {
        order_with_items(uid, 12)
    })
    .await;
    assert!(wait_until_drained(env, Duration::from_secs(60)).await);
    small.terminate(Duration::from_secs(20));
    let letters = count_rows(env, "SELECT count(*) AS n FROM dead_letters").await;
    assert_eq!(letters, count as i64);
    Service::start(env, &[])
}

async fn count_rows(env: &TestEnv, sql: &str) -> i64 {
    count(&mut env.db().await, sql).await
}

#[tokio::test]
async fn a_run_stops_at_its_limit_and_the_cursor_continues_where_it_stopped() {
    let env = TestEnv::new("replaylimit").await;
    let service = too_large_letters(&env, 7).await;

    let first = json_of(&replay(&env, &["--limit", "3", "--json"]));
    assert_eq!(
        (first["selected"].as_u64(), first["stored"].as_u64()),
        (Some(3), Some(3)),
        "{first}"
    );
    let cursor = first["next_after"]
        .as_i64()
        .expect("a full run names its cursor");
    assert_eq!(
        count_rows(&env, "SELECT count(*) AS n FROM orders").await,
        3
    );

    // The text form says how to continue.
    let text = replay(&env, &["--limit", "3", "--dry-run"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("continue with --after"), "{text}");

    // The admin endpoint takes the same cursor.
    let (status, second) = admin_post(
        &service,
        json!({"limit": 3, "after": cursor}).to_string().as_bytes(),
    )
    .await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(second["stored"], 3, "{second}");
    let cursor = second["next_after"].as_i64().expect("full again");
    let last = json_of(&replay(
        &env,
        &["--limit", "3", "--after", &cursor.to_string(), "--json"],
    ));
    assert_eq!(last["stored"], 1, "{last}");
    assert!(
        last["next_after"].is_null(),
        "a short run is the end: {last}"
    );
    assert_eq!(
        count_rows(&env, "SELECT count(*) AS n FROM orders").await,
        7
    );

    // Out-of-range limits are refused with the bound named, not clamped.
    for body in [json!({"limit": 0}), json!({"limit": 10_001})] {
        let (status, answer) = admin_post(&service, body.to_string().as_bytes()).await;
        assert_eq!(status, 400, "{answer}");
        assert!(
            answer["detail"]
                .as_str()
                .unwrap_or_default()
                .contains("10000"),
            "{answer}"
        );
    }
    let out = replay(&env, &["--limit", "0"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("limit"));
}

#[tokio::test]
async fn a_replay_body_holds_selectors_only() {
    let env = TestEnv::new("replaybody").await;
    let service = Service::start(&env, &[]);
    // Over the body limit (16 KiB) but far under actix's default (2 MiB): a JSON 413.
    let ids: Vec<i64> = (1..=3_000).map(|i| i * 1_000_000).collect();
    let body = json!({ "id": ids }).to_string();
    assert!(body.len() > 16 * 1024);
    let (status, answer) = admin_post(&service, body.as_bytes()).await;
    assert_eq!(status, 413, "{answer}");
    assert_eq!(answer["error"], "too_large", "{answer}");
    // A 7 MB body too.
    let huge = format!("{{\"order_uid\": \"{}\"}}", "x".repeat(7 << 20));
    let (status, _) = admin_post(&service, huge.as_bytes()).await;
    assert_eq!(status, 413);
    // More ids than a request may name, within the byte limit: a 400 naming the bound.
    let ids: Vec<i64> = (1..=1_001).collect();
    let (status, answer) = admin_post(&service, json!({ "id": ids }).to_string().as_bytes()).await;
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("1000"),
        "{answer}"
    );
}

#[tokio::test]
async fn a_second_replay_while_one_runs_is_refused_not_interleaved() {
    let env = TestEnv::new("replayonce").await;
    let service = too_large_letters(&env, 2).await;
    // Stand in for a run in progress: hold the replay lock from another session.
    use diesel_async::SimpleAsyncConnection;
    let mut holder = env.db().await;
    holder
        .batch_execute(&format!(
            "SELECT pg_advisory_lock({})",
            orders_service::replay::LOCK_KEY
        ))
        .await
        .expect("take the lock");

    let (status, answer) = admin_post(&service, b"{}").await;
    assert_eq!(status, 409, "{answer}");
    assert_eq!(answer["error"], "conflict", "{answer}");
    let out = replay(&env, &[]);
    assert!(!out.status.success(), "the CLI must refuse too");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("another replay is running"), "{stderr}");
    assert_eq!(
        count_rows(&env, "SELECT count(*) AS n FROM orders").await,
        0
    );

    holder
        .batch_execute(&format!(
            "SELECT pg_advisory_unlock({})",
            orders_service::replay::LOCK_KEY
        ))
        .await
        .expect("release");
    let (status, answer) = admin_post(&service, b"{}").await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["stored"], 2, "{answer}");
}

#[tokio::test]
async fn a_run_whose_records_cannot_be_written_stores_no_order() {
    let env = TestEnv::new("replayatomic").await;
    let _service = too_large_letters(&env, 3).await;
    // The replay record is refused after the orders were written (as when retention deletes
    // the selected letter in between): nothing of the run may stay.
    env.sql(
        "CREATE FUNCTION refuse_replay() RETURNS trigger LANGUAGE plpgsql AS \
           $$ BEGIN RAISE EXCEPTION 'replay records refused by the test'; END $$; \
         CREATE TRIGGER refuse_replay BEFORE INSERT ON dead_letter_replays \
           FOR EACH ROW EXECUTE FUNCTION refuse_replay();",
    )
    .await;
    let out = replay(&env, &[]);
    assert!(!out.status.success(), "the run must fail");
    assert_eq!(
        count_rows(&env, "SELECT count(*) AS n FROM orders").await,
        0,
        "orders committed without their replay records"
    );

    env.sql("DROP TRIGGER refuse_replay ON dead_letter_replays")
        .await;
    let done = json_of(&replay(&env, &["--json"]));
    assert_eq!(done["stored"], 3, "{done}");
    assert_eq!(
        count_rows(&env, "SELECT count(*) AS n FROM dead_letter_replays").await,
        3
    );
}

/// Replay writes through the writers' policy: an order the database refuses on its own is
/// isolated and recorded `rejected` (`storage`), the others of the run are stored, and the
/// letter is replayed again once the cause is gone. Fails if replay calls the batch write
/// directly (one refused order would fail the whole run) or gives up the run on a refusal.
#[tokio::test]
async fn an_order_the_database_refuses_is_recorded_and_the_rest_of_the_run_stored() {
    let env = TestEnv::new("replayrefused").await;
    let _service = too_large_letters(&env, 4).await;
    env.sql(
        "CREATE FUNCTION refuse_big_2() RETURNS trigger LANGUAGE plpgsql AS \
           $$ BEGIN IF NEW.order_uid = 'big-2' THEN \
                RAISE EXCEPTION 'big-2 refused by the test'; END IF; RETURN NEW; END $$; \
         CREATE TRIGGER refuse_big_2 BEFORE INSERT ON orders \
           FOR EACH ROW EXECUTE FUNCTION refuse_big_2();",
    )
    .await;
    let run = json_of(&replay(&env, &["--json"]));
    assert_eq!(
        (&run["stored"], &run["rejected"]),
        (&json!(3), &json!(1)),
        "{run}"
    );
    let refused: Vec<&Value> = run["letters"]
        .as_array()
        .expect("letters")
        .iter()
        .filter(|l| l["result"] == "rejected")
        .collect();
    assert_eq!(refused.len(), 1, "{run}");
    assert_eq!(refused[0]["reason"], "storage", "{run}");
    assert_eq!(
        count_rows(&env, "SELECT count(*) AS n FROM orders").await,
        3
    );

    env.sql("DROP TRIGGER refuse_big_2 ON orders").await;
    let again = json_of(&replay(&env, &["--json"]));
    assert_eq!(again["stored"], 1, "{again}");
    assert_eq!(
        count_rows(&env, "SELECT count(*) AS n FROM orders").await,
        4
    );
}
