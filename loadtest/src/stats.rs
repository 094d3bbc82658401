//! What the rig counts: per-subscriber deliveries, per-producer sequence sets (gaps and
//! duplicates), latency histograms, and the server's RSS and CPU from `/proc`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use hdrhistogram::Histogram;

/// Latency histogram in µs: 1 µs … 1 hour, 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

/// Which sequence numbers of one producer a subscriber (or a group) saw: one bit each.
#[derive(Default, Clone)]
pub struct SeqSet {
    bits: Vec<u64>,
    pub distinct: u64,
    pub duplicates: u64,
    /// Highest sequence number + 1 seen.
    pub end: u64,
}

/// Sequence numbers at or above this are not ours (a stray or corrupt marker).
const MAX_SEQ: u64 = 1 << 34;

impl SeqSet {
    /// Records `seq`; false if it cannot be one of ours.
    pub fn record(&mut self, seq: u64) -> bool {
        if seq >= MAX_SEQ {
            return false;
        }
        let w = (seq / 64) as usize;
        if w >= self.bits.len() {
            // Doubling: a few allocations over a run, none per message.
            self.bits.resize((w + 1).next_power_of_two().max(1024), 0);
        }
        let m = 1u64 << (seq % 64);
        if self.bits[w] & m != 0 {
            self.duplicates += 1;
        } else {
            self.bits[w] |= m;
            self.distinct += 1;
        }
        self.end = self.end.max(seq + 1);
        true
    }

    /// Adds `other`'s deliveries (a shared group's members): an event both saw is a duplicate.
    pub fn merge(&mut self, other: &SeqSet) {
        if other.bits.len() > self.bits.len() {
            self.bits.resize(other.bits.len(), 0);
        }
        let mut overlap = 0u64;
        for (a, b) in self.bits.iter_mut().zip(&other.bits) {
            overlap += u64::from((*a & b).count_ones());
            *a |= b;
        }
        self.distinct += other.distinct - overlap;
        self.duplicates += other.duplicates + overlap;
        self.end = self.end.max(other.end);
    }
}

/// The rig's counters shared between its threads: read by the progress line, the producers'
/// pacing and the final report.
pub struct Shared {
    /// Deliveries, all subscribers.
    pub delivered: AtomicU64,
    /// Data bytes delivered.
    pub delivered_bytes: AtomicU64,
    /// Per producer: events sent (accepted by the server for HTTP/Kafka, written for MQTT).
    pub produced: Vec<AtomicU64>,
    /// Per subscriber × producer: the highest sequence + 1 seen (pacing: `--max-lead`).
    pub seen_end: Vec<AtomicU64>,
    pub producers: usize,
    pub connected: AtomicU64,
    pub subscribed: AtomicU64,
    pub connect_failed: AtomicU64,
    pub closed: AtomicU64,
    pub pings_sent: AtomicU64,
    pub pings_answered: AtomicU64,
    /// Latency of the current progress interval (all threads record; the sampler swaps it).
    pub interval: Mutex<Histogram<u64>>,
    /// First error seen (connection refused, CONNACK/SUBACK refusal, …).
    pub first_error: Mutex<Option<String>>,
}

impl Shared {
    pub fn new(producers: usize, subscribers: usize) -> Shared {
        Shared {
            delivered: AtomicU64::new(0),
            delivered_bytes: AtomicU64::new(0),
            produced: (0..producers).map(|_| AtomicU64::new(0)).collect(),
            seen_end: (0..producers * subscribers)
                .map(|_| AtomicU64::new(0))
                .collect(),
            producers,
            connected: AtomicU64::new(0),
            subscribed: AtomicU64::new(0),
            connect_failed: AtomicU64::new(0),
            closed: AtomicU64::new(0),
            pings_sent: AtomicU64::new(0),
            pings_answered: AtomicU64::new(0),
            interval: Mutex::new(histogram()),
            first_error: Mutex::new(None),
        }
    }

    pub fn produced_total(&self) -> u64 {
        self.produced
            .iter()
            .map(|p| p.load(Ordering::Relaxed))
            .sum()
    }

    pub fn error(&self, msg: String) {
        let mut e = self.first_error.lock().unwrap_or_else(|e| e.into_inner());
        if e.is_none() {
            *e = Some(msg);
        }
    }
}

/// Samples a process's RSS and CPU time from `/proc/<pid>`.
pub struct ProcSampler {
    pid: u32,
    ticks_per_sec: f64,
    last: Option<(std::time::Instant, u64)>,
}

/// One sample: resident set size and CPU use (% of one core) since the previous sample.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcSample {
    pub rss_kib: u64,
    pub cpu_percent: f64,
}

impl ProcSampler {
    pub fn new(pid: u32) -> ProcSampler {
        // SAFETY-free: sysconf is a plain libc query.
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        ProcSampler {
            pid,
            ticks_per_sec: if ticks > 0 { ticks as f64 } else { 100.0 },
            last: None,
        }
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }

    /// utime + stime in clock ticks (fields 14 and 15 of `/proc/<pid>/stat`).
    fn cpu_ticks(&self) -> Option<u64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid)).ok()?;
        // The command name may hold spaces; fields are counted after its closing ')'.
        let rest = &stat[stat.rfind(')')? + 2..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
    }

    pub fn sample(&mut self) -> Option<ProcSample> {
        let rss_kib = self.rss_kib()?;
        let now = std::time::Instant::now();
        let ticks = self.cpu_ticks()?;
        let cpu_percent = match self.last {
            Some((t, prev)) => {
                let secs = now.duration_since(t).as_secs_f64();
                if secs > 0.0 {
                    (ticks.saturating_sub(prev)) as f64 / self.ticks_per_sec / secs * 100.0
                } else {
                    0.0
                }
            }
            None => 0.0,
        };
        self.last = Some((now, ticks));
        Some(ProcSample {
            rss_kib,
            cpu_percent,
        })
    }
}

/// The pid of the process listening on TCP `port` of 127.0.0.1 (or any address): the socket's
/// inode from `/proc/net/tcp`, then the process holding it among `/proc/*/fd`.
pub fn pid_listening_on(port: u16) -> Option<u32> {
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // local_address is HEXIP:HEXPORT, st 0A = LISTEN, inode is field 9.
            let (Some(local), Some(st), Some(inode)) = (f.get(1), f.get(3), f.get(9)) else {
                continue;
            };
            let p = local
                .rsplit(':')
                .next()
                .and_then(|p| u16::from_str_radix(p, 16).ok());
            if *st == "0A" && p == Some(port) {
                inodes.push(format!("socket:[{inode}]"));
            }
        }
    }
    if inodes.is_empty() {
        return None;
    }
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if let Ok(link) = std::fs::read_link(fd.path()) {
                if inodes.iter().any(|i| link.as_os_str() == i.as_str()) {
                    return Some(pid);
                }
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seq_sets_count_gaps_duplicates_and_group_overlap() {
        let mut a = SeqSet::default();
        for s in [0, 1, 1, 3, 5000] {
            assert!(a.record(s));
        }
        assert!(!a.record(MAX_SEQ));
        assert_eq!((a.distinct, a.duplicates, a.end), (4, 1, 5001));
        let mut b = SeqSet::default();
        b.record(3);
        b.record(4);
        a.merge(&b);
        assert_eq!((a.distinct, a.duplicates), (5, 2));
    }

    #[test]
    fn samples_this_process() {
        let mut s = ProcSampler::new(std::process::id());
        assert!(s.sample().unwrap().rss_kib > 0);
    }
}
