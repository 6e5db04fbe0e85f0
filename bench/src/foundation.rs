//! The foundation table: local and remote messaging against raw ractor and
//! ractor_cluster (plain and over mutual TLS), and failure detection.

use std::time::Duration;

use crate::stats::{fmt_duration, fmt_rate, median, percentile};
use crate::{failover, local, remote};

/// Runs `drove-bench all` and prints its Markdown table.
pub(crate) fn table(
    rt: &tokio::runtime::Runtime,
    casts: u64,
    calls: usize,
    rounds: usize,
    trials: usize,
) -> anyhow::Result<()> {
    let (local_raw, local_drove) = rt.block_on(local::run(casts, rounds))?;
    let mut raw = Vec::new();
    let mut drove = Vec::new();
    let mut tls = Vec::new();
    for _ in 0..rounds {
        let (r, d) = remote::round(casts, calls)?;
        let t = remote::tls_round(casts, calls)?;
        eprintln!("remote round: raw {r:?} drove {d:?} drove over TLS {t:?}");
        raw.push(r);
        drove.push(d);
        tls.push(t);
    }
    let (killed, silent) = rt.block_on(failover::run(trials))?;
    let m = |v: &[remote::ClientResult], f: fn(&remote::ClientResult) -> f64| {
        median(&v.iter().map(f).collect::<Vec<_>>())
    };
    let (rc, dc) = (m(&raw, |r| r.casts_per_sec), m(&drove, |r| r.casts_per_sec));
    let (r50, d50) = (m(&raw, |r| r.call_p50_us), m(&drove, |r| r.call_p50_us));
    let (r99, d99) = (m(&raw, |r| r.call_p99_us), m(&drove, |r| r.call_p99_us));
    let (tc, t50) = (m(&tls, |r| r.casts_per_sec), m(&tls, |r| r.call_p50_us));
    let us = |v: f64| fmt_duration(Duration::from_secs_f64(v / 1e6));
    println!("| what | raw engine | drove | ratio (drove / raw) |");
    println!("| --- | --- | --- | --- |");
    println!(
        "| local casts (ractor) | {} | {} | {:.2}x |",
        fmt_rate(local_raw),
        fmt_rate(local_drove),
        local_drove / local_raw
    );
    println!(
        "| remote casts, 2 processes (ractor_cluster) | {} | {} | {:.2}x |",
        fmt_rate(rc),
        fmt_rate(dc),
        dc / rc
    );
    println!(
        "| remote call p50 (ractor_cluster) | {} | {} | {:.2}x |",
        us(r50),
        us(d50),
        d50 / r50
    );
    println!(
        "| remote call p99 (ractor_cluster) | {} | {} | {:.2}x |",
        us(r99),
        us(d99),
        d99 / r99
    );
    println!(
        "| remote casts over mutual TLS (vs plaintext ractor_cluster) | {} | {} | {:.2}x |",
        fmt_rate(rc),
        fmt_rate(tc),
        tc / rc
    );
    println!(
        "| remote call p50 over mutual TLS (vs plaintext ractor_cluster) | {} | {} | {:.2}x |",
        us(r50),
        us(t50),
        t50 / r50
    );
    println!(
        "| kill -9 noticed ({} trials) | - | p50 {} / p99 {} / max {} | - |",
        killed.len(),
        fmt_duration(percentile(&killed, 50.0)),
        fmt_duration(percentile(&killed, 99.0)),
        fmt_duration(percentile(&killed, 100.0))
    );
    println!(
        "| silent node (SIGSTOP) declared down ({} trials) | - | p50 {} / p99 {} / max {} | - |",
        silent.len(),
        fmt_duration(percentile(&silent, 50.0)),
        fmt_duration(percentile(&silent, 99.0)),
        fmt_duration(percentile(&silent, 100.0))
    );
    Ok(())
}
