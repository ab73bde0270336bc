//! Limits on connections per source address, before they log in.
//!
//! A connection costs the daemon a key exchange before anyone has proven
//! anything, and a client can open dozens in milliseconds (the DHEat
//! pattern). So every source address has a token bucket
//! (`per_address_burst` tokens, refilled at `per_address_rate` a second):
//! a connection takes a token when it is accepted, and is closed at once,
//! before the SSH handshake, if there is none. A connection that logs in
//! gives its token back, so a client that authenticates may connect as
//! often as it likes; only handshakes that lead nowhere are limited. An
//! IPv6 /64 counts as one address (one host usually has the whole /64).
//!
//! The audit log gets the first `connection` of each second from an
//! address as a line of its own, and a summary line for the rest ("N more
//! connections from ADDR in the last second, M refused"), so a flood
//! cannot bury the log. Authentication events are never summarised.
//! Refusals are logged at most once per [`LOG_INTERVAL`] per address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How long one audit summary covers.
pub const AUDIT_INTERVAL: Duration = Duration::from_secs(1);

/// Refusals from one address are logged at most this often.
pub const LOG_INTERVAL: Duration = Duration::from_secs(10);

/// The bucket's size and refill rate (from config.toml).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Tokens when full; 0 means no limit.
    pub burst: u32,
    /// Tokens added a second.
    pub rate: u32,
}

/// What to do with a new connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Serve it; write its own `connection` audit line if `audit`
    /// (otherwise it is counted in the next summary).
    Admit {
        /// This is the first connection of the address's audit interval.
        audit: bool,
    },
    /// Close it now.
    Refuse {
        /// Log the refusal, with this many refused since the last message.
        log: Option<u64>,
    },
}

/// Connections from one address not audited one by one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// The address (for IPv6, the /64, written as its first address).
    pub source: IpAddr,
    /// Connections served but counted here instead of a line each.
    pub admitted: u64,
    /// Connections refused by the limit.
    pub refused: u64,
}

impl Summary {
    /// The audit line's `detail`.
    pub fn describe(&self) -> String {
        let mut text = format!(
            "{} more connections from {} in the last {} s",
            self.admitted,
            self.source,
            AUDIT_INTERVAL.as_secs()
        );
        if self.refused > 0 {
            text.push_str(&format!(
                ", {} refused (per_address_burst/per_address_rate)",
                self.refused
            ));
        }
        text
    }
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    updated: Instant,
    /// The current audit interval: when it started, what it counted.
    window: Option<(Instant, u64, u64)>,
    /// When a refusal was last logged, and refusals since.
    logged: Option<Instant>,
    unlogged: u64,
}

/// Buckets and audit intervals of every address seen lately.
#[derive(Debug, Default)]
pub struct Throttle {
    sources: Mutex<HashMap<IpAddr, Bucket>>,
}

/// The key of an address: itself, or for IPv6 its /64; an IPv4 address
/// mapped into IPv6 is the IPv4 address.
pub fn source_of(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(bits.into())
        }
        v4 => v4,
    }
}

impl Throttle {
    /// An empty throttle.
    pub fn new() -> Self {
        Self::default()
    }

    /// Decides about a connection from `ip` accepted at `now`.
    ///
    /// Returns the verdict and, when an earlier audit interval of this
    /// address still had counts, its summary (to write first).
    pub fn admit(&self, ip: IpAddr, now: Instant, limits: Limits) -> (Verdict, Option<Summary>) {
        let source = source_of(ip);
        let mut sources = self.sources.lock().unwrap_or_else(PoisonError::into_inner);
        let bucket = sources.entry(source).or_insert_with(|| Bucket {
            tokens: f64::from(limits.burst),
            updated: now,
            window: None,
            logged: None,
            unlogged: 0,
        });
        refill(bucket, now, limits);
        let admitted = limits.burst == 0 || bucket.tokens >= 1.0;
        if admitted && limits.burst > 0 {
            bucket.tokens -= 1.0;
        }
        let mut earlier = None;
        let mut first = false;
        match &mut bucket.window {
            Some((started, _, _)) if now.duration_since(*started) < AUDIT_INTERVAL => {}
            window => {
                if let Some((_, a, r)) = window.take()
                    && a + r > 0
                {
                    earlier = Some(Summary { source, admitted: a, refused: r });
                }
                // A refusal does not open an interval with a line of its
                // own: a flood of refusals shows up only in summaries.
                *window = Some((now, 0, 0));
                first = admitted;
            }
        }
        let Some((_, more, refused)) = &mut bucket.window else {
            return (Verdict::Admit { audit: true }, earlier);
        };
        let verdict = if admitted {
            if !first {
                *more += 1;
            }
            Verdict::Admit { audit: first }
        } else {
            *refused += 1;
            bucket.unlogged += 1;
            let due = bucket.logged.is_none_or(|t| now.duration_since(t) >= LOG_INTERVAL);
            let log = due.then(|| {
                bucket.logged = Some(now);
                std::mem::take(&mut bucket.unlogged)
            });
            Verdict::Refuse { log }
        };
        (verdict, earlier)
    }

    /// A connection from `ip` logged in: its token goes back.
    pub fn logged_in(&self, ip: IpAddr, limits: Limits) {
        let mut sources = self.sources.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(bucket) = sources.get_mut(&source_of(ip)) {
            bucket.tokens = (bucket.tokens + 1.0).min(f64::from(limits.burst));
        }
    }

    /// The summaries of audit intervals over by `now` (or of all of them
    /// with `all`, when the daemon stops), and forgets addresses with a
    /// full bucket and nothing to report.
    pub fn flush(&self, now: Instant, limits: Limits, all: bool) -> Vec<Summary> {
        let mut sources = self.sources.lock().unwrap_or_else(PoisonError::into_inner);
        let mut out = Vec::new();
        for (source, bucket) in sources.iter_mut() {
            refill(bucket, now, limits);
            let over = bucket.window.is_some_and(|(started, _, _)| {
                all || now.duration_since(started) >= AUDIT_INTERVAL
            });
            if over
                && let Some((_, admitted, refused)) = bucket.window.take()
                && admitted + refused > 0
            {
                out.push(Summary { source: *source, admitted, refused });
            }
        }
        sources.retain(|_, b| {
            b.window.is_some()
                || b.tokens < f64::from(limits.burst)
                || b.logged.is_some_and(|t| now.duration_since(t) < LOG_INTERVAL)
        });
        out
    }

    /// Addresses remembered now (for tests and the log).
    pub fn tracked(&self) -> usize {
        self.sources.lock().unwrap_or_else(PoisonError::into_inner).len()
    }
}

fn refill(bucket: &mut Bucket, now: Instant, limits: Limits) {
    let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
    bucket.tokens = (bucket.tokens + elapsed * f64::from(limits.rate)).min(f64::from(limits.burst));
    bucket.updated = now;
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits { burst: 10, rate: 5 };

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn admitted(v: &Verdict) -> bool {
        matches!(v, Verdict::Admit { .. })
    }

    #[test]
    fn a_burst_is_served_then_the_rate() {
        let t = Throttle::new();
        let now = Instant::now();
        let served = (0..38).filter(|_| admitted(&t.admit(ip("10.0.0.1"), now, LIMITS).0)).count();
        assert_eq!(served, 10);
        // Another address has its own bucket.
        assert!(admitted(&t.admit(ip("10.0.0.2"), now, LIMITS).0));
        // One second later, five more.
        let later = now + Duration::from_secs(1);
        let served =
            (0..38).filter(|_| admitted(&t.admit(ip("10.0.0.1"), later, LIMITS).0)).count();
        assert_eq!(served, 5);
    }

    #[test]
    fn ssh_audits_rate_test_stays_under_20_a_second() {
        // 1.5 s of connections as fast as they come, as ssh-audit does.
        let t = Throttle::new();
        let start = Instant::now();
        let served = (0..1500)
            .filter(|i| {
                let now = start + Duration::from_millis(*i);
                admitted(&t.admit(ip("127.0.0.1"), now, LIMITS).0)
            })
            .count();
        assert!((served as f64 / 1.5) < 20.0, "{served} served in 1.5 s");
    }

    #[test]
    fn logging_in_gives_the_token_back() {
        let t = Throttle::new();
        let now = Instant::now();
        for _ in 0..100 {
            assert!(admitted(&t.admit(ip("10.0.0.1"), now, LIMITS).0));
            t.logged_in(ip("10.0.0.1"), LIMITS);
        }
    }

    #[test]
    fn no_limit_with_a_zero_burst() {
        let t = Throttle::new();
        let now = Instant::now();
        let off = Limits { burst: 0, rate: 1 };
        assert!((0..1000).all(|_| admitted(&t.admit(ip("10.0.0.1"), now, off).0)));
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() {
        let t = Throttle::new();
        let now = Instant::now();
        for i in 0..10 {
            assert!(admitted(&t.admit(ip(&format!("2001:db8::{i:x}")), now, LIMITS).0));
        }
        assert!(!admitted(&t.admit(ip("2001:db8::ffff:1"), now, LIMITS).0));
        assert!(admitted(&t.admit(ip("2001:db8:0:1::1"), now, LIMITS).0));
        assert_eq!(source_of(ip("::ffff:10.1.2.3")), ip("10.1.2.3"));
    }

    #[test]
    fn fifty_connects_make_two_audit_lines() {
        let t = Throttle::new();
        let now = Instant::now();
        let mut lines = 0;
        let mut logged = 0;
        for i in 0..50 {
            let (v, earlier) = t.admit(ip("10.0.0.1"), now + Duration::from_millis(i), LIMITS);
            assert!(earlier.is_none());
            match v {
                Verdict::Admit { audit: true } => lines += 1,
                Verdict::Refuse { log: Some(_) } => logged += 1,
                _ => {}
            }
        }
        assert_eq!((lines, logged), (1, 1));
        assert!(t.flush(now + Duration::from_millis(500), LIMITS, false).is_empty());
        let summaries = t.flush(now + Duration::from_secs(1), LIMITS, false);
        assert_eq!(summaries, vec![Summary { source: ip("10.0.0.1"), admitted: 9, refused: 40 }]);
        assert!(summaries[0].describe().contains("9 more connections from 10.0.0.1"));
        assert!(summaries[0].describe().contains("40 refused"));
        // Once the bucket is full again and nothing is pending, forgotten.
        assert!(t.flush(now + Duration::from_secs(60), LIMITS, false).is_empty());
        assert_eq!(t.tracked(), 0);
    }

    #[test]
    fn a_late_connection_reports_the_interval_before_it() {
        let t = Throttle::new();
        let now = Instant::now();
        let _ = t.admit(ip("10.0.0.1"), now, LIMITS);
        let _ = t.admit(ip("10.0.0.1"), now, LIMITS);
        let (v, earlier) = t.admit(ip("10.0.0.1"), now + Duration::from_secs(2), LIMITS);
        assert_eq!(v, Verdict::Admit { audit: true });
        assert_eq!(earlier, Some(Summary { source: ip("10.0.0.1"), admitted: 1, refused: 0 }));
    }
}
