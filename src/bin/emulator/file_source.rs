//! `--file`: sending given JSON files as they are, each classified the way the service will
//! treat it.

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::{Context, Result};
use orders_service::domain::{RejectReason, parse_and_validate};
use rand::Rng;
use rand::rngs::StdRng;
use serde_json::Value;

use crate::message::{Kind, Outgoing};

/// One `--file`, read and classified once.
struct FileMessage {
    key: String,
    payload: Vec<u8>,
    /// uid, content hash and item count of a valid order; the reason otherwise.
    verdict: Result<(String, [u8; 32], usize), RejectReason>,
}

/// The given files, each sent `repeat` times, classified as they go: the first valid version
/// of a uid is new, the same content again a duplicate, other content a conflict.
pub(crate) struct Files {
    files: Vec<FileMessage>,
    repeat: u64,
    next: u64,
    seen: HashMap<String, [u8; 32]>,
}

impl Files {
    pub(crate) fn load(
        paths: &[PathBuf],
        repeat: u64,
        max_payload: usize,
        rng: &mut StdRng,
    ) -> Result<Self> {
        let mut files = Vec::with_capacity(paths.len());
        for path in paths {
            let payload =
                std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
            let uid = serde_json::from_slice::<Value>(&payload)
                .ok()
                .and_then(|v| v.get("order_uid")?.as_str().map(str::to_string))
                .filter(|uid| !uid.is_empty());
            let key = uid.unwrap_or_else(|| format!("key-{:016x}", rng.random::<u64>()));
            let verdict = match parse_and_validate(&payload, max_payload) {
                Ok(valid) => Ok((
                    valid.order.order_uid.to_string(),
                    valid.content_hash,
                    valid.order.items.len(),
                )),
                Err(rejection) => {
                    log::info!("{} will be rejected: {rejection}", path.display());
                    Err(rejection.reason)
                }
            };
            files.push(FileMessage {
                key,
                payload,
                verdict,
            });
        }
        Ok(Self {
            files,
            repeat,
            next: 0,
            seen: HashMap::new(),
        })
    }

    pub(crate) fn total(&self) -> u64 {
        self.files.len() as u64 * self.repeat
    }
}

impl Iterator for Files {
    type Item = Outgoing;

    fn next(&mut self) -> Option<Outgoing> {
        if self.next >= self.total() {
            return None;
        }
        let file = &self.files[(self.next % self.files.len() as u64) as usize];
        self.next += 1;
        let (kind, items) = match &file.verdict {
            Err(reason) => (Kind::Invalid(*reason), 0),
            Ok((uid, hash, items)) => match self.seen.get(uid) {
                None => {
                    self.seen.insert(uid.clone(), *hash);
                    (Kind::Valid, *items)
                }
                Some(seen) if seen == hash => (Kind::Duplicate, *items),
                Some(_) => (Kind::Conflict, *items),
            },
        };
        Some(Outgoing {
            key: file.key.clone(),
            payload: file.payload.clone(),
            kind,
            items,
        })
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;
    use crate::draw::tests::{LIMIT, draw};
    use crate::invalid::conflict;
    use crate::valid::{Sent, valid};

    #[test]
    fn files_are_classified_as_new_duplicate_conflict_or_rejected() {
        let dir = std::env::temp_dir().join(format!("emulator-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let (mut d, mut sent) = (draw(11), Sent::default());
        let order = valid(&mut d, &mut sent);
        let conflict = conflict(&mut d, &sent).expect("conflict");
        let paths = [
            (dir.join("a.json"), order.payload.clone()),
            (dir.join("b.json"), conflict.payload.clone()),
            (dir.join("c.json"), b"[1,2]".to_vec()),
        ];
        for (path, bytes) in &paths {
            std::fs::write(path, bytes).expect("write");
        }
        let list: Vec<PathBuf> = paths.iter().map(|(p, _)| p.clone()).collect();
        let mut rng = StdRng::seed_from_u64(0);
        let files = Files::load(&list, 2, LIMIT, &mut rng).expect("load");
        let kinds: Vec<Kind> = files.map(|m| m.kind).collect();
        let malformed = Kind::Invalid(RejectReason::Malformed);
        assert_eq!(
            kinds,
            [
                Kind::Valid,
                Kind::Conflict,
                malformed,
                Kind::Duplicate,
                Kind::Conflict,
                malformed
            ]
        );
        std::fs::remove_dir_all(&dir).ok();
    }
}
