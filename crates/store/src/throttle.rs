//! Failed sign-in counting per account and per client address, shared by every server
//! process through the database. Keys are stored hashed.

use crate::tenant::with_conn;
use crate::{Store, StoreError};
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};

/// What is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThrottleScope {
    /// One account (by email), whoever tries it.
    Account,
    /// One client address, whichever accounts it tries.
    Ip,
}

impl ThrottleScope {
    fn as_str(self) -> &'static str {
        match self {
            ThrottleScope::Account => "account",
            ThrottleScope::Ip => "ip",
        }
    }
}

/// `max_failures` within `window` locks the key for `lockout`.
#[derive(Debug, Clone, Copy)]
pub struct ThrottlePolicy {
    pub max_failures: i32,
    pub window: Duration,
    pub lockout: Duration,
}

fn hashed(scope: ThrottleScope, key: &str) -> String {
    let mut h = Sha256::new();
    h.update(scope.as_str());
    h.update(b"|");
    h.update(key.as_bytes());
    hex::encode(h.finalize())
}

impl Store {
    /// Until when the key is locked out, if it is now.
    pub async fn throttle_locked_until(
        &self,
        scope: ThrottleScope,
        key: &str,
        now: OffsetDateTime,
    ) -> Result<Option<OffsetDateTime>, StoreError> {
        let mut g = self.begin_global(false).await?;
        let until: Option<Option<OffsetDateTime>> = with_conn!(g.tx, c => {
            sqlx::query_scalar("SELECT locked_until FROM auth_throttle WHERE scope = $1 AND key = $2")
                .bind(scope.as_str())
                .bind(hashed(scope, key))
                .fetch_optional(c)
                .await?
        });
        g.commit().await?;
        Ok(until.flatten().filter(|u| *u > now))
    }

    /// Counts a failure; returns the lockout end if this failure starts (or extends) one.
    pub async fn throttle_failure(
        &self,
        scope: ThrottleScope,
        key: &str,
        policy: ThrottlePolicy,
        now: OffsetDateTime,
    ) -> Result<Option<OffsetDateTime>, StoreError> {
        let k = hashed(scope, key);
        let mut g = self.begin_global(true).await?;
        let row: Option<(OffsetDateTime, i32)> = with_conn!(g.tx, c => {
            sqlx::query_as("SELECT window_start, failures FROM auth_throttle WHERE scope = $1 AND key = $2")
                .bind(scope.as_str())
                .bind(&k)
                .fetch_optional(c)
                .await?
        });
        let (start, failures) = match row {
            Some((start, n)) if start + policy.window > now => (start, n + 1),
            _ => (now, 1),
        };
        let locked_until = (failures >= policy.max_failures).then_some(now + policy.lockout);
        with_conn!(g.tx, c => {
            sqlx::query("INSERT INTO auth_throttle (scope, key, window_start, failures, locked_until) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (scope, key) DO UPDATE SET window_start = excluded.window_start, failures = excluded.failures, locked_until = coalesce(excluded.locked_until, auth_throttle.locked_until)")
                .bind(scope.as_str())
                .bind(&k)
                .bind(start)
                .bind(failures)
                .bind(locked_until)
                .execute(c)
                .await?;
        });
        g.commit().await?;
        Ok(locked_until)
    }

    /// Forgets the failures of a key (after a successful sign-in).
    pub async fn throttle_reset(&self, scope: ThrottleScope, key: &str) -> Result<(), StoreError> {
        let mut g = self.begin_global(true).await?;
        with_conn!(g.tx, c => {
            sqlx::query("DELETE FROM auth_throttle WHERE scope = $1 AND key = $2")
                .bind(scope.as_str())
                .bind(hashed(scope, key))
                .execute(c)
                .await?;
        });
        g.commit().await
    }
}
