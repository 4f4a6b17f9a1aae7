//! Staying polite when the target is down.
//!
//! Each worker backs off exponentially (bounded) after a connection failure
//! and starts over after a success, so a down target costs a few attempts a
//! second, not a spinning core. [`Health`] is shared by all workers so the
//! log says "down" and "back" once per change, not once per attempt.

use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

pub const FIRST_DELAY: Duration = Duration::from_millis(50);
pub const MAX_DELAY: Duration = Duration::from_secs(5);

/// Bounded exponential backoff: 50 ms, 100 ms, ... 5 s, 5 s, ...
#[derive(Debug, Default)]
pub struct Backoff {
    failures: u32,
}

impl Backoff {
    /// The delay to wait after one more failure.
    pub fn next_delay(&mut self) -> Duration {
        let delay = FIRST_DELAY.saturating_mul(1 << self.failures.min(16));
        self.failures = self.failures.saturating_add(1);
        delay.min(MAX_DELAY)
    }

    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

const UNKNOWN: u8 = 0;
const UP: u8 = 1;
const DOWN: u8 = 2;

/// Whether the target answers, as last seen by any worker.
#[derive(Debug)]
pub struct Health {
    state: AtomicU8,
}

impl Default for Health {
    fn default() -> Self {
        Self {
            state: AtomicU8::new(UNKNOWN),
        }
    }
}

impl Health {
    /// Records an answer; logs once when the target comes back.
    pub fn answered(&self, target: &str) {
        // Read first: the common case writes nothing, so workers on other
        // cores do not fight over this cache line at every answer.
        if self.state.load(Ordering::Relaxed) != UP
            && self.state.swap(UP, Ordering::Relaxed) == DOWN
        {
            tracing::info!("{target} answers again");
        }
    }

    /// Records a connection failure; logs once when the target goes down.
    pub fn unreachable(&self, target: &str, error: &str) {
        if self.state.swap(DOWN, Ordering::Relaxed) != DOWN {
            tracing::warn!("{target} is unreachable ({error}); backing off until it answers");
        }
    }

    pub fn is_down(&self) -> bool {
        self.state.load(Ordering::Relaxed) == DOWN
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_bound_and_reset() {
        let mut b = Backoff::default();
        let delays: Vec<_> = (0..10).map(|_| b.next_delay()).collect();
        assert_eq!(delays[0], FIRST_DELAY);
        assert_eq!(delays[1], FIRST_DELAY * 2);
        assert_eq!(delays[2], FIRST_DELAY * 4);
        assert!(delays.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(*delays.last().unwrap(), MAX_DELAY);
        for _ in 0..100 {
            assert_eq!(b.next_delay(), MAX_DELAY);
        }
        b.reset();
        assert_eq!(b.next_delay(), FIRST_DELAY);
    }

    #[test]
    fn health_tracks_the_last_word() {
        let h = Health::default();
        assert!(!h.is_down());
        h.unreachable("t", "refused");
        assert!(h.is_down());
        h.unreachable("t", "refused");
        h.answered("t");
        assert!(!h.is_down());
    }
}
