//! The inbox sidebar's unread counts, cached per viewer in this process.
//!
//! Counting means scanning every open conversation an agent may see, and the list asks for
//! the counts on every load: with 10,000 open conversations per organisation that scan was
//! most of the list's cost. The cache keeps each viewer's counts until something could have
//! changed them:
//!
//! - **Any other write in the organisation** (a message arrived, an assignment, a status, a
//!   team or role change) drops the organisation's counts when it commits. A count computed
//!   by a read that began before that commit is not stored (its ticket is stale).
//! - **The viewer's own reads** (opening a conversation) adjust the cached counts instead of
//!   dropping them: the batch that stores read marks raises a per-user sequence number in
//!   the database, and each count is read in the same statement as that number, so a cached
//!   count knows exactly which of the user's read marks it already reflects.
//! - **Another process's writes** (several servers on one PostgreSQL) drop the counts when
//!   their events are relayed (`Store::relay_events`), and all counts are dropped when that
//!   link is lost. Writes that announce no event (a team or role change made by another
//!   process, a command-line tool writing to the SQLite file) are seen when the counts
//!   age out: each is trusted for [`FRESH_FOR`] plus up to [`FRESH_JITTER`].
//!
//! The age limit was 1 s. Under `bench inbox` (20 agents, 10,000 conversations per
//! organisation) recomputing every agent's counts every second was the largest cost left
//! in the tail: each count scans the organisation's open conversations. Ages are spread
//! by the jitter so the viewers' counts do not expire, and get recomputed, all at once.

use crate::inbox::UnreadCounts;
use frontdesk_domain::{OrgId, UserId};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a cached count is trusted without a local or relayed change (bounds the
/// staleness of changes that announce no event, across processes).
pub const FRESH_FOR: Duration = Duration::from_secs(10);
/// Up to this much more, different for each count stored.
pub const FRESH_JITTER: Duration = Duration::from_secs(5);
/// Organisations with cached counts before the cache starts over.
const MAX_ORGS: usize = 4096;
/// Viewers per organisation with cached counts before that organisation starts over.
const MAX_VIEWERS: usize = 1024;

/// Whose counts: the user, and whether they see every conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct ViewerKey {
    pub user: Option<UserId>,
    pub read_all: bool,
}

/// The organisation's cache generation when a read transaction began.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ticket(u64);

struct Entry {
    /// The user's read-mark sequence number the count reflects.
    read_seq: i64,
    /// When it ages out.
    until: Instant,
    counts: UnreadCounts,
}

struct OrgCounts {
    generation: u64,
    viewers: HashMap<ViewerKey, Entry>,
}

#[derive(Default)]
struct Inner {
    next_generation: u64,
    orgs: HashMap<OrgId, OrgCounts>,
}

impl Inner {
    fn org(&mut self, org: OrgId) -> &mut OrgCounts {
        if self.orgs.len() >= MAX_ORGS && !self.orgs.contains_key(&org) {
            self.orgs.clear();
        }
        let next = &mut self.next_generation;
        self.orgs.entry(org).or_insert_with(|| {
            *next += 1;
            OrgCounts {
                generation: *next,
                viewers: HashMap::new(),
            }
        })
    }
}

/// What one stored read mark took off a viewer's counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ReadDelta {
    pub mine: i64,
    pub unassigned: i64,
    pub all: i64,
}

/// A different share of [`FRESH_JITTER`] each call (the clock's nanoseconds suffice).
fn jitter() -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    FRESH_JITTER.mul_f64(f64::from(nanos) / 1e9)
}

/// See the module documentation.
#[derive(Default)]
pub struct UnreadCache {
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for UnreadCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnreadCache").finish_non_exhaustive()
    }
}

impl UnreadCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Taken when a read transaction begins, before it reads anything.
    pub(crate) fn ticket(&self, org: OrgId) -> Ticket {
        Ticket(self.lock().org(org).generation)
    }

    /// The viewer's counts, if cached, fresh and not dropped since.
    pub(crate) fn get(&self, org: OrgId, key: ViewerKey) -> Option<UnreadCounts> {
        let inner = self.lock();
        let e = inner.orgs.get(&org)?.viewers.get(&key)?;
        (Instant::now() < e.until).then_some(e.counts)
    }

    /// Keeps counts computed in a transaction that took `ticket`, unless the organisation's
    /// counts were dropped since (the counts may then predate that change).
    pub(crate) fn put(
        &self,
        org: OrgId,
        ticket: Ticket,
        key: ViewerKey,
        read_seq: i64,
        counts: UnreadCounts,
    ) {
        let mut inner = self.lock();
        let o = inner.org(org);
        if o.generation != ticket.0 {
            return;
        }
        if o.viewers.len() >= MAX_VIEWERS && !o.viewers.contains_key(&key) {
            o.viewers.clear();
        }
        o.viewers.insert(
            key,
            Entry {
                read_seq,
                until: Instant::now() + FRESH_FOR + jitter(),
                counts,
            },
        );
    }

    /// A write in the organisation committed: its counts may all be wrong now.
    pub(crate) fn changed(&self, org: OrgId) {
        let mut inner = self.lock();
        inner.next_generation += 1;
        let generation = inner.next_generation;
        if let Some(o) = inner.orgs.get_mut(&org) {
            o.generation = generation;
            o.viewers.clear();
        }
    }

    /// Changes may have been missed (the link to other processes was lost): drop
    /// everything.
    pub(crate) fn forget_all(&self) {
        let mut inner = self.lock();
        inner.next_generation += 1;
        let generation = inner.next_generation;
        for o in inner.orgs.values_mut() {
            o.generation = generation;
            o.viewers.clear();
        }
    }

    /// The user's read marks numbered `read_seq` committed, taking `delta` off their counts:
    /// applied to each cached count that does not reflect them yet.
    pub(crate) fn read_marked(&self, org: OrgId, user: UserId, read_seq: i64, delta: ReadDelta) {
        let mut inner = self.lock();
        let Some(o) = inner.orgs.get_mut(&org) else {
            return;
        };
        for (key, e) in o.viewers.iter_mut() {
            if key.user == Some(user) && e.read_seq < read_seq {
                e.read_seq = read_seq;
                e.counts.mine = (e.counts.mine - delta.mine).max(0);
                e.counts.unassigned = (e.counts.unassigned - delta.unassigned).max(0);
                e.counts.all = (e.counts.all - delta.all).max(0);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(all: i64) -> UnreadCounts {
        UnreadCounts {
            mine: 0,
            unassigned: all,
            all,
        }
    }

    #[test]
    fn a_count_computed_before_a_change_is_not_kept() {
        let cache = UnreadCache::default();
        let (org, user) = (OrgId::new(), UserId::new());
        let key = ViewerKey {
            user: Some(user),
            read_all: true,
        };
        let before = cache.ticket(org);
        cache.changed(org);
        cache.put(org, before, key, 0, counts(5));
        assert_eq!(cache.get(org, key), None);
        let after = cache.ticket(org);
        cache.put(org, after, key, 0, counts(4));
        assert_eq!(cache.get(org, key), Some(counts(4)));
        cache.changed(org);
        assert_eq!(cache.get(org, key), None, "a change drops kept counts");
    }

    #[test]
    fn own_reads_adjust_only_counts_that_do_not_reflect_them() {
        let cache = UnreadCache::default();
        let (org, user, other) = (OrgId::new(), UserId::new(), UserId::new());
        let key = ViewerKey {
            user: Some(user),
            read_all: true,
        };
        let other_key = ViewerKey {
            user: Some(other),
            read_all: true,
        };
        let t = cache.ticket(org);
        cache.put(org, t, key, 3, counts(5));
        cache.put(org, t, other_key, 9, counts(5));
        let delta = ReadDelta {
            mine: 0,
            unassigned: 1,
            all: 1,
        };
        cache.read_marked(org, user, 4, delta);
        assert_eq!(cache.get(org, key), Some(counts(4)));
        // The same batch reported twice, or one the count already reflects: no change.
        cache.read_marked(org, user, 4, delta);
        assert_eq!(cache.get(org, key), Some(counts(4)));
        assert_eq!(cache.get(org, other_key), Some(counts(5)), "not their read");
    }

    #[test]
    fn a_recreated_organisation_never_reuses_a_generation() {
        let cache = UnreadCache::default();
        let org = OrgId::new();
        let old = cache.ticket(org);
        {
            let mut inner = cache.lock();
            inner.orgs.clear();
        }
        let key = ViewerKey {
            user: None,
            read_all: true,
        };
        cache.put(org, old, key, 0, counts(1));
        assert_eq!(cache.get(org, key), None);
    }
}
