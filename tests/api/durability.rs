//! Case 3 of "fail loud": "committed offset ⇒ durable order" must not rest on the server's
//! defaults. The test database defaults to `synchronous_commit = off` and the WAL writer
//! flushes only every 10 s, so an asynchronous commit stays in shared memory for seconds;
//! PostgreSQL is then crashed (SIGKILL of every process) right after the offsets were
//! committed. Every order whose offset was committed must be there after recovery. Without
//! the service's own `SET LOCAL synchronous_commit TO on`, the last transactions of each
//! round are lost (a crash between their commit and the WAL writer's next flush).
//!
//! It crashes the shared PostgreSQL: it takes the infrastructure for itself (`TestEnv::exclusive`).

use std::time::Duration;

use crate::helpers::*;
use diesel::sql_query;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

async fn admin() -> AsyncPgConnection {
    AsyncPgConnection::establish(&env("TEST_ADMIN_DATABASE_URL"))
        .await
        .expect("connect as admin")
}

async fn set_wal_writer_delay(value: &str) {
    let mut conn = admin().await;
    sql_query(format!("ALTER SYSTEM SET wal_writer_delay = '{value}'"))
        .execute(&mut conn)
        .await
        .expect("alter system");
    sql_query("SELECT pg_reload_conf()")
        .execute(&mut conn)
        .await
        .expect("reload");
}

#[tokio::test]
async fn committed_orders_survive_a_database_crash_whatever_the_default_commit_mode() {
    let env = TestEnv::exclusive("durability").await;
    let db = env
        .database_url
        .rsplit('/')
        .next()
        .expect("db name")
        .to_string();
    sql_query(format!(
        "ALTER DATABASE \"{db}\" SET synchronous_commit = off"
    ))
    .execute(&mut admin().await)
    .await
    .expect("alter database");
    set_wal_writer_delay("10s").await;

    let mut produced = 0;
    for round in 0..3 {
        let service = Service::start(&env, &[]);
        let sent = env
            .produce_orders((0..30).map(|i| format!("durable-{round}-{i}")))
            .await;
        produced += sent.len() as i64;
        assert!(
            wait_until_drained(&env, Duration::from_secs(60)).await,
            "round {round}: not drained; log:\n{}",
            service.log_text()
        );
        // Offsets are committed: crash everything at once.
        service.kill();
        infra(&env, "pg", "kill", "pg");
        infra(&env, "pg", "start", "pg");
        let stored = count(&mut env.db().await, "SELECT count(*) AS n FROM orders").await;
        assert_eq!(
            stored, produced,
            "round {round}: orders whose offsets were committed are gone after a database crash"
        );
    }
    set_wal_writer_delay("200ms").await;
}
