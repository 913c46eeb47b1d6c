//! Request counts and latencies by route, method and status, in Prometheus text format.
//!
//! Kept in the application state rather than a process-global recorder, so each server
//! (and each test) has its own figures.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds of the latency histogram, in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

#[derive(Default)]
struct Series {
    count: u64,
    sum_seconds: f64,
    /// Cumulative counts per bucket of `BUCKETS`.
    buckets: [u64; BUCKETS.len()],
}

/// Metrics registry of one server.
#[derive(Default)]
pub struct Metrics {
    http: Mutex<BTreeMap<(String, &'static str, u16), Series>>,
    /// Webhook posts refused before anything was stored, by reason (a fixed set of names).
    webhook_rejected: Mutex<BTreeMap<&'static str, u64>>,
    /// Webhook bodies committed to the inbox: new rows and provider retries (duplicates).
    webhook_stored: Mutex<BTreeMap<&'static str, u64>>,
    /// Group commits of the webhook inbox and the bodies they carried.
    webhook_batches: Mutex<(u64, u64)>,
}

impl Metrics {
    /// Records one finished request. `route` is the matched route template, never the raw
    /// path, so the number of series stays bounded.
    pub fn record_request(&self, route: &str, method: &'static str, status: u16, took: Duration) {
        let secs = took.as_secs_f64();
        let mut map = self.http.lock().unwrap_or_else(|p| p.into_inner());
        let s = map.entry((route.to_owned(), method, status)).or_default();
        s.count += 1;
        s.sum_seconds += secs;
        for (i, le) in BUCKETS.iter().enumerate() {
            if secs <= *le {
                s.buckets[i] += 1;
            }
        }
    }

    /// Counts a webhook refused before storage. `reason` is one of a fixed set of names
    /// (`signature_missing`, `signature_mismatch`, …), so the series stay bounded.
    pub fn record_webhook_rejected(&self, reason: &'static str) {
        let mut map = self
            .webhook_rejected
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        *map.entry(reason).or_default() += 1;
    }

    /// Counts one group commit of `new` new rows and `duplicates` bodies already stored.
    pub fn record_webhook_commit(&self, new: u64, duplicates: u64) {
        {
            let mut map = self
                .webhook_stored
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            *map.entry("new").or_default() += new;
            *map.entry("duplicate").or_default() += duplicates;
        }
        let mut b = self
            .webhook_batches
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        b.0 += 1;
        b.1 += new + duplicates;
    }

    /// How many webhooks were refused for `reason` so far.
    pub fn webhook_rejected(&self, reason: &str) -> u64 {
        let map = self
            .webhook_rejected
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        map.get(reason).copied().unwrap_or(0)
    }

    /// The Prometheus text exposition of every series.
    pub fn render(&self) -> String {
        let mut out = String::new();
        self.render_webhooks(&mut out);
        let map = self.http.lock().unwrap_or_else(|p| p.into_inner());
        out.push_str("# HELP frontdesk_http_requests_total HTTP requests answered, by route, method and status.\n");
        out.push_str("# TYPE frontdesk_http_requests_total counter\n");
        for ((route, method, status), s) in map.iter() {
            let _ = writeln!(
                out,
                "frontdesk_http_requests_total{{route=\"{}\",method=\"{method}\",status=\"{status}\"}} {}",
                escape(route),
                s.count
            );
        }
        out.push_str(
            "# HELP frontdesk_http_request_duration_seconds Time from request to response head.\n",
        );
        out.push_str("# TYPE frontdesk_http_request_duration_seconds histogram\n");
        for ((route, method, status), s) in map.iter() {
            let labels = format!(
                "route=\"{}\",method=\"{method}\",status=\"{status}\"",
                escape(route)
            );
            for (i, le) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "frontdesk_http_request_duration_seconds_bucket{{{labels},le=\"{le}\"}} {}",
                    s.buckets[i]
                );
            }
            let _ = writeln!(
                out,
                "frontdesk_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                s.count
            );
            let _ = writeln!(
                out,
                "frontdesk_http_request_duration_seconds_sum{{{labels}}} {}",
                s.sum_seconds
            );
            let _ = writeln!(
                out,
                "frontdesk_http_request_duration_seconds_count{{{labels}}} {}",
                s.count
            );
        }
        out
    }
}

impl Metrics {
    fn render_webhooks(&self, out: &mut String) {
        out.push_str("# HELP frontdesk_webhook_rejected_total Webhook posts refused before anything was stored, by reason.\n");
        out.push_str("# TYPE frontdesk_webhook_rejected_total counter\n");
        for (reason, n) in self
            .webhook_rejected
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            let _ = writeln!(
                out,
                "frontdesk_webhook_rejected_total{{reason=\"{reason}\"}} {n}"
            );
        }
        out.push_str("# HELP frontdesk_webhook_stored_total Webhook bodies committed to the inbox (new) or found there already (duplicate).\n");
        out.push_str("# TYPE frontdesk_webhook_stored_total counter\n");
        for (outcome, n) in self
            .webhook_stored
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            let _ = writeln!(
                out,
                "frontdesk_webhook_stored_total{{outcome=\"{outcome}\"}} {n}"
            );
        }
        let (batches, bodies) = *self
            .webhook_batches
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        out.push_str(
            "# HELP frontdesk_webhook_commits_total Group commits of the webhook inbox.\n",
        );
        out.push_str("# TYPE frontdesk_webhook_commits_total counter\n");
        let _ = writeln!(out, "frontdesk_webhook_commits_total {batches}");
        out.push_str(
            "# HELP frontdesk_webhook_committed_bodies_total Bodies carried by those commits.\n",
        );
        out.push_str("# TYPE frontdesk_webhook_committed_bodies_total counter\n");
        let _ = writeln!(out, "frontdesk_webhook_committed_bodies_total {bodies}");
    }
}

/// Escapes a label value as the exposition format requires.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_is_cumulative_and_counts_match() {
        let m = Metrics::default();
        m.record_request("/healthz", "GET", 200, Duration::from_micros(500));
        m.record_request("/healthz", "GET", 200, Duration::from_millis(30));
        let text = m.render();
        assert!(text.contains(
            "frontdesk_http_requests_total{route=\"/healthz\",method=\"GET\",status=\"200\"} 2"
        ));
        assert!(text.contains("le=\"0.001\"} 1"));
        assert!(text.contains("le=\"0.05\"} 2"));
        assert!(text.contains("le=\"+Inf\"} 2"));
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
