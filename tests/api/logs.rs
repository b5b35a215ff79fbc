//! Structured logs: `LOG_FORMAT=json` gives one JSON object per line with the fields that
//! matter; the access log and `X-Request-Id` (kept when sane, made otherwise, always returned).

use std::time::Duration;

use serde_json::Value;

use crate::helpers::*;

#[tokio::test]
async fn json_logs_carry_the_fields_and_every_request_has_an_id() {
    let env = TestEnv::new("jsonlogs").await;
    let service = Service::start(&env, &[("LOG_FORMAT", "json")]);
    let client = http();

    let kept = client
        .get(service.url("/order/nope_1"))
        .header("x-request-id", "trace-42.a_b")
        .send()
        .await
        .expect("get");
    assert_eq!(kept.status().as_u16(), 404);
    assert_eq!(kept.headers()["x-request-id"], "trace-42.a_b");
    let made = client
        .get(service.url("/health/live"))
        .header("x-request-id", "forged\tline")
        .send()
        .await
        .expect("get");
    let made_id = made.headers()["x-request-id"]
        .to_str()
        .expect("ascii")
        .to_string();
    assert_eq!(made_id.len(), 16, "{made_id}");
    assert!(made_id.chars().all(|c| c.is_ascii_hexdigit()), "{made_id}");
    // The admin listener too, a refusal included.
    let admin = client
        .get(service.admin_url("/nothing"))
        .send()
        .await
        .expect("get");
    assert!(admin.headers().contains_key("x-request-id"));

    env.produce(&[("bad-json-log", b"{".to_vec())]).await;
    let lines = |service: &Service| -> Vec<Value> {
        service
            .log_text()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect()
    };
    let logged = eventually(Duration::from_secs(20), || {
        let lines = lines(&service);
        async move { lines.iter().any(|l| l["reason"] == "malformed") }
    })
    .await;
    assert!(logged, "no rejection line:\n{}", service.log_text());

    let lines = lines(&service);
    for line in &lines {
        for field in ["time", "level", "target", "message"] {
            assert!(line[field].is_string(), "{field} missing: {line}");
        }
    }
    let rejection = lines
        .iter()
        .find(|l| l["reason"] == "malformed")
        .expect("rejection");
    assert!(
        rejection["partition"].is_i64() && rejection["offset"].is_i64(),
        "{rejection}"
    );
    let access = lines
        .iter()
        .find(|l| l["request_id"] == "trace-42.a_b")
        .expect("access line");
    assert_eq!(access["target"], "orders_service::access");
    assert_eq!(access["method"], "GET");
    assert_eq!(
        access["route"], "/order/{order_uid}",
        "the template, never the id"
    );
    assert_eq!(access["status"], 404);
    assert!(access["duration_ms"].is_f64(), "{access}");
    assert!(lines.iter().any(|l| l["request_id"] == made_id.as_str()));
}

#[tokio::test]
async fn the_access_log_can_be_turned_off_and_a_bad_log_format_is_named() {
    let env = TestEnv::new("noaccess").await;
    let service = Service::start(&env, &[("ACCESS_LOG", "false")]);
    for _ in 0..5 {
        let _ = get_json(&service, "/order/quiet_1").await;
    }
    assert_eq!(get_json(&service, "/health/live").await.0, 200);
    // After the stop, when the log's queue has been written out: an access line that was
    // still queued cannot hide.
    let log = service.log.clone();
    assert!(service.terminate(Duration::from_secs(20)).is_some());
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(text.contains("shutdown complete"), "{text}");
    assert!(!text.contains("orders_service::access"), "{text}");

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_orders-service"))
        .current_dir(std::env::temp_dir())
        .env_clear()
        .envs(env.service_env())
        .env("LOG_FORMAT", "xml")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("LOG_FORMAT"));
}

/// The log is written by its own thread, access lines in batches: what was logged before a
/// SIGTERM is in the log after the exit, the last requests' lines included.
#[tokio::test]
async fn every_line_logged_before_a_sigterm_is_written_out() {
    let env = TestEnv::new("logflush").await;
    let service = Service::start(&env, &[]);
    let client = http();
    let requests = 300;
    for i in 0..requests {
        let res = client
            .get(service.url("/health/live"))
            .header("x-request-id", format!("flush-{i}"))
            .send()
            .await
            .expect("get");
        assert_eq!(res.status().as_u16(), 200);
    }
    let log = service.log.clone();
    let status = service
        .terminate(Duration::from_secs(20))
        .expect("exited before the deadline");
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(status.success(), "exit status {status}; log:\n{text}");
    let logged: std::collections::HashSet<&str> = text
        .split_whitespace()
        .filter_map(|word| word.strip_prefix("request_id=flush-"))
        .collect();
    let missing: Vec<usize> = (0..requests)
        .filter(|i| !logged.contains(i.to_string().as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {requests} access lines missing (first: {:?}); log:\n{text}",
        missing.len(),
        missing.first()
    );
    assert!(
        text.trim_end().ends_with("shutdown complete"),
        "the last line is missing; log:\n{text}"
    );
}

/// Every output of a process (its log file or stderr, and stdout).
fn outputs(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Catches a password printed in any of its forms — the URL's userinfo, its `password=`
/// query parameter (the driver accepts it; hiding the userinfo alone misses it), a
/// key-value connection string — in the log of a service that waits for an unreachable
/// database, one refused for a wrong password, a failed migration, the start-up errors of
/// a bad URL, and the commands. Each run gets its own canary, so a failure names the path.
#[tokio::test]
async fn no_database_password_reaches_a_log_line_or_an_error() {
    let env = TestEnv::new("secrets").await;
    let real = env.database_url.clone();
    let (base, db) = real.rsplit_once('/').expect("url has a path");
    let authority = base
        .split_once('@')
        .map(|(_, hostport)| hostport)
        .expect("url has userinfo");
    // A port nothing listens on.
    let nowhere = server_port();
    let runs: [(&str, String, Option<String>); 4] = [
        (
            "canary-query-nowhere",
            format!(
                "postgres://orders_app@127.0.0.1:{nowhere}/{db}?password=canary-query-nowhere&sslmode=disable"
            ),
            None,
        ),
        (
            "canary-userinfo-wrong",
            format!("postgres://orders_app:canary-userinfo-wrong@{authority}/{db}"),
            None,
        ),
        (
            "canary-query-wrong",
            format!(
                "postgres://orders_app@{authority}/{db}?application_name=x&password=canary-query-wrong"
            ),
            None,
        ),
        // The runtime URL works; the owner's (for the pending migrations) has a wrong
        // password in its query: the start-up fails in the migration step.
        (
            "canary-migration",
            real.clone(),
            Some(format!(
                "postgres://orders_app@{authority}/{db}?password=canary-migration"
            )),
        ),
    ];
    for (canary, url, migration) in runs {
        let mut extra = vec![
            ("DATABASE_URL", url.as_str()),
            ("RUST_LOG", "debug,librdkafka=warn,rdkafka=warn"),
        ];
        if let Some(m) = &migration {
            extra.push(("MIGRATION_DATABASE_URL", m.as_str()));
        }
        let mut service = Service::spawn(&env, &extra, Duration::from_secs(30)).expect("listens");
        // Sequenced by the log: two failed attempts (the pool's too), or the exit.
        let failed = eventually(Duration::from_secs(30), || {
            let log = service.log_text();
            let exited = service.exited().is_some();
            async move {
                exited
                    || (log.matches("waiting for the database").count() >= 2
                        && log.contains("database connection failed"))
            }
        })
        .await;
        let log = service.log_text();
        assert!(failed, "{canary}: no failure logged:\n{log}");
        assert!(!log.contains(canary), "{canary} is in the log:\n{log}");
        if migration.is_some() {
            assert!(log.contains("migrations"), "{canary}:\n{log}");
        } else {
            assert!(
                log.contains("password=***") || log.contains(":***@"),
                "{canary}:\n{log}"
            );
        }
        drop(service);
    }

    // Start-up errors of a URL that cannot be used, and the commands.
    let run = |args: &[&str], url: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_orders-service"))
            .args(args)
            .current_dir(std::env::temp_dir())
            .env_clear()
            .env("DATABASE_URL", url)
            .env("DEAD_LETTER_RETENTION_DAYS", "30")
            .output()
            .expect("run")
    };
    let commands: &[&[&str]] = &[&["migrate"], &["retention"], &["replay", "--dry-run"]];
    let all: &[&[&str]] = &[
        &["serve"],
        &["migrate"],
        &["retention"],
        &["replay", "--dry-run"],
    ];
    for (canary, url, code, commands) in [
        (
            "canary-kv",
            format!("host=127.0.0.1 user=orders_app password='canary-kv x' dbname={db}"),
            2,
            all,
        ),
        (
            "canary-port",
            format!("postgres://orders_app:canary-port@127.0.0.1:notaport/{db}"),
            2,
            all,
        ),
        (
            "canary-mode",
            format!("postgres://orders_app@127.0.0.1/{db}?password=canary-mode&sslmode=often"),
            2,
            all,
        ),
        // Configuration accepted, nothing listening: the commands fail (`serve` waits, above).
        (
            "canary-cmd",
            format!("postgres://orders_app@127.0.0.1:{nowhere}/{db}?password=canary-cmd"),
            1,
            commands,
        ),
    ] {
        for args in commands {
            let out = run(args, &url);
            let printed = outputs(&out);
            assert_eq!(
                out.status.code(),
                Some(code),
                "{args:?} {canary}:\n{printed}"
            );
            assert!(
                printed.contains("DATABASE_URL") || printed.contains("127.0.0.1"),
                "{args:?}:\n{printed}"
            );
            assert!(
                !printed.contains(canary),
                "{args:?} prints {canary}:\n{printed}"
            );
        }
    }
}
