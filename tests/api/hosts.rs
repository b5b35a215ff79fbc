//! Several hosts in `DATABASE_URL`, libpq's way: `postgres://…@h1:p1,h2:p2/db?
//! target_session_attrs=read-write` connects to the first host that accepts writes — after a
//! failover, whichever is the primary now.

use std::time::Duration;

use crate::helpers::*;

/// The first host only takes reads (its database defaults to read-only transactions, what a
/// standby reports); the second is the test's own database. Catches a connect that takes
/// the first host that answers: migrations and writes would go to the read-only one and
/// fail (checked: without the `target_session_attrs` check the service never gets ready).
#[tokio::test]
async fn the_first_host_that_takes_writes_is_used() {
    let env = TestEnv::new("hosts").await;
    let (base, db) = env.database_url.rsplit_once('/').expect("url has a path");
    let primary = base.rsplit_once(':').expect("url has a port").1;
    let dir = env.path("readonly-pg");
    let _ = std::fs::remove_dir_all(&dir);
    let standby = PrivatePostgres::start(dir, &[]);
    standby.psql(
        "postgres",
        &format!("CREATE DATABASE \"{db}\" OWNER orders_app"),
    );
    standby.psql(
        "postgres",
        &format!("ALTER DATABASE \"{db}\" SET default_transaction_read_only = on"),
    );
    let hosts = |attrs: &str| {
        format!(
            "postgres://orders_app:orders_app@127.0.0.1:{},127.0.0.1:{primary}/{db}{attrs}",
            standby.port
        )
    };
    let read_write = hosts("?target_session_attrs=read-write");

    // Without the attribute the first host is taken, and refuses the migrations' writes.
    let out = run_migrate(&hosts(""), None);
    assert!(!out.status.success(), "migrated on the read-only host");
    // With only the read-only host, the error says why.
    let only_standby = format!(
        "postgres://orders_app:orders_app@127.0.0.1:{}/{db}?target_session_attrs=read-write",
        standby.port
    );
    let out = run_migrate(&only_standby, None);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("only accepts reads"), "{stderr}");

    let service = Service::start(&env, &[("DATABASE_URL", read_write.as_str())]);
    env.produce_orders((0..20).map(|i| format!("hosts-{i}")))
        .await;
    let stored = eventually(Duration::from_secs(30), || async {
        count(&mut env.db().await, "SELECT count(*) AS n FROM orders").await == 20
    })
    .await;
    assert!(stored, "log:\n{}", service.log_text());
    let (status, order) = get_json(&service, "/order/hosts-7").await;
    assert_eq!(status, 200, "{order}");
}
