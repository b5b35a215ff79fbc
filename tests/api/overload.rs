//! Overload: database reads for cache misses are bounded (`MAX_MISSES_IN_FLIGHT`); beyond
//! the bound a lookup is answered 503 `busy` with `Retry-After` at once instead of queueing in
//! front of the database, cached orders keep being served and readiness stays 200.

use std::time::Duration;

use crate::helpers::*;

#[tokio::test]
async fn misses_beyond_the_bound_are_shed_with_busy_and_nothing_else_suffers() {
    let env = TestEnv::new("shed").await;
    let service = Service::start(&env, &[("MAX_MISSES_IN_FLIGHT", "2")]);
    env.produce_orders(["cached-1".to_string()]).await;
    assert!(wait_until_drained(&env, Duration::from_secs(30)).await);
    // Hold the database's reads of `orders`: every miss waits, so the bound fills up.
    use diesel_async::SimpleAsyncConnection;
    let mut lock = env.db().await;
    lock.batch_execute("BEGIN; LOCK TABLE orders IN ACCESS EXCLUSIVE MODE;")
        .await
        .expect("lock orders");

    let client = http();
    let lookups = (0..16).map(|i| {
        let request = client
            .get(service.url(&format!("/order/unknown-{i}")))
            .send();
        async move {
            let response = request.await.expect("answered");
            let status = response.status().as_u16();
            let retry = response.headers().contains_key("retry-after");
            let body: serde_json::Value = response.json().await.unwrap_or_default();
            (status, retry, body)
        }
    });
    let pending = tokio::spawn(futures::future::join_all(lookups));
    // The event: the bound is full and lookups are being shed.
    assert!(
        eventually(Duration::from_secs(10), || async {
            metric(&service, "orders_cache_misses_shed_total")
                .await
                .is_some_and(|n| n >= 14.0)
        })
        .await,
        "misses beyond the bound were not shed; log:\n{}",
        service.log_text()
    );
    // Meanwhile: a cached order is a hit and the service is ready.
    let (status, _) = get_json(&service, "/order/cached-1").await;
    assert_eq!(status, 200);
    let (status, health) = get_json(&service, "/health/ready").await;
    assert_eq!(status, 200, "{health}");

    lock.batch_execute("COMMIT").await.expect("unlock");
    let answers = pending.await.expect("lookups");
    let shed: Vec<_> = answers.iter().filter(|(s, _, _)| *s == 503).collect();
    assert_eq!(shed.len(), 14, "{answers:?}");
    for (_, retry, body) in &shed {
        assert!(*retry, "a shed lookup says when to retry");
        assert_eq!(body["error"], "busy", "{body}");
    }
    let not_found = answers.iter().filter(|(s, _, _)| *s == 404).count();
    assert_eq!(
        not_found, 2,
        "the two read once the lock is gone: {answers:?}"
    );
}
