//! Progress for one long operation (`cluster create` takes minutes): a spinner on a
//! terminal, one plain line otherwise, nothing with `--json` or `-q`. Always stderr:
//! stdout carries the result.

use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::time::short_duration;
use crate::context::Output;

pub struct Spinner {
    bar: Option<ProgressBar>,
    began: Instant,
}

impl Spinner {
    /// Starts showing `what` ("creating the k3d cluster").
    pub fn start(out: &Output, what: &str) -> Self {
        let began = Instant::now();
        if out.json || out.quiet {
            return Self { bar: None, began };
        }
        if !out.stderr_tty {
            eprintln!("{what} ...");
            return Self { bar: None, began };
        }
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg} {elapsed}")
                .expect("static template")
                .tick_chars("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏ "),
        );
        bar.set_message(what.to_owned());
        bar.enable_steady_tick(Duration::from_millis(100));
        Self {
            bar: Some(bar),
            began,
        }
    }

    /// How long it took, as `12s`.
    pub fn took(&self) -> String {
        short_duration(self.began.elapsed())
    }

    /// Removes the spinner (the caller prints the outcome).
    pub fn finish(self) {
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}
