//! What one roll-up row sums: calls, errors, rate-limit hits, durations and a latency
//! histogram.

use super::Call;

/// Upper bounds (ms) of the latency histogram's buckets; one more bucket holds slower calls.
pub const LATENCY_BOUNDS_MS: [i32; 10] = [10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000];
pub const BUCKETS: usize = LATENCY_BOUNDS_MS.len() + 1;

/// Sums over a set of calls: what one roll-up row holds.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Tally {
    pub calls: i64,
    pub errors: i64,
    pub rate_limited: i64,
    pub duration_ms_sum: i64,
    pub histogram: [i64; BUCKETS],
}

impl Tally {
    pub fn add(&mut self, call: &Call) {
        self.calls += 1;
        self.errors += i64::from(call.is_error());
        self.rate_limited += i64::from(call.rate_limited);
        self.duration_ms_sum += i64::from(call.duration_ms.max(0));
        let bucket = LATENCY_BOUNDS_MS
            .iter()
            .position(|bound| call.duration_ms <= *bound)
            .unwrap_or(BUCKETS - 1);
        self.histogram[bucket] += 1;
    }

    /// The upper bound of the bucket holding the q-th quantile; None when there were no
    /// calls or when it lies in the open-ended slowest bucket.
    pub fn percentile(&self, q: f64) -> Option<i32> {
        let rank = ((self.calls as f64) * q).ceil().max(1.0) as i64;
        let mut seen = 0;
        for (bucket, count) in self.histogram.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return LATENCY_BOUNDS_MS.get(bucket).copied();
            }
        }
        None
    }
}
