//! Crash test: the service is SIGKILLed at random moments while orders stream in; at the end
//! the database holds exactly the valid orders produced, each once, with exact item counts.

mod common;

use std::time::{Duration, Instant};

use common::*;
use rand::Rng;

#[tokio::test]
async fn sigkill_at_random_moments_loses_and_duplicates_nothing() {
    let env = TestEnv::new("crash").await;
    let uids = env.path("uids.tsv");
    let rejects = env.path("rejects.tsv");
    let producer = spawn_emulator(
        &env,
        &[
            "--count",
            "24000",
            "--rate",
            "2000",
            "--invalid-ratio",
            "0.05",
            "--duplicate-ratio",
            "0.02",
            "--conflict-ratio",
            "0.005",
            "--uids-out",
            uids.to_str().expect("path"),
            "--rejects-out",
            rejects.to_str().expect("path"),
        ],
    );

    let mut rng = rand::rng();
    let started = Instant::now();
    let mut kills = 0;
    // Kill at least 5 times, and keep killing while the producer is still going.
    while kills < 5 || started.elapsed() < Duration::from_secs(12) {
        let service = Service::start(&env, &[]);
        let alive = Duration::from_millis(rng.random_range(300..2500));
        tokio::time::sleep(alive).await;
        service.kill();
        kills += 1;
    }
    let summary = finish_emulator(producer);
    eprintln!("emulator: {summary}; service killed {kills} times");

    let service = Service::start(&env, &[]);
    let drained = wait_until_drained(&env, Duration::from_secs(180)).await;
    assert!(
        drained,
        "the topic was not fully committed; log:\n{}",
        service.log_text()
    );
    assert_exactly_the_valid_orders_are_stored(&env, &uids).await;

    // Every rejected message is kept exactly once, with the reason the emulator intended.
    let expected_rejects = read_rejects(&rejects);
    let mut conn = env.db().await;
    let letters = dead_letters(&mut conn).await;
    assert_eq!(
        letters.len(),
        expected_rejects.len(),
        "dead letters vs rejected messages produced"
    );
    for reason in [
        "malformed",
        "too_large",
        "schema",
        "invalid",
        "inconsistent",
        "conflict",
    ] {
        let want = expected_rejects.iter().filter(|(_, r)| r == reason).count();
        let got = letters.iter().filter(|l| l.reason == reason).count();
        assert_eq!(got, want, "dead letters with reason {reason}");
    }
    assert!(kills >= 5);
}
