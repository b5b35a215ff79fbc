//! The operator's boundary: what answers on which listener, the admin token, the admin
//! listener that is never open by accident (refused off loopback without a token, loopback
//! `Host` names only without one), answers with personal data that no cache keeps, the probes,
//! and the runtime database role that can read and insert but never rewrite history.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

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

    for path in ["/metrics", "/stats", "/dead-letters", "/orders"] {
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
            .any(|l| l == "orders_admin_unauthorized_total 8"),
        "eight refused requests counted:\n{}",
        metrics
            .lines()
            .filter(|l| l.contains("unauthorized"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[tokio::test]
async fn a_refused_admin_request_carries_the_security_headers_and_is_logged_with_its_client() {
    let env = TestEnv::new("refusedlog").await;
    let service = Service::start(&env, &[("ADMIN_TOKEN", TOKEN), ("LOG_FORMAT", "json")]);
    let refused = http()
        .post(service.admin_url("/dead-letters/replay"))
        .header("x-request-id", "refused-1")
        .json(&serde_json::json!({"dry_run": true}))
        .send()
        .await
        .expect("replay");
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    let headers = refused.headers();
    assert_eq!(headers["x-request-id"], "refused-1");
    for name in [
        "content-security-policy",
        "x-content-type-options",
        "x-frame-options",
        "referrer-policy",
    ] {
        assert!(
            headers.contains_key(name),
            "the 401 lacks {name}: {headers:?}"
        );
    }
    let logged = eventually(Duration::from_secs(10), || {
        let log = service.log_text();
        async move { log.contains("refused-1") }
    })
    .await;
    assert!(logged, "no access line:\n{}", service.log_text());
    let line: serde_json::Value = service
        .log_text()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|l| l["request_id"] == "refused-1")
        .expect("access line");
    assert_eq!(line["target"], "orders_service::access", "{line}");
    assert_eq!(line["status"], 401, "{line}");
    assert_eq!(line["client"], "127.0.0.1", "{line}");
    assert_eq!(line["route"], "/dead-letters/replay", "{line}");
}

/// `GET`s `path` on the admin listener naming `host` in the `Host` header.
async fn admin_get_as(service: &Service, host: &str, path: &str) -> reqwest::Response {
    http()
        .get(service.admin_url(path))
        .header(reqwest::header::HOST, host)
        .send()
        .await
        .expect("admin request")
}

#[tokio::test]
async fn without_a_token_the_admin_listener_answers_only_requests_addressed_to_loopback() {
    let env = TestEnv::new("rebind").await;
    let service = Service::start(&env, &[]);
    let port = service.admin.rsplit(':').next().expect("port").to_string();
    for host in [
        format!("localhost:{port}"),
        "localhost".to_string(),
        format!("127.0.0.1:{port}"),
        format!("127.0.0.2:{port}"),
        format!("[::1]:{port}"),
    ] {
        let res = admin_get_as(&service, &host, "/dead-letters").await;
        assert_eq!(res.status(), StatusCode::OK, "Host: {host}");
    }
    // What a DNS-rebinding page sends: its own name, resolved to 127.0.0.1.
    for host in [
        format!("rebind.example:{port}"),
        "localhost.rebind.example".to_string(),
        format!("127.0.0.1.rebind.example:{port}"),
        format!("192.168.1.5:{port}"),
    ] {
        for path in ["/dead-letters", "/orders", "/", "/admin/main.js", "/stats"] {
            let res = admin_get_as(&service, &host, path).await;
            assert_eq!(
                res.status(),
                StatusCode::MISDIRECTED_REQUEST,
                "Host: {host}, {path}"
            );
            assert!(res.headers().contains_key("x-request-id"));
            assert!(res.headers().contains_key("content-security-policy"));
            let body: serde_json::Value = res.json().await.expect("json");
            assert_eq!(body["error"], "misdirected_request", "{body}");
        }
    }
    let replay = http()
        .post(service.admin_url("/dead-letters/replay"))
        .header(reqwest::header::HOST, format!("rebind.example:{port}"))
        .json(&serde_json::json!({}))
        .send()
        .await
        .expect("replay");
    assert_eq!(replay.status(), StatusCode::MISDIRECTED_REQUEST);
    // The public listener has no such rule: any name may reach the page and the orders.
    let public = http()
        .get(service.url("/health/ready"))
        .header(reqwest::header::HOST, "orders.example")
        .send()
        .await
        .expect("public");
    assert_eq!(public.status(), StatusCode::OK);
    assert!(
        service.log_text().contains("is not a loopback name"),
        "{}",
        service.log_text()
    );
}

/// Runs the service with `extra` on top of the test's environment, expecting it to refuse to
/// start: returns its exit code and stderr (fails if it is still running after 20 s).
fn refused_start(env: &TestEnv, extra: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_orders-service"))
        .current_dir(std::env::temp_dir())
        .env_clear()
        .envs(env.service_env())
        .envs(extra.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run");
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "it started with {extra:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = child.wait_with_output().expect("output");
    (
        status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn an_admin_listener_open_by_accident_or_guarded_by_a_placeholder_does_not_start() {
    let env = TestEnv::new("protected").await;
    let (code, stderr) = refused_start(&env, &[("ADMIN_ADDR", "0.0.0.0:0")]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("ADMIN_ADDR=") && stderr.contains("ADMIN_TOKEN is not set"),
        "{stderr}"
    );
    for token in ["orders-admin-token-change-me", "ChangeMe-0123456789abcdef"] {
        let (code, stderr) = refused_start(&env, &[("ADMIN_TOKEN", token)]);
        assert_eq!(code, Some(2), "{stderr}");
        assert!(
            stderr.contains("ADMIN_TOKEN=") && stderr.contains("placeholder"),
            "{stderr}"
        );
        assert!(!stderr.contains(token), "the token is shown: {stderr}");
    }
    let (code, stderr) = refused_start(&env, &[("PUBLIC_ORDER_LIST", "sometimes")]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("PUBLIC_ORDER_LIST="), "{stderr}");
    // With a token the same address starts.
    let service = Service::start(&env, &[("ADMIN_ADDR", "0.0.0.0:0"), ("ADMIN_TOKEN", TOKEN)]);
    let res = admin_get(&service, "/stats", Some(TOKEN)).await;
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn answers_with_personal_data_are_kept_by_no_cache() {
    let env = TestEnv::new("nostore").await;
    let service = Service::start(&env, &[("ADMIN_TOKEN", TOKEN)]);
    env.produce_orders(["nostore-1".to_string()]).await;
    env.produce(&[("broken", b"{".to_vec())]).await;
    assert!(wait_until_drained(&env, Duration::from_secs(30)).await);
    let client = http();
    let mut answers = vec![(
        "public /order".to_string(),
        client.get(service.url("/order/nostore-1")),
    )];
    for path in ["/orders", "/order/nostore-1", "/dead-letters"] {
        answers.push((
            format!("admin {path}"),
            client.get(service.admin_url(path)).bearer_auth(TOKEN),
        ));
    }
    answers.push((
        "admin replay".to_string(),
        client
            .post(service.admin_url("/dead-letters/replay"))
            .bearer_auth(TOKEN)
            .json(&serde_json::json!({"dry_run": true})),
    ));
    for (what, request) in answers {
        let res = request.send().await.expect("request");
        assert_eq!(res.status(), StatusCode::OK, "{what}");
        assert_eq!(res.headers()["cache-control"], "no-store", "{what}");
    }
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

/// The rows of the README's configuration table: variable → default (`None`: a default cell
/// in parentheses or a dash; a remark after the value, in parentheses, is left out).
fn readme_defaults() -> std::collections::BTreeMap<String, Option<String>> {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).expect("README.md");
    let section = readme
        .split("\n## ")
        .find(|s| s.starts_with("Configuration"))
        .expect("a Configuration section");
    let mut rows = std::collections::BTreeMap::new();
    for line in section.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.split(" | ").collect();
        let default = cells[1].replace('`', "");
        let default = default.trim();
        let default = (!(default.starts_with('(') || default == "—"))
            .then(|| default.split(" (").next().unwrap_or(default).to_string());
        for name in cells[0].split('`').skip(1).step_by(2) {
            rows.insert(name.to_string(), default.clone());
        }
    }
    rows
}

/// Catches `orders-service --help` and the README's table drifting apart (a variable or a
/// default in one and not the other), and a secret's value printed by `--help`.
#[test]
fn the_help_lists_the_readmes_variables_with_their_defaults_and_no_secret() {
    let out = Command::new(env!("CARGO_BIN_EXE_orders-service"))
        .current_dir(std::env::temp_dir())
        .env_clear()
        .env("DATABASE_URL", "postgres://app:help-s3cret@127.0.0.1/db")
        .env(
            "MIGRATION_DATABASE_URL",
            "postgres://own:help-s3cret@127.0.0.1/db",
        )
        .env("ADMIN_TOKEN", "help-s3cret-0123456789")
        .env("KAFKA_SASL_PASSWORD", "help-s3cret")
        .env("WRITERS", "3")
        .arg("--help")
        .output()
        .expect("run");
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{help}");
    assert!(!help.contains("s3cret"), "a secret in --help:\n{help}");
    assert!(
        help.contains("[env: WRITERS=3]"),
        "other values are shown:\n{help}"
    );
    let setting = regex::Regex::new(r"\[env: ([A-Z0-9_]+)[^\]]*\](?: \[default: ([^\]]*)\])?")
        .expect("regex");
    let mut listed: std::collections::BTreeMap<String, Option<String>> = setting
        .captures_iter(&help)
        .map(|c| (c[1].to_string(), c.get(2).map(|d| d.as_str().to_string())))
        .collect();
    // The variables read besides the settings, listed after them.
    let other = help
        .split("Also read from the environment:")
        .nth(1)
        .expect("the other variables are listed");
    let name =
        regex::Regex::new(r"(?m)^  (\S+)\n\s+.*?(?:\[default: ([^\]]*)\])?$").expect("regex");
    for c in name.captures_iter(other) {
        listed.insert(c[1].to_string(), c.get(2).map(|d| d.as_str().to_string()));
    }
    assert!(listed.len() >= 40, "{listed:?}");
    assert_eq!(
        listed,
        readme_defaults(),
        "--help (left) vs the README's table (right)"
    );
}
