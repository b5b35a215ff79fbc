//! Misconfiguration and refusal, against the real broker and PostgreSQL: each case either
//! keeps ingestion going or shows at once in `/health` and the log, and no offset is ever
//! committed for a message that is durable nowhere. Sequenced by events (`/health`,
//! committed offsets, log lines, stdout), not by sleeps.

use std::time::Duration;

use crate::helpers::*;

/// Polls `/health` until `check` accepts it; returns the last body.
async fn health_until(
    service: &Service,
    timeout: Duration,
    check: impl Fn(u16, &serde_json::Value) -> bool,
) -> (bool, u16, serde_json::Value) {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let (status, body) = get_json(service, "/health").await;
        if check(status, &body) {
            return (true, status, body);
        }
        if std::time::Instant::now() > deadline {
            return (false, status, body);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Sends SIGTERM and asserts the process exits within `bound`; returns its status.
async fn terminate_within(service: &mut Service, bound: Duration) -> std::process::ExitStatus {
    let sent = std::time::Instant::now();
    signal(service.pid(), "TERM");
    loop {
        if let Some(status) = service.exited() {
            return status;
        }
        assert!(
            sent.elapsed() < bound,
            "still running {bound:?} after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn stored_count(env: &TestEnv) -> i64 {
    count(&mut env.db().await, "SELECT count(*) AS n FROM orders").await
}

/// Case 1: the DLQ topic does not exist (the broker does not auto-create topics).
#[tokio::test]
async fn a_missing_dlq_topic_degrades_health_and_never_holds_back_valid_orders() {
    let env = TestEnv::with_topics(
        "dlq_missing",
        Topics {
            orders: true,
            dlq: false,
        },
    )
    .await;
    let service = Service::start(&env, &[]);
    env.produce_orders((0..50).map(|i| format!("dlqm-{i}")))
        .await;
    env.produce_each((0..5).map(|i| format!("bad-{i}")), |_| {
        b"{not json".to_vec()
    })
    .await;

    assert!(
        wait_until_drained(&env, Duration::from_secs(60)).await,
        "offsets not committed with the DLQ topic missing; log:\n{}",
        service.log_text()
    );
    assert_eq!(stored_count(&env).await, 50, "every valid order is stored");
    let letters = dead_letters(&mut env.db().await).await;
    assert_eq!(letters.len(), 5, "the rejected ones are in dead_letters");

    let (_, status, body) = health_until(&service, Duration::from_secs(10), |_, b| {
        b["dlq"] == "missing"
    })
    .await;
    assert_eq!(
        status, 200,
        "a missing DLQ degrades, it does not stop: {body}"
    );
    assert_eq!(body["status"], "degraded", "{body}");
    assert!(
        service.log_text().contains("KAFKA_DLQ_TOPIC"),
        "the log names the setting"
    );

    // The operator creates the topic: the service notices and publishes again.
    create_topics(&env.brokers, &[(&env.dlq_topic, 1)]).await;
    let (ok, _, body) = health_until(&service, Duration::from_secs(20), |s, b| {
        s == 200 && b["status"] == "ok"
    })
    .await;
    assert!(
        ok,
        "health never recovered after the DLQ topic was created: {body}"
    );
    env.produce(&[("bad-after", b"[1]".to_vec())]).await;
    let published = env.read_dlq(1);
    assert_eq!(
        published.len(),
        1,
        "a dead letter reaches the new DLQ topic"
    );
}

/// Case 4: the database refuses one row with an error the service has never seen (a
/// trigger raising P0001); it is isolated, dead-lettered as `storage`, the rest is stored.
#[tokio::test]
async fn one_row_the_database_refuses_is_dead_lettered_and_the_rest_stored() {
    let env = TestEnv::new("poison_row").await;
    env.migrate();
    env.sql(
        "CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$ \
         BEGIN IF NEW.order_uid LIKE 'poison%' THEN RAISE EXCEPTION 'an operator rule refuses %', NEW.order_uid; END IF; RETURN NEW; END $$; \
         CREATE TRIGGER refuse_poison BEFORE INSERT ON orders FOR EACH ROW EXECUTE FUNCTION refuse_poison();",
    )
    .await;
    // Produced before the service starts, so the poison row arrives inside large batches.
    env.produce_orders((0..300).map(|i| {
        if i == 150 {
            "poison-150".to_string()
        } else {
            format!("row-{i}")
        }
    }))
    .await;
    let service = Service::start(&env, &[]);

    assert!(
        wait_until_drained(&env, Duration::from_secs(60)).await,
        "not drained; log:\n{}",
        service.log_text()
    );
    assert_eq!(stored_count(&env).await, 299);
    let letters = dead_letters(&mut env.db().await).await;
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0].reason, "storage");
    assert_eq!(letters[0].order_uid.as_deref(), Some("poison-150"));
    let (status, body) = get_json(&service, "/health").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["database"], "up", "{body}");
}

/// Installs triggers that refuse `poison` orders *and* their dead letters.
async fn refuse_poison_and_its_dead_letter(env: &TestEnv) {
    env.migrate();
    env.sql(
        "CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$ \
         BEGIN IF NEW.order_uid LIKE 'poison%' THEN RAISE EXCEPTION 'refused %', NEW.order_uid; END IF; RETURN NEW; END $$; \
         CREATE TRIGGER refuse_poison BEFORE INSERT ON orders FOR EACH ROW EXECUTE FUNCTION refuse_poison(); \
         CREATE TRIGGER refuse_poison_letter BEFORE INSERT ON dead_letters FOR EACH ROW EXECUTE FUNCTION refuse_poison();",
    )
    .await;
}

async fn produce_with_poison(env: &TestEnv) -> (i32, i64) {
    let mut uids: Vec<String> = (0..20).map(|i| format!("ok-{i}")).collect();
    uids.insert(10, "poison-1".into());
    env.produce_orders(uids).await[10]
}

/// Case 2: the order and its dead letter are both refused: nothing is committed past it,
/// `/health` says so, and it resumes by itself once the database accepts the dead letter.
#[tokio::test]
async fn a_double_refusal_keeps_the_offset_uncommitted_until_the_database_accepts() {
    let env = TestEnv::new("double_refusal").await;
    refuse_poison_and_its_dead_letter(&env).await;
    let service = Service::start(&env, &[("DB_RETRY_MAX_BACKOFF_MS", "300")]);
    let (partition, offset) = produce_with_poison(&env).await;

    let (blocked, status, body) = health_until(&service, Duration::from_secs(30), |_, b| {
        b["ingest"] == "blocked"
    })
    .await;
    assert!(blocked, "health never reported the blocked writer: {body}");
    assert_eq!(status, 503);
    assert_eq!(body["database"], "up", "the database answers: {body}");
    // The other writer's orders keep coming; give the committer a chance to (wrongly) move.
    let quiet_since = std::time::Instant::now();
    while quiet_since.elapsed() < Duration::from_secs(3) {
        let committed = env.committed();
        assert!(
            committed.get(&partition).is_none_or(|c| *c <= offset),
            "offset committed past a message that is durable nowhere: {committed:?} (poison at {partition}/{offset})"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(dead_letters(&mut env.db().await).await.is_empty());
    // The blocked message ages: the lag in seconds shows it.
    let lag = metric(&service, "orders_consumer_lag_seconds").await;
    assert!(lag.is_some_and(|s| s >= 2.0), "lag in seconds {lag:?}");

    // The operator repairs the dead-letter table: the message becomes a storage dead letter.
    env.sql("DROP TRIGGER refuse_poison_letter ON dead_letters")
        .await;
    assert!(
        wait_until_drained(&env, Duration::from_secs(30)).await,
        "not drained after the repair; log:\n{}",
        service.log_text()
    );
    assert_eq!(stored_count(&env).await, 20);
    let letters = dead_letters(&mut env.db().await).await;
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].reason, "storage");
    let (ok, _, body) = health_until(&service, Duration::from_secs(10), |s, _| s == 200).await;
    assert!(ok, "health did not recover: {body}");
}

/// Shutdown edge: a stop that waits on a blocked writer is cut short by a second signal.
#[tokio::test]
async fn a_second_signal_exits_at_once_while_the_stop_waits_on_a_blocked_writer() {
    let env = TestEnv::new("second_signal").await;
    refuse_poison_and_its_dead_letter(&env).await;
    let mut service = Service::start(&env, &[("SHUTDOWN_TIMEOUT_MS", "60000")]);
    produce_with_poison(&env).await;
    let (blocked, _, body) = health_until(&service, Duration::from_secs(30), |_, b| {
        b["ingest"] == "blocked"
    })
    .await;
    assert!(blocked, "{body}");

    signal(service.pid(), "TERM");
    assert!(
        eventually(Duration::from_secs(10), || async {
            service.log_text().contains("draining in-flight writes")
        })
        .await
    );
    assert!(
        service.exited().is_none(),
        "the first signal waits for the writers"
    );
    let status = terminate_within(&mut service, Duration::from_secs(5)).await;
    assert_eq!(status.code(), Some(130), "{status}");
}

/// Case 5: instances started at the same instant on an empty database all become ready.
#[tokio::test]
async fn three_instances_starting_together_on_an_empty_database_all_become_ready() {
    for round in 0..2 {
        let env = TestEnv::new(&format!("together_{round}")).await;
        let mut services: Vec<Service> = (0..3)
            .map(|_| Service::spawn(&env, &[], Duration::from_secs(30)).expect("spawned"))
            .collect();
        for (i, service) in services.iter_mut().enumerate() {
            if let Err(e) = service.wait_ready(Duration::from_secs(60)) {
                panic!("round {round}: instance {i} never became ready: {e}");
            }
        }
        let mut conn = env.db().await;
        let migrations = count(
            &mut conn,
            "SELECT count(*) AS n FROM __diesel_schema_migrations",
        )
        .await;
        assert!(migrations >= 1, "migrated once");
    }
}

/// Case 6: the database is down at start-up: the service waits (503, the log says what for),
/// honours SIGTERM meanwhile, and starts by itself when the database comes up.
#[tokio::test]
async fn a_database_down_at_start_up_is_waited_for_and_sigterm_is_honoured_meanwhile() {
    let env = TestEnv::new("db_down_start").await;
    let port = server_port();
    let pg_dir = env.log_dir.join(format!("{}-pg", env.name));
    let url = format!("postgres://orders_app:orders_app@127.0.0.1:{port}/orders");
    // `scripts/pg` makes `orders_owner` own the database: it migrates, `orders_app` runs.
    let owner = format!("postgres://orders_owner:orders_owner@127.0.0.1:{port}/orders");
    let extra = [
        ("DATABASE_URL", url.as_str()),
        ("MIGRATION_DATABASE_URL", owner.as_str()),
    ];

    // SIGTERM while waiting: a clean, quick exit.
    let mut waiting = Service::spawn(&env, &extra, Duration::from_secs(30)).expect("spawned");
    let (ok, status, body) = health_until(&waiting, Duration::from_secs(10), |_, b| {
        b["phase"] == "waiting for the database"
    })
    .await;
    assert!(ok && status == 503, "{status} {body}");
    let exit = terminate_within(&mut waiting, Duration::from_secs(5)).await;
    assert!(exit.success(), "{exit}");

    let mut service = Service::spawn(&env, &extra, Duration::from_secs(30)).expect("spawned");
    assert!(
        eventually(Duration::from_secs(10), || async {
            service.log_text().contains("waiting for the database")
        })
        .await
    );
    let log = service.log_text();
    assert!(
        !log.contains("orders_app:orders_app@"),
        "the password is logged:\n{log}"
    );
    let status = std::process::Command::new(repo_root().join("scripts/pg"))
        .arg("start")
        .arg(&pg_dir)
        .arg(port.to_string())
        .stdout(std::process::Stdio::null())
        .status()
        .expect("scripts/pg start");
    assert!(status.success());
    let ready = service.wait_ready(Duration::from_secs(60));
    let _ = std::process::Command::new(repo_root().join("scripts/pg"))
        .arg("stop")
        .arg(&pg_dir)
        .stdout(std::process::Stdio::null())
        .status();
    ready.expect("ready once the database is up");
}

/// Case 7: the orders topic does not exist: 503 `topic: missing` until it is created, then
/// its orders are consumed.
#[tokio::test]
async fn a_missing_orders_topic_is_reported_until_it_is_created_and_then_consumed() {
    let env = TestEnv::with_topics(
        "topic_missing",
        Topics {
            orders: false,
            dlq: true,
        },
    )
    .await;
    let service = Service::start(&env, &[]);
    let (status, body) = get_json(&service, "/health").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["topic"], "missing", "{body}");
    assert!(service.log_text().contains("KAFKA_TOPIC"));

    create_topics(&env.brokers, &[(&env.topic, 6)]).await;
    env.produce(&[("late-1", order_json("late-1"))]).await;
    assert!(
        eventually(Duration::from_secs(60), || async {
            stored_count(&env).await == 1
        })
        .await,
        "an order on a topic created after start-up was not consumed; log:\n{}",
        service.log_text()
    );
    let (ok, _, body) = health_until(&service, Duration::from_secs(10), |s, _| s == 200).await;
    assert!(ok, "{body}");
}

/// Catches row values leaking through a refusal's text: PostgreSQL's DETAIL ("Failing row
/// contains (…)", "Key (email)=(…) already exists.") and a trigger's quoted value once went
/// into the log, `dead_letters.detail` and the DLQ's `detail` header. Three refusals — a
/// CHECK constraint, a unique index, a trigger raising with a constraint name — of orders
/// carrying a marker (made per run, printed); the marker must appear in none of those
/// places (it stays in the dead letter's payload, which is the message itself), the
/// constraint names must. The log is written at debug level, so no level hides a leak.
#[tokio::test]
async fn a_refused_row_keeps_its_values_out_of_logs_dead_letters_and_dlq_headers() {
    let env = TestEnv::new("no_row_values").await;
    env.migrate();
    let marker = format!(
        "marker{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_nanos()
    );
    eprintln!("marker: {marker}");
    env.sql(&format!(
        "ALTER TABLE deliveries ADD CONSTRAINT no_marker_name CHECK (name <> 'name-{marker}'); \
         CREATE UNIQUE INDEX one_order_per_email ON deliveries (email); \
         CREATE FUNCTION refuse_marked_bank() RETURNS trigger LANGUAGE plpgsql AS $$ \
         BEGIN IF NEW.bank = 'bank-{marker}' THEN \
           RAISE EXCEPTION USING ERRCODE = 'check_violation', CONSTRAINT = 'no_marked_bank', \
             MESSAGE = format('bank %L is refused', NEW.bank), DETAIL = format('row %s', NEW); \
         END IF; RETURN NEW; END $$; \
         CREATE TRIGGER refuse_marked_bank BEFORE INSERT ON payments \
           FOR EACH ROW EXECUTE FUNCTION refuse_marked_bank();"
    ))
    .await;
    let order = |uid: &str, change: &dyn Fn(&mut serde_json::Value)| {
        let mut v = model();
        v["order_uid"] = uid.into();
        v["delivery"]["email"] = format!("{uid}@example.com").into();
        change(&mut v);
        (uid.to_string(), serde_json::to_vec(&v).expect("json"))
    };
    let email = format!("email-{marker}@example.com");
    let messages = [
        order("ok-1", &|_| {}),
        order("by-check", &|v| {
            v["delivery"]["name"] = format!("name-{marker}").into()
        }),
        order("first-email", &|v| {
            v["delivery"]["email"] = email.clone().into()
        }),
        order("by-unique", &|v| {
            v["delivery"]["email"] = email.clone().into()
        }),
        order("by-trigger", &|v| {
            v["payment"]["bank"] = format!("bank-{marker}").into()
        }),
        order("ok-2", &|_| {}),
    ];
    let refs: Vec<(&str, Vec<u8>)> = messages
        .iter()
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    env.produce(&refs).await;
    let service = Service::start(
        &env,
        &[(
            "RUST_LOG",
            "debug,librdkafka=warn,rdkafka=warn,actix_server=info",
        )],
    );
    assert!(
        wait_until_drained(&env, Duration::from_secs(60)).await,
        "not drained; log:\n{}",
        service.log_text()
    );
    assert_eq!(
        stored_count(&env).await,
        3,
        "ok-1, ok-2, one of the e-mail pair"
    );

    #[derive(diesel::QueryableByName, Debug)]
    struct Letter {
        #[diesel(sql_type = diesel::sql_types::Text)]
        order_uid: String,
        #[diesel(sql_type = diesel::sql_types::Text)]
        reason: String,
        #[diesel(sql_type = diesel::sql_types::Text)]
        detail: String,
    }
    use diesel_async::RunQueryDsl;
    let letters: Vec<Letter> =
        diesel::sql_query("SELECT order_uid, reason, detail FROM dead_letters ORDER BY order_uid")
            .load(&mut env.db().await)
            .await
            .expect("dead letters");
    // The two orders sharing an e-mail are on different partitions: whichever is written
    // second is refused.
    let expected = [
        ("by-check", "no_marker_name"),
        ("by-trigger", "no_marked_bank"),
        ("by-unique|first-email", "one_order_per_email"),
    ];
    assert_eq!(letters.len(), 3, "{letters:?}");
    for (letter, (uids, constraint)) in letters.iter().zip(expected) {
        assert!(
            uids.split('|').any(|uid| uid == letter.order_uid) && letter.reason == "storage",
            "{letter:?}"
        );
        assert!(letter.detail.contains(constraint), "{letter:?}");
        assert!(
            !letter.detail.contains(&marker),
            "row values in the detail: {letter:?}"
        );
    }
    let dlq = env.read_dlq(3);
    assert_eq!(dlq.len(), 3, "{dlq:?}");
    for (key, headers) in &dlq {
        let detail = headers.get("detail").cloned().unwrap_or_default();
        assert!(
            detail.contains("no_ma") || detail.contains("one_order"),
            "{key:?}: {headers:?}"
        );
        for (name, value) in headers {
            assert!(
                !value.contains(&marker),
                "DLQ header {name} of {key:?}: {value}"
            );
        }
    }
    let log = service.log_text();
    for (_, constraint) in expected {
        assert!(log.contains(constraint), "{constraint} not logged:\n{log}");
    }
    let leaked: Vec<&str> = log.lines().filter(|l| l.contains(&marker)).collect();
    assert!(
        leaked.is_empty(),
        "row values in the log:\n{}",
        leaked.join("\n")
    );
}
