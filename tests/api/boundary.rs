//! The operator's boundary: what answers on which listener, the admin token, the probes, and
//! the runtime database role that can read and insert but never rewrite history.

use std::time::Duration;

use diesel::sql_query;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use reqwest::StatusCode;

use crate::helpers::*;

const TOKEN: &str = "test-admin-token-0123456789";

/// `GET path` on the admin listener, with this bearer token if any.
async fn admin_get(service: &Service, path: &str, token: Option<&str>) -> reqwest::Response {
    let request = http().get(service.admin_url(path));
    let request = match token {
        Some(token) => request.bearer_auth(token),
        None => request,
    };
    request.send().await.expect("admin request")
}

#[tokio::test]
async fn admin_endpoints_answer_only_on_the_admin_listener_and_only_with_the_token() {
    let env = TestEnv::new("admin").await;
    let service = Service::start(&env, &[("ADMIN_TOKEN", TOKEN)]);
    let client = http();

    for path in ["/metrics", "/stats", "/dead-letters"] {
        let public = client.get(service.url(path)).send().await.expect("public");
        assert_eq!(public.status(), StatusCode::NOT_FOUND, "public {path}");

        let anonymous = admin_get(&service, path, None).await;
        assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED, "{path}");
        assert!(
            anonymous
                .headers()
                .get("www-authenticate")
                .is_some_and(|v| v.to_str().unwrap_or_default().starts_with("Bearer")),
            "{path}: WWW-Authenticate"
        );
        let body: serde_json::Value = anonymous.json().await.expect("json");
        assert_eq!(body["error"], "unauthorized", "{body}");

        // Same length, last character wrong: compared whole.
        let almost = format!("{}X", &TOKEN[..TOKEN.len() - 1]);
        let wrong = admin_get(&service, path, Some(&almost)).await;
        assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED, "{path}");

        let right = admin_get(&service, path, Some(TOKEN)).await;
        assert_eq!(right.status(), StatusCode::OK, "{path}");
    }

    // Probes: public, no token, GET and HEAD.
    for path in ["/health/live", "/health/ready", "/health"] {
        let get = client.get(service.url(path)).send().await.expect("get");
        assert_eq!(get.status(), StatusCode::OK, "GET {path}");
        let head = client.head(service.url(path)).send().await.expect("head");
        assert_eq!(head.status(), StatusCode::OK, "HEAD {path}");
        assert!(
            head.bytes().await.expect("body").is_empty(),
            "HEAD {path} has a body"
        );
    }
    let live: serde_json::Value = client
        .get(service.url("/health/live"))
        .send()
        .await
        .expect("live")
        .json()
        .await
        .expect("json");
    assert_eq!(live["status"], "live");

    let metrics = client
        .get(service.admin_url("/metrics"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics
            .lines()
            .any(|l| l == "orders_admin_unauthorized_total 6"),
        "six refused requests counted:\n{}",
        metrics
            .lines()
            .filter(|l| l.contains("unauthorized"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// A database of its own, owned by `orders_owner` (as `scripts/pg` sets up `orders`), with
/// the runtime role's URL and the owner's.
async fn owner_database(name: &str) -> (String, String) {
    let admin_url = env("TEST_ADMIN_DATABASE_URL");
    let mut admin = AsyncPgConnection::establish(&admin_url)
        .await
        .expect("connect as admin");
    let db = format!("t_{name}_{}", std::process::id()).to_lowercase();
    sql_query(format!("DROP DATABASE IF EXISTS \"{db}\""))
        .execute(&mut admin)
        .await
        .expect("drop");
    sql_query(format!("CREATE DATABASE \"{db}\" OWNER orders_owner"))
        .execute(&mut admin)
        .await
        .expect("create");
    let (base, _) = admin_url.rsplit_once('/').expect("url has a path");
    let url = |user: &str| format!("{base}/{db}").replace("postgres:postgres@", user);
    (
        url("orders_owner:orders_owner@"),
        url("orders_app:orders_app@"),
    )
}

#[tokio::test]
async fn the_runtime_role_reads_and_inserts_but_cannot_rewrite_history() {
    let env = TestEnv::new("roles").await;
    let (owner_url, runtime_url) = owner_database("roles").await;

    // Without the owner's URL, migrations fail loud and name the setting.
    let mut failing = Service::spawn(
        &env,
        &[("DATABASE_URL", &runtime_url)],
        Duration::from_secs(30),
    )
    .expect("listens");
    let exited = eventually(Duration::from_secs(60), || {
        let status = failing.exited();
        async move { status.is_some() }
    })
    .await;
    assert!(exited, "the service should stop when it cannot migrate");
    let log = failing.log_text();
    assert!(log.contains("MIGRATION_DATABASE_URL"), "{log}");
    drop(failing);

    // `orders-service migrate` as the owner grants the runtime role its rights.
    let out = run_migrate(&runtime_url, Some(&owner_url));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The service runs as the runtime role: it stores and dead-letters.
    let service = Service::start(&env, &[("DATABASE_URL", &runtime_url)]);
    env.produce_orders((0..10).map(|i| format!("role-{i}")))
        .await;
    env.produce(&[("bad", b"{".to_vec())]).await;
    let mut runtime = AsyncPgConnection::establish(&runtime_url)
        .await
        .expect("connect as the runtime role");
    let stored = eventually(Duration::from_secs(30), || async {
        let mut conn = AsyncPgConnection::establish(&runtime_url)
            .await
            .expect("connect");
        count(&mut conn, "SELECT count(*) AS n FROM orders").await == 10
            && count(&mut conn, "SELECT count(*) AS n FROM dead_letters").await == 1
    })
    .await;
    assert!(stored, "log:\n{}", service.log_text());

    assert_history_is_read_and_insert_only(&mut runtime).await;
    assert_eq!(
        count(&mut runtime, "SELECT count(*) AS n FROM orders").await,
        10
    );
    assert_eq!(
        count(&mut runtime, "SELECT count(*) AS n FROM items").await,
        10
    );

    // The same on the project's own set-up: `scripts/pg`'s `orders` database and roles,
    // migrated by `orders-service migrate` with the URLs `scripts/infra` prints.
    let admin_url = crate::helpers::env("TEST_ADMIN_DATABASE_URL");
    let (base, _) = admin_url.rsplit_once('/').expect("url has a path");
    let own = |user: &str| format!("{base}/orders").replace("postgres:postgres@", user);
    let out = run_migrate(
        &own("orders_app:orders_app@"),
        Some(&own("orders_owner:orders_owner@")),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut runtime = AsyncPgConnection::establish(&own("orders_app:orders_app@"))
        .await
        .expect("connect to scripts/pg's orders database");
    assert_history_is_read_and_insert_only(&mut runtime).await;
}

/// Everything that would rewrite or drop history is refused to the runtime role.
async fn assert_history_is_read_and_insert_only(runtime: &mut AsyncPgConnection) {
    for statement in [
        "UPDATE orders SET customer_id = 'someone else'",
        "DELETE FROM orders",
        "DELETE FROM payments",
        "UPDATE dead_letters SET reason = 'malformed'",
        "UPDATE dead_letter_replays SET result = 'stored'",
        "DELETE FROM dead_letter_replays",
        "TRUNCATE items",
        "TRUNCATE orders CASCADE",
        "DROP TABLE dead_letters",
        "ALTER TABLE orders ADD COLUMN note text",
        "CREATE TABLE scratch (id int)",
        "CREATE INDEX ON orders (customer_id)",
        "DELETE FROM __diesel_schema_migrations",
    ] {
        let result = sql_query(statement).execute(&mut *runtime).await;
        let err = result.expect_err(statement).to_string();
        assert!(
            err.contains("permission denied") || err.contains("must be owner"),
            "{statement}: {err}"
        );
    }
}
