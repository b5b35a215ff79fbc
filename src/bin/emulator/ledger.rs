//! The uid ledger: what was sent, by kind, and the `--uids-out` / `--rejects-out` files that
//! say what the service should have stored and rejected.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

use anyhow::{Context, Result};
use orders_service::domain::RejectReason;

use crate::message::{Kind, Outgoing};

/// What was sent, by kind, and the `--uids-out` / `--rejects-out` files.
#[derive(Default)]
pub(crate) struct Ledger {
    pub(crate) valid: u64,
    pub(crate) invalid: u64,
    pub(crate) duplicates: u64,
    pub(crate) conflicts: u64,
    pub(crate) uids: Option<(PathBuf, BufWriter<File>)>,
    pub(crate) rejects: Option<(PathBuf, BufWriter<File>)>,
}

pub(crate) fn create(path: &Option<PathBuf>) -> Result<Option<(PathBuf, BufWriter<File>)>> {
    path.as_ref()
        .map(|p| {
            let file = File::create(p).with_context(|| format!("cannot create {}", p.display()))?;
            Ok((p.clone(), BufWriter::new(file)))
        })
        .transpose()
}

fn write_line(out: &mut Option<(PathBuf, BufWriter<File>)>, key: &str, what: &str) -> Result<()> {
    if let Some((path, w)) = out {
        writeln!(w, "{key}\t{what}").with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

impl Ledger {
    pub(crate) fn record(&mut self, msg: &Outgoing) -> Result<()> {
        match msg.kind {
            Kind::Valid => {
                self.valid += 1;
                write_line(&mut self.uids, &msg.key, &msg.items.to_string())
            }
            Kind::Duplicate => {
                self.duplicates += 1;
                Ok(())
            }
            Kind::Conflict => {
                self.conflicts += 1;
                write_line(&mut self.rejects, &msg.key, RejectReason::Conflict.as_str())
            }
            Kind::Invalid(reason) => {
                self.invalid += 1;
                write_line(&mut self.rejects, &msg.key, reason.as_str())
            }
        }
    }

    pub(crate) fn finish(&mut self) -> Result<()> {
        for (path, w) in [&mut self.uids, &mut self.rejects].into_iter().flatten() {
            w.flush()
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        Ok(())
    }
}
