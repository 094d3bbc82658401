//! The delivery counters a session keeps for the shell, which moves them into the process
//! metrics ([`super::Session::take_stats`]).

/// Counters the shell moves into the process metrics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// Events delivered, indexed by [mode][qos]: structured=0, binary=1.
    pub delivered: [[u64; 2]; 2],
    /// Payload bytes delivered, indexed by [mode][qos].
    pub delivered_bytes: [[u64; 2]; 2],
    pub acked: u64,
}
