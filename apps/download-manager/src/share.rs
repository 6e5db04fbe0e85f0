//! Each client's share of the cache. A visitor mints users at will (a
//! request without a cookie is a new user), so one address could start
//! and leave unfetched as many reports as the cache holds, and the next
//! visitor's download would be given up as "cache full". Two rules keep
//! the cache for everyone:
//!
//! - **A share per client address**: at most `share` downloads, running or
//!   ready, count against one address. Past it, the address's oldest ready
//!   report is cleared to make room; if all of them still run, the start
//!   is refused (429).
//! - **The heaviest pays first**: when the cache has no room for another
//!   file, ready reports are cleared, each time the oldest one of the
//!   client holding the most, until there is room.
//!
//! Running downloads are never cleared. The decisions here are pure; the
//! app reads the reports from the cache and clears what they pick.

/// One download held in the cache, as the share counts it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Held {
    /// The address that started it; `None` for a record without one.
    pub client: Option<String>,
    /// Whether its file is ready (and so may be cleared).
    pub ready: bool,
    /// When it was started, ms.
    pub created_ms: u64,
}

/// Why a start cannot have room.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct ShareTaken;

/// The report to clear before `client` starts another download: `None`
/// while it holds fewer than `share`, else its oldest ready one; every one
/// of its share still running is [`ShareTaken`].
pub(crate) fn over_share(
    held: &[Held],
    client: &str,
    share: usize,
) -> Result<Option<usize>, ShareTaken> {
    let mine = || {
        held.iter()
            .enumerate()
            .filter(|(_, h)| h.client.as_deref() == Some(client))
    };
    if mine().count() < share {
        return Ok(None);
    }
    mine()
        .filter(|(_, h)| h.ready)
        .min_by_key(|(_, h)| h.created_ms)
        .map(|(i, _)| Some(i))
        .ok_or(ShareTaken)
}

/// The report to clear when the cache has no room: the oldest ready one of
/// the client holding the most ready ones (ties go to the client whose
/// oldest is older); `None` when none is ready.
pub(crate) fn heaviest_oldest(held: &[Held]) -> Option<usize> {
    let mut by_client: std::collections::HashMap<Option<&str>, (usize, usize)> =
        std::collections::HashMap::new();
    for (i, h) in held.iter().enumerate().filter(|(_, h)| h.ready) {
        let entry = by_client.entry(h.client.as_deref()).or_insert((0, i));
        entry.0 += 1;
        if h.created_ms < held[entry.1].created_ms {
            entry.1 = i;
        }
    }
    by_client
        .into_values()
        .max_by_key(|&(count, oldest)| (count, std::cmp::Reverse(held[oldest].created_ms)))
        .map(|(_, oldest)| oldest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn held(client: &str, ready: bool, created_ms: u64) -> Held {
        Held {
            client: Some(client.into()),
            ready,
            created_ms,
        }
    }

    #[test]
    fn a_client_past_its_share_gives_up_its_own_oldest_ready_report() {
        let h = [
            held("198.18.0.1", true, 30),
            held("198.18.0.1", true, 10),
            held("198.18.0.1", false, 5),
            held("198.18.0.2", true, 1),
        ];
        assert_eq!(over_share(&h, "198.18.0.1", 4), Ok(None));
        assert_eq!(over_share(&h, "198.18.0.1", 3), Ok(Some(1)));
        assert_eq!(over_share(&h, "198.18.0.2", 1), Ok(Some(3)));
        assert_eq!(over_share(&h, "198.18.0.3", 1), Ok(None));
        let running = [held("198.18.0.1", false, 5)];
        assert_eq!(over_share(&running, "198.18.0.1", 1), Err(ShareTaken));
    }

    #[test]
    fn room_is_made_from_the_heaviest_clients_oldest_report() {
        let h = [
            held("198.18.0.2", true, 1),
            held("198.18.0.1", true, 30),
            held("198.18.0.1", true, 10),
            held("198.18.0.1", false, 5),
        ];
        assert_eq!(heaviest_oldest(&h), Some(2));
        let tie = [held("198.18.0.2", true, 7), held("198.18.0.1", true, 3)];
        assert_eq!(heaviest_oldest(&tie), Some(1));
        assert_eq!(heaviest_oldest(&[held("198.18.0.9", false, 1)]), None);
    }

    proptest! {
        /// Whatever is held, clearing what the share picks never touches a
        /// running download, and a client past its share only loses its
        /// own reports.
        #[test]
        fn only_ready_reports_are_cleared(
            rows in proptest::collection::vec((0u8..4, any::<bool>(), 0u64..100), 0..40),
            share in 1usize..6,
        ) {
            let h: Vec<Held> = rows
                .iter()
                .map(|(c, ready, t)| held(&format!("198.18.0.{c}"), *ready, *t))
                .collect();
            if let Ok(Some(i)) = over_share(&h, "198.18.0.1", share) {
                prop_assert!(h[i].ready);
                prop_assert_eq!(h[i].client.as_deref(), Some("198.18.0.1"));
            }
            if let Some(i) = heaviest_oldest(&h) {
                prop_assert!(h[i].ready);
                let count = |c: &Option<String>| h.iter().filter(|x| x.ready && &x.client == c).count();
                prop_assert!(h.iter().all(|x| count(&x.client) <= count(&h[i].client)));
            } else {
                prop_assert!(h.iter().all(|x| !x.ready));
            }
        }
    }
}
