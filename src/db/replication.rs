//! How far an order's durability reaches beyond the primary's disk, read from the primary as
//! the runtime role can read it, and the state of the standby reads come from.
//!
//! A writer's commit returns, and the order's offset may then be committed, once PostgreSQL
//! says the transaction is durable: with `synchronous_commit=on` (every write transaction
//! sets it) that is the primary's disk plus, when `synchronous_standby_names` names standbys,
//! the disk of the synchronous one(s). So:
//! - [`Durability::SyncStandby`]: enough synchronous standbys are connected; a standby that
//!   was synchronous when promoted holds every order whose offset was committed.
//! - [`Durability::Local`]: no synchronous standby is configured. A failover to an
//!   asynchronous standby loses the orders it had not replayed yet, their offsets committed
//!   already: Kafka will not deliver them again.
//! - [`Durability::SyncStandbyMissing`]: synchronous standbys are configured but too few are
//!   connected: commits wait for one (ingestion stalls), and a commit whose wait is cancelled
//!   is durable on the primary only.
//!
//! What a role that is neither superuser nor `pg_read_all_stats` sees of
//! `pg_stat_replication` is one row per WAL sender with its `application_name`, every other
//! column (`state`, `sync_state`, lags) null. The sync state PostgreSQL would give each
//! standby is then worked out here from `synchronous_standby_names` (which anyone can read),
//! by PostgreSQL's rules: [`SyncRule::states`]. A role that may see `sync_state` gets the
//! server's own.

use std::fmt;

use diesel_async::AsyncPgConnection;
use serde::Serialize;

use super::DbError;

/// `synchronous_standby_names`, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncRule {
    /// Empty: every standby is asynchronous.
    None,
    /// `FIRST n (a, b, …)`, `n (a, b, …)` or `a, b, …` (= `FIRST 1`): the first `n`
    /// connected standbys in the list's order are synchronous.
    Priority { num: usize, names: Vec<String> },
    /// `ANY n (a, b, …)`: a commit waits for any `n` of them.
    Quorum { num: usize, names: Vec<String> },
}

impl SyncRule {
    /// Parses PostgreSQL's syntax; names compare case-insensitively, `*` matches any.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.is_empty() {
            return Ok(SyncRule::None);
        }
        let bad = |why: &str| format!("synchronous_standby_names {text:?}: {why}");
        let (head, list) = match text.find('(') {
            Some(open) => {
                let inner = text[open + 1..]
                    .strip_suffix(')')
                    .ok_or_else(|| bad("no closing parenthesis"))?;
                (text[..open].trim(), inner)
            }
            None => ("", text),
        };
        let mut words = head.split_whitespace();
        let (quorum, num) = match (words.next(), words.next(), words.next()) {
            (None, _, _) => (false, 1),
            (Some(kw), Some(n), None) if kw.eq_ignore_ascii_case("first") => (false, number(n)?),
            (Some(kw), Some(n), None) if kw.eq_ignore_ascii_case("any") => (true, number(n)?),
            (Some(n), None, None) => (false, number(n)?),
            _ => {
                return Err(bad(
                    "expected FIRST n (…), ANY n (…), n (…) or a list of names",
                ));
            }
        };
        let names: Vec<String> = list
            .split(',')
            .map(|n| n.trim().trim_matches('"').to_string())
            .collect();
        if names.iter().any(String::is_empty) {
            return Err(bad("an empty standby name"));
        }
        Ok(if quorum {
            SyncRule::Quorum { num, names }
        } else {
            SyncRule::Priority { num, names }
        })
    }

    /// Synchronous standbys a commit waits for.
    pub fn num(&self) -> usize {
        match self {
            SyncRule::None => 0,
            SyncRule::Priority { num, .. } | SyncRule::Quorum { num, .. } => *num,
        }
    }

    /// The `sync_state` PostgreSQL gives each of the `connected` standbys (in the order of
    /// `pg_stat_replication`, which breaks ties between equal priorities as the server does):
    /// `sync`/`potential` under a priority rule, `quorum` under a quorum rule, `async` for a
    /// name the rule does not list.
    pub fn states(&self, connected: &[&str]) -> Vec<&'static str> {
        let priority = |names: &[String], standby: &str| {
            names
                .iter()
                .position(|n| n == "*" || n.eq_ignore_ascii_case(standby))
        };
        match self {
            SyncRule::None => vec!["async"; connected.len()],
            SyncRule::Quorum { names, .. } => connected
                .iter()
                .map(|s| match priority(names, s) {
                    Some(_) => "quorum",
                    None => "async",
                })
                .collect(),
            SyncRule::Priority { num, names } => {
                let mut ranked: Vec<(usize, usize)> = connected
                    .iter()
                    .enumerate()
                    .filter_map(|(i, s)| priority(names, s).map(|p| (p, i)))
                    .collect();
                ranked.sort();
                let mut states = vec!["async"; connected.len()];
                for (rank, (_, i)) in ranked.into_iter().enumerate() {
                    states[i] = if rank < *num { "sync" } else { "potential" };
                }
                states
            }
        }
    }
}

fn number(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!(
            "synchronous_standby_names: {text:?} is not a number of standbys"
        )),
    }
}

/// How far a committed order's durability reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Durability {
    /// The primary's disk only.
    #[serde(rename = "local")]
    Local,
    /// The primary's disk and a synchronous standby's.
    #[serde(rename = "sync standby")]
    SyncStandby,
    /// Synchronous standbys configured, too few connected: commits wait.
    #[serde(rename = "sync standby missing")]
    SyncStandbyMissing,
}

impl Durability {
    pub fn as_str(self) -> &'static str {
        match self {
            Durability::Local => "local",
            Durability::SyncStandby => "sync standby",
            Durability::SyncStandbyMissing => "sync standby missing",
        }
    }
}

impl fmt::Display for Durability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A standby the primary streams to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Standby {
    /// Its `application_name` (what `synchronous_standby_names` refers to).
    pub name: String,
    /// `streaming`, `catchup`, … (null when the role may not see it).
    pub state: Option<String>,
    /// `sync`, `potential`, `quorum` or `async`.
    pub sync_state: String,
    /// Whether `sync_state` is the server's (`pg_stat_replication`) or worked out from
    /// `synchronous_standby_names` because the role may not see the server's.
    pub sync_state_from: &'static str,
}

/// The primary's replication, as one check saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Replication {
    /// The server that answered, `host:port` as it sees itself.
    pub server: String,
    pub synchronous_standby_names: String,
    pub durability: Durability,
    pub standbys: Vec<Standby>,
    /// Why the durability is less than an operator with standbys expects (`None`: fine).
    pub warning: Option<String>,
}

/// One row of `pg_stat_replication`, as this role sees it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct SenderRow {
    pub name: String,
    pub state: Option<String>,
    pub sync_state: Option<String>,
}

impl Replication {
    /// Sorts what the primary reported into a durability level and a warning.
    pub fn classify(server: String, names: String, senders: Vec<SenderRow>) -> Self {
        let rule = SyncRule::parse(&names);
        let connected: Vec<&str> = senders.iter().map(|s| s.name.as_str()).collect();
        let worked_out = match &rule {
            Ok(rule) => rule.states(&connected),
            // A value the server took but this parser does not: the server's states, if seen.
            Err(_) => vec!["unknown"; connected.len()],
        };
        let standbys: Vec<Standby> = senders
            .iter()
            .zip(worked_out)
            .map(|(s, computed)| match &s.sync_state {
                Some(server) => Standby {
                    name: s.name.clone(),
                    state: s.state.clone(),
                    sync_state: server.clone(),
                    sync_state_from: "server",
                },
                None => Standby {
                    name: s.name.clone(),
                    state: s.state.clone(),
                    sync_state: computed.to_string(),
                    sync_state_from: "synchronous_standby_names",
                },
            })
            .collect();
        let synchronous = standbys
            .iter()
            .filter(|s| matches!(s.sync_state.as_str(), "sync" | "quorum"))
            .count();
        let wanted = rule.as_ref().map_or(1, SyncRule::num);
        let durability = if names.trim().is_empty() {
            Durability::Local
        } else if synchronous >= wanted {
            Durability::SyncStandby
        } else {
            Durability::SyncStandbyMissing
        };
        let listed = || {
            standbys
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let warning = match durability {
            Durability::Local if !standbys.is_empty() => Some(format!(
                "the primary {server} streams to {} standby(s) ({}) and none is synchronous (synchronous_standby_names is empty): an order counts as stored, and its offset is committed, once it is on the primary's disk; a failover to a standby loses the orders that standby had not received",
                standbys.len(),
                listed()
            )),
            Durability::SyncStandbyMissing => Some(format!(
                "the primary {server} waits for {wanted} synchronous standby(s) (synchronous_standby_names = '{names}') and {synchronous} is connected ({}): commits wait until one is, ingestion stalls",
                if standbys.is_empty() {
                    "none streams".to_string()
                } else {
                    listed()
                }
            )),
            _ => None,
        };
        Self {
            server,
            synchronous_standby_names: names,
            durability,
            standbys,
            warning,
        }
    }

    /// One line for the log.
    pub fn summary(&self) -> String {
        let standbys = if self.standbys.is_empty() {
            "no standby".to_string()
        } else {
            self.standbys
                .iter()
                .map(|s| format!("{} ({})", s.name, s.sync_state))
                .collect::<Vec<_>>()
                .join(", ")
        };
        format!(
            "durability: {} (primary {}, synchronous_standby_names = '{}', {standbys})",
            self.durability, self.server, self.synchronous_standby_names
        )
    }

    /// What to log when a check finds `self` after `before`: `None` when nothing an operator
    /// acts on changed (the server, the durability, the set of standbys and their states).
    pub fn change_since(&self, before: Option<&Replication>) -> Option<(log::Level, String)> {
        if before == Some(self) {
            return None;
        }
        let moved = before
            .filter(|b| b.server != self.server)
            .map(|b| format!("the primary is now {} (was {}); ", self.server, b.server))
            .unwrap_or_default();
        Some(match &self.warning {
            Some(warning) => (
                log::Level::Warn,
                format!("{moved}{}: {warning}", self.summary()),
            ),
            None => (log::Level::Info, format!("{moved}{}", self.summary())),
        })
    }
}

/// Reads the primary's replication (any role may run it).
pub async fn replication(conn: &mut AsyncPgConnection) -> Result<Replication, DbError> {
    use diesel::sql_types::Text;
    use diesel_async::RunQueryDsl;

    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = Text)]
        server: String,
        #[diesel(sql_type = Text)]
        names: String,
        #[diesel(sql_type = Text)]
        senders: String,
    }
    let row: Row = diesel::sql_query(
        "SELECT coalesce(host(inet_server_addr()) || ':' || inet_server_port(), 'local socket') AS server, \
         current_setting('synchronous_standby_names') AS names, \
         coalesce((SELECT json_agg(json_build_object('name', application_name, 'state', state, \
           'sync_state', sync_state) ORDER BY pid) FROM pg_catalog.pg_stat_replication), '[]')::text AS senders",
    )
    .get_result(conn)
    .await?;
    let senders: Vec<SenderRow> = serde_json::from_str(&row.senders)
        .map_err(|e| DbError::Rejected(format!("pg_stat_replication as JSON: {e}")))?;
    Ok(Replication::classify(row.server, row.names, senders))
}

/// The server reads come from (`READ_DATABASE_URL`), as one check saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReadServer {
    pub server: String,
    /// Whether it is a standby (a promoted one, or a URL naming the primary, is not).
    pub standby: bool,
    /// Replay paused (`pg_wal_replay_pause()`): it serves an ever older state.
    pub replay_paused: bool,
    /// WAL bytes the primary has that this standby has not replayed (null: not known).
    pub replay_lag_bytes: Option<i64>,
}

/// Where the read server stands: its identity, and for a standby its replayed position (an
/// LSN, for [`replay_lag_bytes`]).
pub async fn read_server(
    conn: &mut AsyncPgConnection,
) -> Result<(ReadServer, Option<String>), DbError> {
    use diesel::sql_types::{Bool, Nullable, Text};
    use diesel_async::RunQueryDsl;

    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = Text)]
        server: String,
        #[diesel(sql_type = Bool)]
        standby: bool,
        #[diesel(sql_type = Bool)]
        paused: bool,
        #[diesel(sql_type = Nullable<Text>)]
        replayed: Option<String>,
    }
    let row: Row = diesel::sql_query(
        "SELECT coalesce(host(inet_server_addr()) || ':' || inet_server_port(), 'local socket') AS server, \
         pg_is_in_recovery() AS standby, \
         CASE WHEN pg_is_in_recovery() THEN pg_is_wal_replay_paused() ELSE false END AS paused, \
         CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()::text END AS replayed",
    )
    .get_result(conn)
    .await?;
    Ok((
        ReadServer {
            server: row.server,
            standby: row.standby,
            replay_paused: row.paused,
            replay_lag_bytes: None,
        },
        row.replayed,
    ))
}

/// How many WAL bytes the primary (`conn`) has beyond `replayed`, a standby's position.
pub async fn replay_lag_bytes(
    conn: &mut AsyncPgConnection,
    replayed: &str,
) -> Result<i64, DbError> {
    use diesel::sql_types::{BigInt, Text};
    use diesel_async::RunQueryDsl;

    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = BigInt)]
        lag: i64,
    }
    let row: Row = diesel::sql_query(
        "SELECT greatest(pg_wal_lsn_diff(pg_current_wal_lsn(), $1::text::pg_lsn), 0)::bigint AS lag",
    )
    .bind::<Text, _>(replayed)
    .get_result(conn)
    .await?;
    Ok(row.lag)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sender(name: &str) -> SenderRow {
        SenderRow {
            name: name.into(),
            state: None,
            sync_state: None,
        }
    }

    #[test]
    fn every_form_of_synchronous_standby_names_is_read() {
        let names = |v: &[&str]| v.iter().map(ToString::to_string).collect::<Vec<_>>();
        assert_eq!(SyncRule::parse(" ").expect("empty"), SyncRule::None);
        assert_eq!(
            SyncRule::parse("FIRST 1 (pg2)").expect("first"),
            SyncRule::Priority {
                num: 1,
                names: names(&["pg2"])
            }
        );
        assert_eq!(
            SyncRule::parse("any 2 (a, \"B c\", d)").expect("any"),
            SyncRule::Quorum {
                num: 2,
                names: names(&["a", "B c", "d"])
            }
        );
        assert_eq!(
            SyncRule::parse("2 (a,b)").expect("bare number"),
            SyncRule::Priority {
                num: 2,
                names: names(&["a", "b"])
            }
        );
        assert_eq!(
            SyncRule::parse("a, b").expect("old list"),
            SyncRule::Priority {
                num: 1,
                names: names(&["a", "b"])
            }
        );
        for bad in ["FIRST (a)", "FIRST 0 (a)", "ANY 1 (a", "a,,b", "SOME 1 (a)"] {
            assert!(SyncRule::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sync_states_follow_postgresql_rules() {
        let first = SyncRule::parse("FIRST 1 (pg2, pg3)").expect("valid");
        // pg3 connected first, but pg2 has the higher priority.
        assert_eq!(
            first.states(&["pg3", "other", "PG2"]),
            ["potential", "async", "sync"]
        );
        let star = SyncRule::parse("FIRST 2 (*)").expect("valid");
        assert_eq!(star.states(&["a", "b", "c"]), ["sync", "sync", "potential"]);
        let any = SyncRule::parse("ANY 1 (pg2, pg3)").expect("valid");
        assert_eq!(any.states(&["pg2", "x"]), ["quorum", "async"]);
        assert_eq!(SyncRule::None.states(&["pg2"]), ["async"]);
    }

    #[test]
    fn a_synchronous_standby_connected_is_sync_standby_durability() {
        let r = Replication::classify(
            "127.0.0.1:5432".into(),
            "FIRST 1 (pg2)".into(),
            vec![sender("pg2"), sender("pg3")],
        );
        assert_eq!(r.durability, Durability::SyncStandby);
        assert_eq!(r.warning, None);
        assert_eq!(r.standbys[0].sync_state, "sync");
        assert_eq!(r.standbys[1].sync_state, "async");
        assert_eq!(r.standbys[0].sync_state_from, "synchronous_standby_names");
    }

    #[test]
    fn standbys_without_a_synchronous_one_are_local_durability_with_a_warning() {
        let r = Replication::classify("127.0.0.1:5432".into(), String::new(), vec![sender("pg3")]);
        assert_eq!(r.durability, Durability::Local);
        let warning = r.warning.expect("warned");
        assert!(warning.contains("none is synchronous"), "{warning}");
        assert!(warning.contains("pg3"), "{warning}");
        // A lone primary is local too, and nothing to warn about: there is no failover.
        let alone = Replication::classify("p".into(), String::new(), vec![]);
        assert_eq!((alone.durability, alone.warning), (Durability::Local, None));
    }

    #[test]
    fn a_configured_synchronous_standby_that_is_not_connected_is_reported_missing() {
        let r = Replication::classify("p".into(), "FIRST 1 (pg2)".into(), vec![sender("pg3")]);
        assert_eq!(r.durability, Durability::SyncStandbyMissing);
        assert!(r.warning.expect("warned").contains("commits wait"));
        let quorum =
            Replication::classify("p".into(), "ANY 2 (pg2, pg3)".into(), vec![sender("pg2")]);
        assert_eq!(quorum.durability, Durability::SyncStandbyMissing);
    }

    #[test]
    fn the_server_sync_state_wins_when_the_role_may_see_it() {
        let r = Replication::classify(
            "p".into(),
            "FIRST 1 (pg2)".into(),
            vec![SenderRow {
                name: "pg2".into(),
                state: Some("catchup".into()),
                sync_state: Some("potential".into()),
            }],
        );
        assert_eq!(r.standbys[0].sync_state, "potential");
        assert_eq!(r.standbys[0].sync_state_from, "server");
        assert_eq!(r.durability, Durability::SyncStandbyMissing);
    }

    #[test]
    fn a_change_is_logged_once_and_a_new_primary_is_named() {
        let sync =
            Replication::classify("h1:1".into(), "FIRST 1 (pg2)".into(), vec![sender("pg2")]);
        let (level, line) = sync.change_since(None).expect("first check");
        assert_eq!(level, log::Level::Info);
        assert!(
            line.starts_with("durability: sync standby (primary h1:1"),
            "{line}"
        );
        assert_eq!(sync.change_since(Some(&sync)), None, "nothing changed");
        let after_failover =
            Replication::classify("h2:2".into(), String::new(), vec![sender("pg3")]);
        let (level, line) = after_failover.change_since(Some(&sync)).expect("changed");
        assert_eq!(level, log::Level::Warn);
        assert!(
            line.starts_with("the primary is now h2:2 (was h1:1)"),
            "{line}"
        );
        assert!(line.contains("durability: local"), "{line}");
    }
}
