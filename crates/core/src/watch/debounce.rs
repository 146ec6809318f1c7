//! When a burst of changes is over: an adaptive quiet window.
//!
//! A save is a handful of events within microseconds; a branch switch or a code
//! generator is thousands, with gaps that depend on the machine. The window starts
//! short ([`Debounce::quiet`]) and, while events keep coming, grows to twice the
//! largest gap seen in this burst (at most [`Debounce::max_quiet`]): a burst is over
//! once it has been quiet for longer than it ever paused. An endless stream is cut
//! into batches every [`Debounce::max_latency`].

use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Debounce {
    /// Quiet time that ends a burst of events that came all at once.
    pub quiet: Duration,
    /// Longest quiet time, for bursts with long pauses.
    pub max_quiet: Duration,
    /// A batch is taken at the latest this long after its first event.
    pub max_latency: Duration,
}

impl Default for Debounce {
    fn default() -> Self {
        Self {
            quiet: Duration::from_millis(10),
            max_quiet: Duration::from_millis(100),
            max_latency: Duration::from_millis(300),
        }
    }
}

/// One burst in progress.
#[derive(Debug, Clone)]
pub(crate) struct Window {
    first: Instant,
    last: Instant,
    max_gap: Duration,
}

impl Window {
    pub(crate) fn start(now: Instant) -> Self {
        Self {
            first: now,
            last: now,
            max_gap: Duration::ZERO,
        }
    }

    /// More events arrived at `now`.
    pub(crate) fn event(&mut self, now: Instant) {
        self.max_gap = self.max_gap.max(now.saturating_duration_since(self.last));
        self.last = self.last.max(now);
    }

    /// When the burst counts as over, unless more events come first.
    pub(crate) fn deadline(&self, d: &Debounce) -> Instant {
        let quiet = (self.max_gap * 2).clamp(d.quiet, d.max_quiet.max(d.quiet));
        (self.last + quiet).min(self.first + d.max_latency)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_single_save_waits_only_the_short_window() {
        let d = Debounce::default();
        let t0 = Instant::now();
        let mut w = Window::start(t0);
        // The events of one save arrive together.
        w.event(t0 + Duration::from_micros(50));
        assert_eq!(w.deadline(&d), t0 + Duration::from_micros(50) + ms(10));
    }

    #[test]
    fn the_window_grows_with_the_gaps_of_a_burst() {
        let d = Debounce::default();
        let t0 = Instant::now();
        let mut w = Window::start(t0);
        // A generator writing a file every 8 ms: each gap fits the window it meets,
        // and the window becomes twice the gap.
        for i in 1..=5 {
            let now = t0 + ms(8 * i);
            assert!(
                now < w.deadline(&d),
                "event {i} came after the window closed"
            );
            w.event(now);
        }
        assert_eq!(w.deadline(&d), t0 + ms(40) + ms(16));
    }

    #[test]
    fn quiet_is_capped() {
        let d = Debounce::default();
        let t0 = Instant::now();
        let mut w = Window::start(t0);
        w.event(t0 + ms(90));
        assert_eq!(w.deadline(&d), t0 + ms(90) + ms(100));
    }

    #[test]
    fn an_endless_stream_is_cut_at_max_latency() {
        let d = Debounce::default();
        let t0 = Instant::now();
        let mut w = Window::start(t0);
        let mut now = t0;
        while now < t0 + ms(1000) {
            now += ms(1);
            if now >= w.deadline(&d) {
                break;
            }
            w.event(now);
        }
        assert_eq!(w.deadline(&d), t0 + d.max_latency);
        assert!(now <= t0 + d.max_latency, "batch not cut: {:?}", now - t0);
    }

    #[test]
    fn events_out_of_order_do_not_move_the_window_back() {
        let d = Debounce::default();
        let t0 = Instant::now();
        let mut w = Window::start(t0 + ms(5));
        w.event(t0);
        assert_eq!(w.deadline(&d), t0 + ms(5) + ms(10));
    }
}
