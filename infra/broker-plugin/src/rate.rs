//! AWS IoT Core's per-connection inbound publish limit, for classroom connections (pure: the
//! clock is an argument in milliseconds, so the limit is unit-tested here and the FFI layer only
//! asks it).
//!
//! # The figure
//! AWS IoT Core's message broker quota "Inbound publish requests per second per connection" is
//! **100** and cannot be raised (AWS General Reference, "AWS IoT Core endpoints and quotas",
//! message broker limits). IoT Core does not close a connection that goes over it: the excess
//! publishes are throttled, i.e. dropped before any rule sees them, and logged with the reason
//! `throttled` (the `PublishIn.Throttle` metric). A QoS 1 publish it throttled gets no PUBACK, so
//! a client library normally sends it again later; a QoS 0 one is lost.
//!
//! # Here
//! [`Limiter`] gives each classroom connection a token bucket of `per_second` publishes that
//! refills at `per_second` per second: a connection can send `per_second` at once and then
//! `per_second` per second, so any one second holds at most `2 * per_second` (the bucket's burst
//! plus the refill). Every publish request of a classroom connection counts, as IoT counts
//! requests, whether its topic is granted or not. A publish over the limit is denied in the ACL
//! check, so it reaches neither subscribers nor the uplink rule, and the connection stays open.
//! One difference from IoT Core: Mosquitto answers a denied QoS 1 publish with a PUBACK
//! (reason "not authorized", 0x87, for MQTT 5; a plain PUBACK for 3.1.1), so the client does
//! not send it again. The backend identity is never limited (IoT's rules engine and the
//! backend's own connections are not classroom clients). `per_second = 0` turns the limit off.
//!
//! A bucket belongs to one accepted CONNECT: the FFI layer keys it by the connection's address
//! and the sign-in's sequence number, so a reconnect starts with a full bucket (as a new IoT
//! connection does), and drops buckets of connections that are gone.

use std::collections::HashMap;

/// IoT Core's "Inbound publish requests per second per connection" (not adjustable): the
/// default of `plugin_opt_publish_per_second`.
pub const IOT_PUBLISH_PER_SECOND: u32 = 100;

/// One bucket, in thousandths of a publish so the refill is exact in integers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Bucket {
    /// Which sign-in of the connection this bucket is for.
    seq: u64,
    /// Available publishes x 1000.
    milli: u64,
    /// The clock at the last update.
    at_ms: u64,
    /// Publishes refused since the last allowed one.
    refused: u64,
}

/// What the limiter says about one publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Within the limit.
    Allow,
    /// Over the limit: deny it. `first` for the first refusal since the connection's last allowed
    /// publish (worth a log line; the rest of a flood is not).
    Throttled {
        /// The first refusal of this run of refusals.
        first: bool,
    },
}

/// The per-connection publish limit.
#[derive(Debug, Clone, Default)]
pub struct Limiter {
    per_second: u32,
    buckets: HashMap<usize, Bucket>,
}

impl Limiter {
    /// A limit of `per_second` publishes per second per connection (0: no limit).
    pub fn new(per_second: u32) -> Self {
        Self {
            per_second,
            buckets: HashMap::new(),
        }
    }

    /// The configured figure (0: off).
    pub fn per_second(&self) -> u32 {
        self.per_second
    }

    /// Counts one publish request of connection `conn` (its sign-in number `seq`) at `now_ms`
    /// on a monotonic clock.
    pub fn check(&mut self, conn: usize, seq: u64, now_ms: u64) -> Verdict {
        if self.per_second == 0 {
            return Verdict::Allow;
        }
        let full = u64::from(self.per_second) * 1000;
        let b = self.buckets.entry(conn).or_insert(Bucket {
            seq,
            milli: full,
            at_ms: now_ms,
            refused: 0,
        });
        if b.seq != seq {
            // A new sign-in at a reused address: a new connection, a full bucket.
            *b = Bucket {
                seq,
                milli: full,
                at_ms: now_ms,
                refused: 0,
            };
        }
        // per_second publishes per 1000 ms = per_second thousandths per ms.
        let elapsed = now_ms.saturating_sub(b.at_ms);
        b.milli = b
            .milli
            .saturating_add(elapsed.saturating_mul(u64::from(self.per_second)))
            .min(full);
        b.at_ms = b.at_ms.max(now_ms);
        if b.milli >= 1000 {
            b.milli -= 1000;
            b.refused = 0;
            Verdict::Allow
        } else {
            b.refused += 1;
            Verdict::Throttled {
                first: b.refused == 1,
            }
        }
    }

    /// Keeps only the buckets of connections for which `live(conn, seq)` holds.
    pub fn retain(&mut self, mut live: impl FnMut(usize, u64) -> bool) {
        self.buckets.retain(|conn, b| live(*conn, b.seq));
    }

    /// How many connections have a bucket (for tests and the log).
    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    /// No bucket at all.
    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 5_000_000;

    fn allowed(l: &mut Limiter, conn: usize, seq: u64, now_ms: u64, n: usize) -> usize {
        (0..n)
            .filter(|_| l.check(conn, seq, now_ms) == Verdict::Allow)
            .count()
    }

    #[test]
    fn the_default_is_iot_cores_figure() {
        assert_eq!(IOT_PUBLISH_PER_SECOND, 100);
    }

    #[test]
    fn a_burst_gets_the_bucket_and_no_more_and_only_the_first_refusal_is_marked() {
        let mut l = Limiter::new(100);
        assert_eq!(allowed(&mut l, 1, 1, T0, 100), 100);
        assert_eq!(l.check(1, 1, T0), Verdict::Throttled { first: true });
        assert_eq!(l.check(1, 1, T0), Verdict::Throttled { first: false });
        assert_eq!(allowed(&mut l, 1, 1, T0, 1000), 0);
    }

    #[test]
    fn the_bucket_refills_at_the_rate_and_never_beyond_its_size() {
        let mut l = Limiter::new(100);
        assert_eq!(allowed(&mut l, 1, 1, T0, 100), 100);
        // 10 ms = one publish at 100/s.
        assert_eq!(allowed(&mut l, 1, 1, T0 + 10, 5), 1);
        assert_eq!(allowed(&mut l, 1, 1, T0 + 15, 5), 0);
        assert_eq!(allowed(&mut l, 1, 1, T0 + 20, 5), 1);
        // After a quiet minute, still only a full bucket.
        assert_eq!(allowed(&mut l, 1, 1, T0 + 60_000, 500), 100);
        // After a refusal, the next allowed publish resets the "first" mark.
        assert_eq!(
            l.check(1, 1, T0 + 60_000),
            Verdict::Throttled { first: false }
        );
        assert_eq!(allowed(&mut l, 1, 1, T0 + 60_010, 1), 1);
        assert_eq!(
            l.check(1, 1, T0 + 60_010),
            Verdict::Throttled { first: true }
        );
    }

    #[test]
    fn any_one_second_of_a_steady_flood_holds_at_most_twice_the_rate() {
        let mut l = Limiter::new(10);
        // One publish per ms for 5 s.
        let times: Vec<u64> = (0..5000)
            .filter(|ms| l.check(1, 1, T0 + ms) == Verdict::Allow)
            .collect();
        for start in 0..4000 {
            let in_window = times
                .iter()
                .filter(|t| (start..start + 1000).contains(*t))
                .count();
            assert!(in_window <= 20, "{in_window} allowed in [{start}, +1 s)");
        }
        // Sustained: the burst plus 10 per second.
        assert!((58..=60).contains(&times.len()), "{}", times.len());
    }

    #[test]
    fn connections_are_limited_separately_and_a_new_sign_in_starts_full() {
        let mut l = Limiter::new(3);
        assert_eq!(allowed(&mut l, 1, 1, T0, 5), 3);
        assert_eq!(allowed(&mut l, 2, 2, T0, 5), 3);
        // Address 1 reused by a new accepted CONNECT (sign-in 3).
        assert_eq!(allowed(&mut l, 1, 3, T0, 5), 3);
    }

    #[test]
    fn a_clock_that_goes_back_neither_refills_nor_panics() {
        let mut l = Limiter::new(2);
        assert_eq!(allowed(&mut l, 1, 1, T0, 2), 2);
        assert_eq!(allowed(&mut l, 1, 1, T0 - 10_000, 2), 0);
        assert_eq!(allowed(&mut l, 1, 1, T0 + 500, 2), 1);
    }

    #[test]
    fn zero_turns_the_limit_off() {
        let mut l = Limiter::new(0);
        assert_eq!(allowed(&mut l, 1, 1, T0, 10_000), 10_000);
        assert!(l.is_empty());
    }

    #[test]
    fn retain_drops_the_buckets_of_gone_connections() {
        let mut l = Limiter::new(5);
        l.check(1, 1, T0);
        l.check(2, 2, T0);
        l.retain(|conn, seq| conn == 2 && seq == 2);
        assert_eq!(l.len(), 1);
        assert_eq!(
            allowed(&mut l, 1, 1, T0, 10),
            5,
            "a dropped bucket starts full"
        );
    }
}
