//! Per-key rate limits over three windows (minute, hour, day), with governor's GCRA limiters,
//! and the headers that tell the caller where it stands: `X-RateLimit-*` as the seed shows them,
//! and the IETF draft's `RateLimit-Policy` / `RateLimit` beside them.
//!
//! State is in this process: with several edges behind a load balancer each enforces the limit
//! on its own share (see docs/ARCHITECTURE.md).

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use http::{HeaderName, HeaderValue};
use schemas::integrations::RateLimits;
use serde_json::json;
use uuid::Uuid;

use crate::edge::envelope::ApiError;

type Limiter = RateLimiter<NotKeyed, InMemoryState, DefaultClock, StateInformationMiddleware>;

/// A named window and its length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Window {
    name: &'static str,
    length: Duration,
}

const WINDOWS: [Window; 3] = [
    Window { name: "minute", length: Duration::from_secs(60) },
    Window { name: "hour", length: Duration::from_secs(3_600) },
    Window { name: "day", length: Duration::from_secs(86_400) },
];

fn limit_of(limits: &RateLimits, window: usize) -> u32 {
    [limits.per_minute, limits.per_hour, limits.per_day][window]
}

/// One key's three limiters, built for the limits the key had when they were made.
struct KeyLimiters {
    limits: RateLimits,
    windows: [Limiter; 3],
    /// `RateLimit-Policy`, which only the limits decide.
    policy: Option<HeaderValue>,
}

impl KeyLimiters {
    fn new(limits: RateLimits) -> Self {
        let windows = std::array::from_fn(|i| {
            let limit = NonZeroU32::new(limit_of(&limits, i)).unwrap_or(NonZeroU32::MIN);
            // One request replenishes every window/limit; a full window's worth may come at once.
            let quota = Quota::with_period(WINDOWS[i].length / limit.get())
                .unwrap_or_else(|| Quota::per_second(NonZeroU32::MAX))
                .allow_burst(limit);
            RateLimiter::direct(quota).with_middleware::<StateInformationMiddleware>()
        });
        Self { limits, windows, policy: policy(&limits) }
    }
}

/// The `RateLimit-Policy` header of `limits`.
fn policy(limits: &RateLimits) -> Option<HeaderValue> {
    let text = WINDOWS
        .iter()
        .enumerate()
        .map(|(i, w)| format!("\"{}\";q={};w={}", w.name, limit_of(limits, i), w.length.as_secs()))
        .collect::<Vec<_>>()
        .join(", ");
    HeaderValue::from_str(&text).ok()
}

/// Where a key stands after a request was let through: the window closest to its limit.
#[derive(Clone, Debug)]
pub(crate) struct Standing {
    limits: RateLimits,
    policy: Option<HeaderValue>,
    window: usize,
    remaining: u32,
    /// Until the window is back to its full allowance.
    reset: Duration,
}

/// Every key's limiters.
#[derive(Default)]
pub(crate) struct RateLimiters {
    keys: Mutex<HashMap<Uuid, Arc<KeyLimiters>>>,
}

impl RateLimiters {
    fn limiters(&self, key: Uuid, limits: RateLimits) -> Arc<KeyLimiters> {
        let Ok(mut keys) = self.keys.lock() else {
            return Arc::new(KeyLimiters::new(limits));
        };
        match keys.get(&key) {
            Some(existing) if existing.limits == limits => Arc::clone(existing),
            // New key, or its limits changed: start it afresh with the new allowance.
            _ => {
                let fresh = Arc::new(KeyLimiters::new(limits));
                keys.insert(key, Arc::clone(&fresh));
                fresh
            }
        }
    }

    /// Counts one request of `key`; refuses it with 429 when a window is used up.
    pub fn check(&self, key: Uuid, limits: RateLimits) -> Result<Standing, ApiError> {
        let limiters = self.limiters(key, limits);
        let mut tightest: Option<Standing> = None;
        // Day first, then hour, then minute: a request refused by a long window does not use up
        // a short window's allowance. (A request refused by the minute window has already been
        // counted in the hour and day windows: that is the price of three independent limiters.)
        for window in (0..WINDOWS.len()).rev() {
            let limit = limit_of(&limits, window);
            match limiters.windows[window].check() {
                Ok(snapshot) => {
                    let remaining = snapshot.remaining_burst_capacity();
                    let per_request = WINDOWS[window].length / limit.max(1);
                    let standing = Standing {
                        limits,
                        policy: limiters.policy.clone(),
                        window,
                        remaining,
                        reset: per_request * limit.saturating_sub(remaining),
                    };
                    if tightest.as_ref().is_none_or(|t| remaining <= t.remaining) {
                        tightest = Some(standing);
                    }
                }
                Err(not_until) => {
                    // The limiter's own clock: making one calibrates it (cpuid), which cost a sixth of an
                    // authenticated GET's CPU when done per request.
                    let wait = not_until.wait_time_from(limiters.windows[window].clock().now());
                    return Err(exceeded(limits, limiters.policy.clone(), window, wait));
                }
            }
        }
        tightest.ok_or_else(ApiError::internal)
    }
}

/// Failed authentications per client address: past the allowance, a key the edge does not already
/// know gets 429 from that address without a database lookup, so guessing keys costs the guesser
/// time and the database nothing, while known keys behind the same address keep working.
pub(crate) struct FailedAuthentications {
    limiter: RateLimiter<IpAddr, DefaultKeyedStateStore<IpAddr>, DefaultClock>,
    allowance: u32,
    blocked: Mutex<HashMap<IpAddr, Instant>>,
}

impl FailedAuthentications {
    /// `per_minute` failures allowed per address (at least one).
    pub fn new(per_minute: u32) -> Self {
        let allowance = NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN);
        Self {
            limiter: RateLimiter::keyed(Quota::per_minute(allowance)),
            allowance: allowance.get(),
            blocked: Mutex::default(),
        }
    }

    /// Refuses an address that used up its allowance, until it has some again.
    pub fn check(&self, ip: IpAddr) -> Result<(), ApiError> {
        let now = Instant::now();
        let Ok(mut blocked) = self.blocked.lock() else { return Ok(()) };
        match blocked.get(&ip) {
            Some(until) if *until > now => Err(self.refusal(*until - now)),
            Some(_) => {
                blocked.remove(&ip);
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// Counts a failure of `ip`.
    pub fn failed(&self, ip: IpAddr) {
        if let Err(not_until) = self.limiter.check_key(&ip) {
            let wait = not_until.wait_time_from(self.limiter.clock().now());
            if let Ok(mut blocked) = self.blocked.lock() {
                blocked.insert(ip, Instant::now() + wait);
            }
        }
    }

    /// Forgets addresses that are back to a full allowance (called now and then).
    pub fn forget_idle(&self) {
        self.limiter.retain_recent();
        let now = Instant::now();
        if let Ok(mut blocked) = self.blocked.lock() {
            blocked.retain(|_, until| *until > now);
        }
    }

    fn refusal(&self, wait: Duration) -> ApiError {
        let retry_after = whole_seconds(wait).max(1);
        let message = format!("too many failed authentications from this address; retry after {retry_after} s");
        bus::metrics::rate_limited("failed_auth", "minute");
        rate_limited(message, self.allowance, "minute", retry_after)
    }
}

/// The seed's 429: `RATE_LIMIT_EXCEEDED` with limit, window and `retry_after`, and `Retry-After`.
fn rate_limited(message: String, limit: u32, window: &str, retry_after: u64) -> ApiError {
    ApiError {
        status: http::StatusCode::TOO_MANY_REQUESTS,
        code: "RATE_LIMIT_EXCEEDED",
        message,
        details: json!({ "limit": limit, "window": window, "retry_after": retry_after }),
        headers: vec![(http::header::RETRY_AFTER, HeaderValue::from(retry_after))],
    }
}

fn whole_seconds(duration: Duration) -> u64 {
    duration.as_secs() + u64::from(duration.subsec_nanos() > 0)
}

fn exceeded(limits: RateLimits, policy: Option<HeaderValue>, window: usize, wait: Duration) -> ApiError {
    let retry_after = whole_seconds(wait).max(1);
    let at = Utc::now() + chrono::Duration::seconds(i64::try_from(retry_after).unwrap_or(i64::MAX / 1000));
    let at = at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let name = WINDOWS[window].name;
    bus::metrics::rate_limited("caller", name);
    let message = format!("rate limit exceeded for the {name} window; retry after {at}");
    let mut error = rate_limited(message, limit_of(&limits, window), name, retry_after);
    error.headers.extend(headers(&Standing {
        limits,
        policy,
        window,
        remaining: 0,
        reset: Duration::from_secs(retry_after),
    }));
    error
}

/// The rate-limit headers for `standing`.
pub(crate) fn headers(standing: &Standing) -> Vec<(HeaderName, HeaderValue)> {
    let window = WINDOWS[standing.window];
    let limit = limit_of(&standing.limits, standing.window);
    let reset = whole_seconds(standing.reset);
    let reset_at = Utc::now() + chrono::Duration::seconds(i64::try_from(reset).unwrap_or(0));
    // `"minute";r=…;t=…`, written without the formatting machinery: every answer carries it.
    let (mut remaining, mut seconds) = (itoa::Buffer::new(), itoa::Buffer::new());
    let current =
        ["\"", window.name, "\";r=", remaining.format(standing.remaining), ";t=", seconds.format(reset)].concat();
    let mut out = Vec::with_capacity(5);
    out.push((HeaderName::from_static("x-ratelimit-limit"), HeaderValue::from(limit)));
    out.push((HeaderName::from_static("x-ratelimit-remaining"), HeaderValue::from(standing.remaining)));
    if let Ok(value) = HeaderValue::from_str(&crate::edge::envelope::to_the_second(reset_at)) {
        out.push((HeaderName::from_static("x-ratelimit-reset"), value));
    }
    if let Some(policy) = &standing.policy {
        out.push((HeaderName::from_static("ratelimit-policy"), policy.clone()));
    }
    if let Ok(value) = HeaderValue::from_str(&current) {
        out.push((HeaderName::from_static("ratelimit"), value));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(per_minute: u32, per_hour: u32, per_day: u32) -> RateLimits {
        RateLimits { per_minute, per_hour, per_day }
    }

    #[test]
    fn the_minute_window_refuses_the_request_after_its_limit() {
        let limiters = RateLimiters::default();
        let key = Uuid::now_v7();
        for used in 1..=5 {
            let standing = limiters.check(key, limits(5, 1_000, 10_000)).unwrap();
            assert_eq!((standing.window, standing.remaining), (0, 5 - used));
        }
        let refused = limiters.check(key, limits(5, 1_000, 10_000)).unwrap_err();
        assert_eq!(refused.status, http::StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(refused.details["window"], "minute");
        assert_eq!(refused.details["limit"], 5);
        let retry_after = refused.details["retry_after"].as_u64().unwrap();
        assert!((1..=12).contains(&retry_after), "{retry_after}");
    }

    #[test]
    fn the_tightest_window_is_reported_and_other_keys_are_untouched() {
        let limiters = RateLimiters::default();
        let key = Uuid::now_v7();
        let standing = limiters.check(key, limits(60, 3, 10_000)).unwrap();
        assert_eq!((standing.window, standing.remaining), (1, 2));
        limiters.check(key, limits(60, 3, 10_000)).unwrap();
        limiters.check(key, limits(60, 3, 10_000)).unwrap();
        assert_eq!(limiters.check(key, limits(60, 3, 10_000)).unwrap_err().details["window"], "hour");
        assert!(limiters.check(Uuid::now_v7(), limits(60, 3, 10_000)).is_ok());
        let headers = headers(&standing);
        let names: Vec<_> = headers.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            ["x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset", "ratelimit-policy", "ratelimit"]
        );
        assert_eq!(headers[3].1, "\"minute\";q=60;w=60, \"hour\";q=3;w=3600, \"day\";q=10000;w=86400");
        // Two of the hour's three left: one request's share of the hour (1,200 s) to be back at three.
        assert_eq!(headers[4].1, "\"hour\";r=2;t=1200");
    }

    #[test]
    fn an_address_that_keeps_failing_is_refused_and_others_are_not() {
        let guard = FailedAuthentications::new(3);
        let (guesser, other): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        for _ in 0..3 {
            assert!(guard.check(guesser).is_ok());
            guard.failed(guesser);
        }
        guard.failed(guesser);
        let refused = guard.check(guesser).unwrap_err();
        assert_eq!((refused.status.as_u16(), refused.code), (429, "RATE_LIMIT_EXCEEDED"));
        assert!(guard.check(other).is_ok());
    }
}
