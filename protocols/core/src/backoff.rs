//! The one exponential back-off of the protocols: a wait that doubles after
//! every failed attempt, up to a cap, and starts over when told the trouble
//! is over. Used between retries of a saga message, rejoins of a fatally
//! failed Kafka consumer and 2PC phase-two calls.

use std::time::Duration;

/// Waits between retries: `first`, then twice as long each time, at most `cap`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    first: Duration,
    cap: Duration,
    next: Duration,
}

impl Backoff {
    /// A back-off starting at `first` and growing to at most `cap`.
    pub const fn new(first: Duration, cap: Duration) -> Self {
        Backoff { first, cap, next: first }
    }

    /// The wait before the next attempt (what [`Backoff::advance`] would
    /// return), without moving on.
    pub fn peek(&self) -> Duration {
        self.next
    }

    /// The wait before the next attempt; the one after is twice as long (at
    /// most the cap).
    pub fn advance(&mut self) -> Duration {
        let wait = self.next;
        self.next = self.next.saturating_mul(2).min(self.cap);
        wait
    }

    /// Starts over at the first wait.
    pub fn reset(&mut self) {
        self.next = self.first;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_and_starts_over_on_reset() {
        let ms = Duration::from_millis;
        let mut backoff = Backoff::new(ms(50), ms(300));
        let waits: Vec<Duration> = (0..5).map(|_| backoff.advance()).collect();
        assert_eq!(waits, [ms(50), ms(100), ms(200), ms(300), ms(300)]);
        assert_eq!(backoff.peek(), ms(300));
        backoff.reset();
        assert_eq!(backoff.advance(), ms(50));
    }
}
