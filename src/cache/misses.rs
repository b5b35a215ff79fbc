//! The miss policy: what the CacheActor does with an id it does not hold. Misses are cheap
//! to ask for but not to answer, so this keeps a flood of them off the database:
//! - concurrent misses for one id share one read (single-flight);
//! - an id just found absent is answered 404 for [`ABSENT_FOR`] without a read, and
//!   forgotten as soon as the order is written to the cache;
//! - at most `MAX_MISSES_IN_FLIGHT` ids are read at once; a miss beyond that is shed
//!   (answered busy at once) rather than queued in front of the database.
//!
//! A plain struct, driven by the actor and tested here without one.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use quick_cache::unsync::Cache;
use tokio::sync::oneshot;

use super::messages::Lookup;

/// How long an id found absent is answered 404 without asking the database again. Short: an
/// order written by another instance is found after at most this long.
pub const ABSENT_FOR: Duration = Duration::from_secs(2);
/// Most ids remembered as absent (a bounded list: a scan of random ids cannot grow it).
const ABSENT_MAX: usize = 100_000;

/// The misses being loaded and the ids recently found absent.
pub struct Misses {
    loading: HashMap<String, Loading>,
    absent: Cache<String, Instant>,
    /// Most ids read at once; a miss beyond it is shed (`MAX_MISSES_IN_FLIGHT`).
    max_loading: usize,
}

#[derive(Default)]
struct Loading {
    waiters: Vec<oneshot::Sender<Lookup>>,
    /// The order was written while it was being read: "not found" may be stale.
    written: bool,
}

/// What to do with a miss.
#[derive(Debug)]
pub enum MissPlan {
    /// Found absent less than [`ABSENT_FOR`] ago: 404 at once.
    Absent,
    /// Already being read: the answer comes on this channel.
    Join(oneshot::Receiver<Lookup>),
    /// Read it; the answer comes on this channel once [`Misses::finish`] is called.
    Load(oneshot::Receiver<Lookup>),
    /// As many ids as allowed are being read: answer busy at once.
    Shed,
}

impl Misses {
    pub fn new(max_loading: usize) -> Self {
        Self {
            loading: HashMap::new(),
            absent: Cache::new(ABSENT_MAX),
            max_loading,
        }
    }

    pub fn plan(&mut self, uid: &str, now: Instant) -> MissPlan {
        if let Some(&since) = self.absent.get(uid) {
            if now.duration_since(since) < ABSENT_FOR {
                return MissPlan::Absent;
            }
            self.absent.remove(uid);
        }
        let full = self.loading.len() >= self.max_loading;
        let (tx, rx) = oneshot::channel();
        match self.loading.get_mut(uid) {
            Some(loading) => {
                loading.waiters.push(tx);
                MissPlan::Join(rx)
            }
            None if full => MissPlan::Shed,
            None => {
                let mut loading = Loading::default();
                loading.waiters.push(tx);
                self.loading.insert(uid.to_string(), loading);
                MissPlan::Load(rx)
            }
        }
    }

    /// The order was just written: it is not absent any more.
    pub fn written(&mut self, uid: &str) {
        self.absent.remove(uid);
        if let Some(loading) = self.loading.get_mut(uid) {
            loading.written = true;
        }
    }

    /// A read finished: every caller waiting for it gets `lookup`; "not found" is remembered
    /// unless the order was written meanwhile.
    pub fn finish(&mut self, uid: &str, lookup: Lookup, now: Instant) {
        let Some(loading) = self.loading.remove(uid) else {
            return;
        };
        if matches!(lookup, Lookup::NotFound) && !loading.written {
            self.absent.insert(uid.to_string(), now);
        }
        for waiter in loading.waiters {
            // The asker may have gone (client disconnected): nothing to tell then.
            let _ = waiter.send(lookup.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use actix_web::web::Bytes;

    use super::*;

    fn json() -> Bytes {
        Bytes::from_static(b"{}")
    }

    #[test]
    fn concurrent_misses_for_one_id_share_one_read() {
        let mut misses = Misses::new(16);
        let now = Instant::now();
        let MissPlan::Load(mut first) = misses.plan("a", now) else {
            panic!("the first miss reads");
        };
        let MissPlan::Join(mut second) = misses.plan("a", now) else {
            panic!("the second joins");
        };
        assert!(
            matches!(misses.plan("b", now), MissPlan::Load(_)),
            "another id reads"
        );
        misses.finish("a", Lookup::Miss(json()), now);
        assert!(matches!(first.try_recv(), Ok(Lookup::Miss(_))));
        assert!(matches!(second.try_recv(), Ok(Lookup::Miss(_))));
        assert!(
            matches!(misses.plan("a", now), MissPlan::Load(_)),
            "a new read after it"
        );
    }

    #[test]
    fn an_absent_id_is_remembered_briefly_and_forgotten_when_written() {
        let mut misses = Misses::new(16);
        let now = Instant::now();
        assert!(matches!(misses.plan("x", now), MissPlan::Load(_)));
        misses.finish("x", Lookup::NotFound, now);
        assert!(matches!(
            misses.plan("x", now + Duration::from_millis(500)),
            MissPlan::Absent
        ));
        assert!(
            matches!(misses.plan("x", now + ABSENT_FOR), MissPlan::Load(_)),
            "asked again once the time is over"
        );
        misses.finish("x", Lookup::NotFound, now + ABSENT_FOR);
        misses.written("x");
        assert!(matches!(
            misses.plan("x", now + ABSENT_FOR),
            MissPlan::Load(_)
        ));
    }

    #[test]
    fn a_not_found_that_raced_a_write_is_not_remembered() {
        let mut misses = Misses::new(16);
        let now = Instant::now();
        assert!(matches!(misses.plan("y", now), MissPlan::Load(_)));
        misses.written("y");
        misses.finish("y", Lookup::NotFound, now);
        assert!(matches!(misses.plan("y", now), MissPlan::Load(_)));
    }

    #[test]
    fn misses_beyond_the_bound_are_shed_and_joining_one_in_progress_is_not() {
        let mut misses = Misses::new(2);
        let now = Instant::now();
        assert!(matches!(misses.plan("a", now), MissPlan::Load(_)));
        assert!(matches!(misses.plan("b", now), MissPlan::Load(_)));
        assert!(matches!(misses.plan("c", now), MissPlan::Shed));
        // A read already in progress costs nothing more to join.
        assert!(matches!(misses.plan("a", now), MissPlan::Join(_)));
        misses.finish("a", Lookup::Miss(json()), now);
        assert!(
            matches!(misses.plan("c", now), MissPlan::Load(_)),
            "room again"
        );
    }

    #[test]
    fn failures_are_not_remembered() {
        let mut misses = Misses::new(16);
        let now = Instant::now();
        assert!(matches!(misses.plan("z", now), MissPlan::Load(_)));
        misses.finish("z", Lookup::Unavailable, now);
        assert!(matches!(misses.plan("z", now), MissPlan::Load(_)));
    }
}
