//! Limits per client (by IP address): requests per second, download starts
//! per minute, and open progress streams. A visitor can mint new users at
//! will (a request without a cookie is a new user), so the limits go by
//! address, not by user.
//!
//! Token buckets refill continuously; the table of clients is bounded, and
//! idle clients (full buckets, no streams) are the first to go.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Clients remembered at most.
const MAX_CLIENTS: usize = 65_536;

/// The limits, per client address.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    /// Requests per second (bursts of twice as many).
    pub requests_per_sec: f64,
    /// Download starts per minute (bursts of as many).
    pub starts_per_min: f64,
    /// Progress streams open at once.
    pub streams: usize,
}

struct Client {
    requests: f64,
    starts: f64,
    streams: usize,
    seen: Instant,
}

/// Every client's buckets.
#[derive(Clone)]
pub(crate) struct ClientLimits {
    limits: Limits,
    clients: Arc<Mutex<HashMap<IpAddr, Client>>>,
}

/// An open progress stream's slot; freed when dropped.
pub(crate) struct StreamSlot {
    ip: IpAddr,
    clients: Arc<Mutex<HashMap<IpAddr, Client>>>,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = clients.get_mut(&self.ip) {
            c.streams = c.streams.saturating_sub(1);
        }
    }
}

impl ClientLimits {
    /// Buckets for `limits`.
    pub(crate) fn new(limits: Limits) -> Self {
        Self {
            limits,
            clients: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Runs `f` on `ip`'s client, refilled to `now`.
    fn with<T>(&self, ip: IpAddr, now: Instant, f: impl FnOnce(&mut Client, &Limits) -> T) -> T {
        let l = self.limits;
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if clients.len() >= MAX_CLIENTS && !clients.contains_key(&ip) {
            let idle = |c: &Client| c.streams == 0 && now.duration_since(c.seen).as_secs() > 60;
            clients.retain(|_, c| !idle(c));
            if clients.len() >= MAX_CLIENTS {
                // Everyone is busy: the oldest goes.
                if let Some(oldest) = clients
                    .iter()
                    .min_by_key(|(_, c)| c.seen)
                    .map(|(ip, _)| *ip)
                {
                    clients.remove(&oldest);
                }
            }
        }
        let c = clients.entry(ip).or_insert(Client {
            requests: 2.0 * l.requests_per_sec,
            starts: l.starts_per_min,
            streams: 0,
            seen: now,
        });
        let dt = now.duration_since(c.seen).as_secs_f64();
        c.requests = (c.requests + dt * l.requests_per_sec).min(2.0 * l.requests_per_sec);
        c.starts = (c.starts + dt * l.starts_per_min / 60.0).min(l.starts_per_min);
        c.seen = now;
        f(c, &l)
    }

    /// Whether `ip` may make a request now.
    pub(crate) fn request(&self, ip: IpAddr) -> bool {
        self.request_at(ip, Instant::now())
    }

    fn request_at(&self, ip: IpAddr, now: Instant) -> bool {
        self.with(ip, now, |c, _| take(&mut c.requests))
    }

    /// Whether `ip` may start a download now.
    pub(crate) fn start(&self, ip: IpAddr) -> bool {
        self.with(ip, Instant::now(), |c, _| take(&mut c.starts))
    }

    /// A stream slot for `ip`, if it has one free.
    pub(crate) fn stream(&self, ip: IpAddr) -> Option<StreamSlot> {
        let ok = self.with(ip, Instant::now(), |c, l| {
            let free = c.streams < l.streams;
            if free {
                c.streams += 1;
            }
            free
        });
        ok.then(|| StreamSlot {
            ip,
            clients: self.clients.clone(),
        })
    }
}

fn take(bucket: &mut f64) -> bool {
    if *bucket >= 1.0 {
        *bucket -= 1.0;
        true
    } else {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn limits() -> ClientLimits {
        ClientLimits::new(Limits {
            requests_per_sec: 10.0,
            starts_per_min: 3.0,
            streams: 2,
        })
    }

    #[test]
    fn buckets_run_out_per_client_and_refill() {
        let l = limits();
        let (a, b) = ("198.18.0.1".parse().unwrap(), "198.18.0.2".parse().unwrap());
        let t0 = Instant::now();
        let allowed = (0..100).filter(|_| l.request_at(a, t0)).count();
        assert_eq!(allowed, 20, "a burst of twice the rate");
        assert!(l.request_at(b, t0), "another client has its own bucket");
        assert!(l.request_at(a, t0 + Duration::from_millis(150)), "refilled");
        assert_eq!((0..10).filter(|_| l.start(a)).count(), 3);
    }

    #[test]
    fn stream_slots_are_capped_and_given_back() {
        let l = limits();
        let a: IpAddr = "198.18.0.1".parse().unwrap();
        let s1 = l.stream(a).unwrap();
        let _s2 = l.stream(a).unwrap();
        assert!(l.stream(a).is_none());
        drop(s1);
        assert!(l.stream(a).is_some());
    }
}
