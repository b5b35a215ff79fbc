//! Least privilege and retention, with the two roles of a real set-up: `orders_owner` owns
//! the tables and runs migrations and `orders-service retention`; the service's runtime role
//! `orders_app` may only SELECT and INSERT — PostgreSQL itself refuses it a DELETE, even
//! when an older set-up had granted one.

use std::process::{Command, Output};
use std::time::Duration;

use diesel::sql_query;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};

use crate::helpers::*;

/// A database owned by `orders_owner` that `orders_app` may connect to, migrated with
/// `orders_app` as the runtime role: (runtime URL, owner URL).
async fn database_with_two_roles(env: &TestEnv) -> (String, String) {
    let admin_url = crate::helpers::env("TEST_ADMIN_DATABASE_URL");
    let db = format!("{}_roles", env.name).to_lowercase();
    let mut admin = AsyncPgConnection::establish(&admin_url)
        .await
        .expect("connect as admin");
    // One statement each: CREATE DATABASE may not run in a (multi-statement) transaction.
    for statement in [
        format!("CREATE DATABASE \"{db}\" OWNER orders_owner"),
        format!("REVOKE ALL ON DATABASE \"{db}\" FROM PUBLIC"),
        format!("GRANT CONNECT ON DATABASE \"{db}\" TO orders_app"),
    ] {
        admin
            .batch_execute(&statement)
            .await
            .unwrap_or_else(|e| panic!("{statement}: {e}"));
    }
    let url = |role: &str| {
        admin_url
            .replace("postgres:postgres@", &format!("{role}:{role}@"))
            .rsplit_once('/')
            .map(|(base, _)| format!("{base}/{db}"))
            .expect("url has a path")
    };
    let (app, owner) = (url("orders_app"), url("orders_owner"));
    let out = run_migrate(&app, Some(&owner));
    assert!(
        out.status.success(),
        "migrate: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (app, owner)
}

/// `orders-service retention ARGS` with exactly these variables.
fn retention(vars: &[(&str, &str)], args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_orders-service"))
        .arg("retention")
        .args(args)
        .current_dir(std::env::temp_dir())
        .env_clear()
        .envs(vars.iter().copied())
        .output()
        .expect("run orders-service retention")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

async fn dead_letter_count(url: &str) -> i64 {
    let mut conn = AsyncPgConnection::establish(url).await.expect("connect");
    count(&mut conn, "SELECT count(*) AS n FROM dead_letters").await
}

/// Catches a runtime role that may delete: a grant of `SELECT, INSERT, DELETE` on
/// `dead_letters`, and a grant step that adds rights without revoking the ones the role
/// already has (it keeps a DELETE granted by hand after `migrate`); and a start-up that
/// does not say so.
#[tokio::test]
async fn the_runtime_role_may_not_delete_and_migrate_takes_back_an_old_grant() {
    let env = TestEnv::new("no_delete").await;
    let (app, owner) = database_with_two_roles(&env).await;
    let mut owner_conn = AsyncPgConnection::establish(&owner).await.expect("owner");
    owner_conn
        .batch_execute(
            "INSERT INTO dead_letters (topic, kafka_partition, kafka_offset, payload, reason, detail) \
             VALUES ('t', 0, 1, '{', 'malformed', 'd')",
        )
        .await
        .expect("a dead letter");

    let refused = |url: String| async move {
        let mut conn = AsyncPgConnection::establish(&url).await.expect("app");
        sql_query("DELETE FROM dead_letters")
            .execute(&mut conn)
            .await
            .expect_err("the runtime role deleted dead letters")
            .to_string()
    };
    let error = refused(app.clone()).await;
    assert!(error.contains("permission denied"), "{error}");

    // A role that was given DELETE for retention.
    owner_conn
        .batch_execute("GRANT DELETE ON dead_letters TO orders_app")
        .await
        .expect("grant");
    let service = Service::start(&env, &[("DATABASE_URL", app.as_str())]);
    let warned = eventually(Duration::from_secs(10), || {
        let log = service.log_text();
        async move { log.contains("may do more than SELECT and INSERT (dead_letters: DELETE)") }
    })
    .await;
    assert!(warned, "no warning; log:\n{}", service.log_text());
    drop(service);
    // `migrate` with the owner takes it back.
    let out = run_migrate(&app, Some(&owner));
    assert!(out.status.success(), "{}", text(&out));
    let error = refused(app.clone()).await;
    assert!(error.contains("permission denied"), "{error}");
    assert_eq!(dead_letter_count(&owner).await, 1, "nothing was deleted");
    let service = Service::start(&env, &[("DATABASE_URL", app.as_str())]);
    assert!(
        !service.log_text().contains("may do more than"),
        "{}",
        service.log_text()
    );
}

/// Catches a retention that deletes too much (the recent letter) or too little (a batch
/// loop that stops after the first batch: 2,500 old letters take three), that cannot
/// delete a letter with a replay history, that runs as the runtime role, or that fails
/// without saying why.
#[tokio::test]
async fn retention_deletes_old_dead_letters_as_the_owner_and_keeps_the_rest() {
    let env = TestEnv::new("retention").await;
    let (app, owner) = database_with_two_roles(&env).await;
    AsyncPgConnection::establish(&owner)
        .await
        .expect("owner")
        .batch_execute(
            "INSERT INTO dead_letters (topic, kafka_partition, kafka_offset, payload, reason, detail, received_at) \
             SELECT 't', 0, g, '{', 'malformed', 'd', now() - interval '40 days' FROM generate_series(1, 2500) g; \
             INSERT INTO dead_letters (topic, kafka_partition, kafka_offset, payload, reason, detail, received_at) \
             VALUES ('t', 0, 9999, '{', 'malformed', 'd', now() - interval '29 days'); \
             INSERT INTO dead_letter_replays (dead_letter_id, result) \
             SELECT min(id), 'rejected' FROM dead_letters",
        )
        .await
        .expect("dead letters");

    let as_owner = [
        ("DATABASE_URL", app.as_str()),
        ("MIGRATION_DATABASE_URL", owner.as_str()),
        ("DEAD_LETTER_RETENTION_DAYS", "30"),
    ];
    // As the runtime role: refused before anything is deleted, and said how to fix it.
    let out = retention(&as_owner[..1], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("may not DELETE") && text(&out).contains("MIGRATION_DATABASE_URL"),
        "{}",
        text(&out)
    );
    assert_eq!(dead_letter_count(&owner).await, 2501);

    let out = retention(&as_owner, &["--dry-run"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("2500 dead letters"), "{}", text(&out));
    assert_eq!(
        dead_letter_count(&owner).await,
        2501,
        "a dry run deletes nothing"
    );

    let out = retention(&as_owner, &[]);
    assert!(out.status.success(), "{}", text(&out));
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        printed.contains("deleted 2500 dead letters") && printed.contains("3 batch(es)"),
        "{printed}"
    );
    assert_eq!(dead_letter_count(&owner).await, 1, "the recent one is kept");

    let out = retention(&as_owner, &[]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("deleted 0 dead letters"),
        "{}",
        text(&out)
    );
    let keep_all = [
        as_owner[0],
        as_owner[1],
        ("DEAD_LETTER_RETENTION_DAYS", "0"),
    ];
    let out = retention(&keep_all, &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("kept for ever"), "{}", text(&out));

    // A database that does not answer: a clear error, non-zero, no password.
    let down = [
        (
            "DATABASE_URL",
            "postgres://orders_owner@127.0.0.1:9/orders?password=retention-canary",
        ),
        ("DEAD_LETTER_RETENTION_DAYS", "30"),
    ];
    let out = retention(&down, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("Failed to connect"), "{}", text(&out));
    assert!(!text(&out).contains("retention-canary"), "{}", text(&out));
}
