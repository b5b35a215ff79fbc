//! Progress reporting on stderr.

use std::io::IsTerminal;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Progress on stderr: a bar on a terminal for long runs, else a log line every 10 %.
pub(crate) enum Progress {
    Silent,
    Bar(ProgressBar),
    Log {
        total: u64,
        next_tenth: u64,
        start: Instant,
    },
}

impl Progress {
    pub(crate) fn new(total: u64, quiet: bool) -> Self {
        if quiet || total == 0 {
            return Progress::Silent;
        }
        if total > 1000 && std::io::stderr().is_terminal() {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            if let Ok(style) = ProgressStyle::with_template(
                "{elapsed_precise} [{wide_bar}] {human_pos}/{human_len} {rate} eta {eta}",
            ) {
                let style = style.progress_chars("=> ").with_key(
                    "rate",
                    |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                        let _ = write!(w, "{:.0} msg/s", state.per_sec());
                    },
                );
                bar.set_style(style);
            }
            return Progress::Bar(bar);
        }
        Progress::Log {
            total,
            next_tenth: 1,
            start: Instant::now(),
        }
    }

    pub(crate) fn update(&mut self, done: u64) {
        match self {
            Progress::Silent => {}
            Progress::Bar(bar) => bar.set_position(done),
            Progress::Log {
                total,
                next_tenth,
                start,
            } => {
                let reached = (done * 10 / *total).min(10);
                if reached >= *next_tenth {
                    let secs = start.elapsed().as_secs_f64().max(1e-9);
                    log::info!(
                        "{}% ({done}/{total}) acknowledged, {:.0} msg/s",
                        reached * 10,
                        done as f64 / secs
                    );
                    *next_tenth = reached + 1;
                }
            }
        }
    }

    pub(crate) fn finish(&self) {
        if let Progress::Bar(bar) = self {
            bar.finish_and_clear();
        }
    }
}
