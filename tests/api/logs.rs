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
    assert!(
        !service.log_text().contains("orders_service::access"),
        "{}",
        service.log_text()
    );
    drop(service);

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
