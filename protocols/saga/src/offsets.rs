//! Which consumer offsets may be stored when messages of one partition are
//! handled concurrently (by key, in several workers) and finish out of order.
//!
//! An offset may be stored — and so skipped after a restart — only when every
//! message before it in its partition has been handled, i.e. its local
//! transaction committed. The tracker keeps, per partition, the offsets handed
//! to workers and not yet finished; the position to store is the smallest of
//! them, or one past the highest seen when none is pending.

use std::collections::{BTreeMap, HashMap};

#[derive(Debug, Default)]
struct Partition {
    /// Offset → how many deliveries of it are in progress (a rebalance can
    /// deliver an offset again while the first delivery is still handled).
    pending: BTreeMap<i64, u32>,
    /// Highest offset handed out.
    highest: Option<i64>,
    /// Last position reported as storable, to report each advance once.
    stored: Option<i64>,
}

/// Pending offsets per (topic, partition).
#[derive(Debug, Default)]
pub struct OffsetTracker {
    partitions: HashMap<(String, i32), Partition>,
}

impl OffsetTracker {
    /// A message at `offset` was handed to a worker.
    pub fn started(&mut self, topic: &str, partition: i32, offset: i64) {
        let p = self.partitions.entry((topic.to_owned(), partition)).or_default();
        *p.pending.entry(offset).or_default() += 1;
        p.highest = Some(p.highest.map_or(offset, |h| h.max(offset)));
    }

    /// The message at `offset` was handled. Returns the position to store (the
    /// next offset to consume after a restart) if it advanced.
    pub fn finished(&mut self, topic: &str, partition: i32, offset: i64) -> Option<i64> {
        let p = self.partitions.get_mut(&(topic.to_owned(), partition))?;
        if let Some(n) = p.pending.get_mut(&offset) {
            *n -= 1;
            if *n == 0 {
                p.pending.remove(&offset);
            }
        }
        let position = match p.pending.keys().next() {
            Some(&lowest) => lowest,
            None => p.highest? + 1,
        };
        if p.stored.is_some_and(|s| s >= position) {
            return None;
        }
        p.stored = Some(position);
        Some(position)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_completion_advances_each_time() {
        let mut t = OffsetTracker::default();
        for o in 0..3 {
            t.started("a", 0, o);
        }
        assert_eq!(t.finished("a", 0, 0), Some(1));
        assert_eq!(t.finished("a", 0, 1), Some(2));
        assert_eq!(t.finished("a", 0, 2), Some(3));
    }

    #[test]
    fn out_of_order_completion_waits_for_the_gap() {
        let mut t = OffsetTracker::default();
        for o in 10..14 {
            t.started("a", 0, o);
        }
        assert_eq!(t.finished("a", 0, 12), Some(10), "10 still pending: store nothing past it");
        assert_eq!(t.finished("a", 0, 11), None);
        assert_eq!(t.finished("a", 0, 10), Some(13));
        assert_eq!(t.finished("a", 0, 13), Some(14));
    }

    #[test]
    fn partitions_and_topics_are_independent() {
        let mut t = OffsetTracker::default();
        t.started("a", 0, 5);
        t.started("a", 1, 7);
        t.started("b", 0, 1);
        assert_eq!(t.finished("a", 1, 7), Some(8));
        assert_eq!(t.finished("b", 0, 1), Some(2));
        assert_eq!(t.finished("a", 0, 5), Some(6));
    }

    #[test]
    fn redelivery_of_a_pending_offset_keeps_it_pending() {
        let mut t = OffsetTracker::default();
        t.started("a", 0, 3);
        t.started("a", 0, 4);
        t.started("a", 0, 3); // delivered again after a rebalance
        assert_eq!(t.finished("a", 0, 3), Some(3), "one delivery of 3 still in progress");
        assert_eq!(t.finished("a", 0, 4), None);
        assert_eq!(t.finished("a", 0, 3), Some(5));
        assert_eq!(t.finished("z", 9, 1), None, "unknown partition");
    }
}
