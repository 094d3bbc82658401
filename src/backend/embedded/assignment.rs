//! Which member of a group reads which partition.
//!
//! Round-robin like Kafka's assignors: members sorted by [`ConnId`](crate::seam::ConnId),
//! partition `p` goes to member `p % n`. Every partition has exactly one owner, so a shared
//! subscription (`$share/g/…`) splits the stream and order per partition (per device) is kept
//! within the group (spec 2.1, 2.4). Recomputed on every join and leave.

/// The owner (index into the sorted member list) of each of `partitions`; None without members.
pub(crate) fn assign(partitions: usize, members: usize) -> impl Iterator<Item = Option<usize>> {
    (0..partitions).map(move |p| (members > 0).then(|| p % members))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_robin_over_sorted_members() {
        assert_eq!(
            assign(5, 2).collect::<Vec<_>>(),
            [Some(0), Some(1), Some(0), Some(1), Some(0)]
        );
        assert_eq!(assign(2, 3).collect::<Vec<_>>(), [Some(0), Some(1)]);
        assert!(assign(3, 0).all(|o| o.is_none()));
    }
}
