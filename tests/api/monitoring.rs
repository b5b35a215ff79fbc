//! The dashboard and the alert rules in `docker/` name only metrics the service exports:
//! `scripts/check-monitoring` (promtool check + unit tests of every alert, the dashboard's
//! queries) lists the names it uses, and a live `/metrics` must have each of them.

use std::process::Command;
use std::time::Duration;

use crate::helpers::*;

/// Sample names of a Prometheus text exposition.
fn sample_names(text: &str) -> std::collections::HashSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.split(['{', ' ']).next().map(str::to_string))
        .collect()
}

#[tokio::test]
async fn every_metric_of_the_dashboard_and_the_alerts_is_exported() {
    let out = Command::new(repo_root().join("scripts/check-monitoring"))
        .output()
        .expect("scripts/check-monitoring");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "check-monitoring failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let referenced: Vec<&str> = stdout
        .split_once("metrics referenced:\n")
        .expect("the list")
        .1
        .lines()
        .filter(|l| !l.is_empty())
        .collect();
    assert!(referenced.len() > 20, "{referenced:?}");

    let env = TestEnv::new("monitoring").await;
    let service = Service::start(&env, &[]);
    // A fresh service reports a working DLQ (an alert fires on 0 after 5 minutes).
    assert_eq!(metric(&service, "orders_dlq_up").await, Some(1.0));
    // One event of each kind the names need: an order, a dead letter, reads, a commit.
    env.produce_orders(["mon-1".to_string()]).await;
    env.produce(&[("mon-bad", b"{".to_vec())]).await;
    assert!(wait_until_drained(&env, Duration::from_secs(30)).await);
    assert_eq!(get_json(&service, "/order/mon-1").await.0, 200);
    let _ = get_json(&service, "/order/mon-none").await;
    let admin = http();
    let metrics = || async {
        admin
            .get(service.admin_url("/metrics"))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text")
    };
    let complete = eventually(Duration::from_secs(20), || async {
        let names = sample_names(&metrics().await);
        referenced.iter().all(|n| names.contains(*n))
    })
    .await;
    let names = sample_names(&metrics().await);
    let missing: Vec<&&str> = referenced.iter().filter(|n| !names.contains(**n)).collect();
    assert!(
        complete,
        "named by the dashboard or the rules, not exported: {missing:?}"
    );
}
