//! A short-lived cache of webhook targets: looking a key up opens the channel's secrets
//! (a database round trip and AES), which a busy channel would otherwise pay per request.
//!
//! Entries live [`TTL`]; the channel admin code calls `AppState::forget_webhook_targets`
//! when a channel changes or goes, so a rotated secret or a deleted channel takes effect at
//! once on this server. Keys are held as their SHA-256, never as the key itself. Unknown
//! keys are remembered too (so probing costs no database work), but in a map of bounded
//! size that is never allowed to push out a real channel.

use frontdesk_store::WebhookTarget;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a looked-up target is trusted.
pub const TTL: Duration = Duration::from_secs(10);
/// Most channels remembered (more than one server realistically receives for).
const MAX_KNOWN: usize = 10_000;
/// Most unknown keys remembered; beyond it unknown keys are simply not cached.
const MAX_UNKNOWN: usize = 1_000;

type KeyHash = [u8; 32];

#[derive(Default)]
struct Maps {
    known: HashMap<KeyHash, (WebhookTarget, Instant)>,
    unknown: HashMap<KeyHash, Instant>,
    /// Bumped by `clear`: a lookup that started before it must not store its result.
    generation: u64,
}

/// What the cache knows of a key.
pub(crate) enum Cached {
    Known(WebhookTarget),
    Unknown,
    /// Not cached (or expired): ask the store, then `put` with this generation.
    Miss(u64),
}

#[derive(Default)]
pub(crate) struct TargetCache {
    maps: Mutex<Maps>,
}

fn hash(key: &str) -> KeyHash {
    Sha256::digest(key.as_bytes()).into()
}

impl TargetCache {
    pub(crate) fn get(&self, key: &str) -> Cached {
        let h = hash(key);
        let now = Instant::now();
        let maps = self.maps.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((t, at)) = maps.known.get(&h)
            && now.duration_since(*at) < TTL
        {
            return Cached::Known(t.clone());
        }
        if let Some(at) = maps.unknown.get(&h)
            && now.duration_since(*at) < TTL
        {
            return Cached::Unknown;
        }
        Cached::Miss(maps.generation)
    }

    /// Remembers a lookup's result, unless the cache was cleared since it started.
    pub(crate) fn put(&self, key: &str, generation: u64, target: Option<&WebhookTarget>) {
        let h = hash(key);
        let now = Instant::now();
        let mut maps = self.maps.lock().unwrap_or_else(|p| p.into_inner());
        if maps.generation != generation {
            return;
        }
        match target {
            Some(t) => {
                maps.unknown.remove(&h);
                if maps.known.len() >= MAX_KNOWN && !maps.known.contains_key(&h) {
                    maps.known
                        .retain(|_, (_, at)| now.duration_since(*at) < TTL);
                    if maps.known.len() >= MAX_KNOWN {
                        maps.known.clear();
                    }
                }
                maps.known.insert(h, (t.clone(), now));
            }
            None => {
                if maps.unknown.len() >= MAX_UNKNOWN && !maps.unknown.contains_key(&h) {
                    maps.unknown.retain(|_, at| now.duration_since(*at) < TTL);
                    if maps.unknown.len() >= MAX_UNKNOWN {
                        return;
                    }
                }
                maps.known.remove(&h);
                maps.unknown.insert(h, now);
            }
        }
    }

    /// Forgets everything (a channel changed or was deleted).
    pub(crate) fn clear(&self) {
        let mut maps = self.maps.lock().unwrap_or_else(|p| p.into_inner());
        maps.known.clear();
        maps.unknown.clear();
        maps.generation += 1;
    }

    #[cfg(test)]
    fn sizes(&self) -> (usize, usize) {
        let maps = self.maps.lock().unwrap_or_else(|p| p.into_inner());
        (maps.known.len(), maps.unknown.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_are_capped_and_a_clear_discards_lookups_in_flight() {
        let cache = TargetCache::default();
        for i in 0..(MAX_UNKNOWN + 500) {
            let Cached::Miss(g) = cache.get(&format!("fdw_probe{i}")) else {
                panic!("fresh key cached");
            };
            cache.put(&format!("fdw_probe{i}"), g, None);
        }
        assert_eq!(cache.sizes(), (0, MAX_UNKNOWN));
        assert!(matches!(cache.get("fdw_probe1"), Cached::Unknown));
        assert!(matches!(
            cache.get(&format!("fdw_probe{}", MAX_UNKNOWN + 1)),
            Cached::Miss(_)
        ));

        let Cached::Miss(g) = cache.get("fdw_other") else {
            panic!()
        };
        cache.clear();
        assert_eq!(cache.sizes(), (0, 0));
        // A lookup that began before the clear must not bring back what it read.
        cache.put("fdw_other", g, None);
        assert!(matches!(cache.get("fdw_other"), Cached::Miss(_)));
    }
}
