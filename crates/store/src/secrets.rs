//! Values sealed with an organisation's data key, and the organisation's named secrets.
//!
//! Every organisation gets a data key when it is created; the key is stored wrapped by the
//! master key (see [`crate::vault`]). Any column that holds a secret stores the output of
//! [`TenantTx::seal`], bound to its table, column and row, and is read back with
//! [`TenantTx::open`]. No API returns a secret: callers get [`SecretMeta`].

use crate::audit::AuditRecord;
use crate::orgs::now_micros;
use crate::tenant::{TenantCtx, TenantTx, Tx, with_conn};
use crate::vault::Vault;
use crate::vault::{DataKey, FieldAad, VaultError, key_id_of, open_field, seal_field};
use crate::{Store, StoreError};
use frontdesk_domain::OrgId;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use time::OffsetDateTime;
use zeroize::Zeroizing;

/// Largest secret the vault stores (a provider token is a few hundred bytes).
pub const MAX_SECRET_BYTES: usize = 16 * 1024;

/// Where a sealed value lives; bound into the ciphertext, so a value copied to another
/// row, column, table or organisation fails to open.
#[derive(Debug, Clone, Copy)]
pub struct Place<'a> {
    pub table: &'static str,
    pub column: &'static str,
    pub row_id: &'a str,
}

/// The name of an organisation secret: 1–100 characters of `a-z 0-9 . _ -`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct SecretName(String);

/// A secret name that breaks the rules above.
#[derive(Debug, thiserror::Error)]
#[error("a secret name is 1–100 characters of a-z, 0-9, '.', '_' and '-'")]
pub struct SecretNameError;

impl SecretName {
    pub fn parse(s: &str) -> Result<Self, SecretNameError> {
        let ok = (1..=100).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(SecretNameError)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What may be shown about a stored secret: that it is set, and for long values the last
/// four characters (so an operator can tell which token is in place).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct SecretMeta {
    pub name: String,
    pub configured: bool,
    pub last4: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// Values shorter than this show no characters at all: four of a short password are too many.
const LAST4_MIN_LEN: usize = 16;

/// The last four characters of a long value, for display.
pub fn last4_of(value: &str) -> Option<String> {
    let n = value.chars().count();
    (n >= LAST4_MIN_LEN).then(|| value.chars().skip(n - 4).collect())
}

/// What a master-key re-wrap did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RewrapReport {
    /// The master key version every data key is now wrapped with.
    pub master_version: u32,
    pub organisations: u64,
    /// Data keys that were wrapped with an older version and now are not.
    pub rewrapped: u64,
}

type KeyRow = (i32, i32, Vec<u8>);

/// Whose data key seals a value: an organisation's, or the installation's own (for values
/// that belong to no organisation, such as users' TOTP secrets and the SMTP password).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyOwner {
    Org(OrgId),
    System,
}

impl KeyOwner {
    /// The id bound into key wrapping and sealing: the organisation's, or the nil id
    /// (never an organisation's: those are UUIDv7).
    fn binding(self) -> OrgId {
        match self {
            KeyOwner::Org(o) => o,
            KeyOwner::System => OrgId::from_uuid(uuid::Uuid::nil()),
        }
    }
}

fn aad<'a>(owner: KeyOwner, place: &Place<'a>) -> FieldAad<'a> {
    FieldAad {
        org: owner.binding(),
        table: place.table,
        column: place.column,
        row_id: place.row_id,
    }
}

/// Creates the owner's first data key (a concurrent creator may win; its key is then used).
async fn create_data_key(tx: &mut Tx, vault: &Vault, owner: KeyOwner) -> Result<u32, StoreError> {
    let key_id: u32 = 1;
    let dek = DataKey::random();
    let (master_version, wrapped) = vault.wrap(owner.binding(), key_id, &dek);
    let inserted = with_conn!(*tx, c => {
        match owner {
            KeyOwner::Org(org) => sqlx::query("INSERT INTO org_data_keys (org_id, key_id, master_version, wrapped, active, created_at) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING")
                .bind(org.as_uuid())
                .bind(to_i32(key_id))
                .bind(to_i32(master_version))
                .bind(&wrapped)
                .bind(true)
                .bind(now_micros())
                .execute(c)
                .await?,
            KeyOwner::System => sqlx::query("INSERT INTO system_data_keys (key_id, master_version, wrapped, active, created_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING")
                .bind(to_i32(key_id))
                .bind(to_i32(master_version))
                .bind(&wrapped)
                .bind(true)
                .bind(now_micros())
                .execute(c)
                .await?,
        }
        .rows_affected()
    });
    if inserted == 1 {
        vault.remember(owner.binding(), key_id, dek);
    }
    Ok(key_id)
}

/// The owner's data key with this id, from the cache or unwrapped from storage.
async fn data_key(
    tx: &mut Tx,
    vault: &Vault,
    owner: KeyOwner,
    key_id: u32,
) -> Result<Arc<DataKey>, StoreError> {
    let binding = owner.binding();
    if let Some(k) = vault.cached(binding, key_id) {
        return Ok(k);
    }
    let row: Option<KeyRow> = with_conn!(*tx, c => {
        match owner {
            KeyOwner::Org(org) => sqlx::query_as("SELECT key_id, master_version, wrapped FROM org_data_keys WHERE org_id = $1 AND key_id = $2")
                .bind(org.as_uuid())
                .bind(to_i32(key_id))
                .fetch_optional(c)
                .await?,
            KeyOwner::System => sqlx::query_as("SELECT key_id, master_version, wrapped FROM system_data_keys WHERE key_id = $1")
                .bind(to_i32(key_id))
                .fetch_optional(c)
                .await?,
        }
    });
    let (_, master_version, wrapped) = row.ok_or(StoreError::Vault(VaultError::Decrypt))?;
    let dek = vault.unwrap(binding, key_id, to_u32(master_version)?, &wrapped)?;
    Ok(vault.remember(binding, key_id, dek))
}

/// The key new values are sealed with; created if the owner has none yet.
async fn active_data_key(
    tx: &mut Tx,
    vault: &Vault,
    owner: KeyOwner,
) -> Result<(u32, Arc<DataKey>), StoreError> {
    let active: Option<i32> = with_conn!(*tx, c => {
        match owner {
            KeyOwner::Org(org) => sqlx::query_scalar("SELECT key_id FROM org_data_keys WHERE org_id = $1 AND active")
                .bind(org.as_uuid())
                .fetch_optional(c)
                .await?,
            KeyOwner::System => sqlx::query_scalar("SELECT key_id FROM system_data_keys WHERE active")
                .fetch_optional(c)
                .await?,
        }
    });
    let key_id = match active {
        Some(id) => to_u32(id)?,
        None => create_data_key(tx, vault, owner).await?,
    };
    Ok((key_id, data_key(tx, vault, owner, key_id).await?))
}

/// Seals `plaintext` for its place with the owner's active data key.
pub(crate) async fn seal_for(
    tx: &mut Tx,
    vault: &Vault,
    owner: KeyOwner,
    place: Place<'_>,
    plaintext: &[u8],
) -> Result<Vec<u8>, StoreError> {
    let (key_id, dek) = active_data_key(tx, vault, owner).await?;
    Ok(seal_field(&dek, key_id, &aad(owner, &place), plaintext))
}

/// Opens a value sealed for this place by this owner.
pub(crate) async fn open_for(
    tx: &mut Tx,
    vault: &Vault,
    owner: KeyOwner,
    place: Place<'_>,
    ciphertext: &[u8],
) -> Result<Zeroizing<Vec<u8>>, StoreError> {
    let key_id = key_id_of(ciphertext)?;
    let dek = data_key(tx, vault, owner, key_id).await?;
    Ok(open_field(&dek, &aad(owner, &place), ciphertext)?)
}

/// Re-wraps the owner's data keys that an older master key wraps. Returns how many, and
/// from which versions.
async fn rewrap_owner(
    tx: &mut Tx,
    vault: &Vault,
    owner: KeyOwner,
) -> Result<(u64, Vec<i32>), StoreError> {
    let primary = to_i32(vault.ring().primary_version());
    let pg = matches!(tx, Tx::Postgres(_));
    let rows: Vec<KeyRow> = with_conn!(*tx, c => {
        match (owner, pg) {
            (KeyOwner::Org(org), true) => sqlx::query_as("SELECT key_id, master_version, wrapped FROM org_data_keys WHERE org_id = $1 AND master_version <> $2 ORDER BY key_id FOR UPDATE")
                .bind(org.as_uuid()).bind(primary).fetch_all(c).await?,
            (KeyOwner::Org(org), false) => sqlx::query_as("SELECT key_id, master_version, wrapped FROM org_data_keys WHERE org_id = $1 AND master_version <> $2 ORDER BY key_id")
                .bind(org.as_uuid()).bind(primary).fetch_all(c).await?,
            (KeyOwner::System, true) => sqlx::query_as("SELECT key_id, master_version, wrapped FROM system_data_keys WHERE master_version <> $1 ORDER BY key_id FOR UPDATE")
                .bind(primary).fetch_all(c).await?,
            (KeyOwner::System, false) => sqlx::query_as("SELECT key_id, master_version, wrapped FROM system_data_keys WHERE master_version <> $1 ORDER BY key_id")
                .bind(primary).fetch_all(c).await?,
        }
    });
    let mut from: Vec<i32> = Vec::new();
    let binding = owner.binding();
    for (key_id, master_version, wrapped) in &rows {
        let key_id = to_u32(*key_id)?;
        let dek = vault.unwrap(binding, key_id, to_u32(*master_version)?, wrapped)?;
        let (version, rewrapped) = vault.wrap(binding, key_id, &dek);
        with_conn!(*tx, c => {
            match owner {
                KeyOwner::Org(org) => sqlx::query("UPDATE org_data_keys SET master_version = $3, wrapped = $4 WHERE org_id = $1 AND key_id = $2")
                    .bind(org.as_uuid()).bind(to_i32(key_id)).bind(to_i32(version)).bind(&rewrapped).execute(c).await?,
                KeyOwner::System => sqlx::query("UPDATE system_data_keys SET master_version = $2, wrapped = $3 WHERE key_id = $1")
                    .bind(to_i32(key_id)).bind(to_i32(version)).bind(&rewrapped).execute(c).await?,
            };
        });
        if !from.contains(master_version) {
            from.push(*master_version);
        }
    }
    Ok((rows.len() as u64, from))
}

impl TenantTx {
    /// Gives the organisation its first data key, wrapped under the primary master key.
    pub(crate) async fn create_data_key(&mut self) -> Result<u32, StoreError> {
        let owner = KeyOwner::Org(self.ctx().org_id());
        create_data_key(&mut self.tx, &self.vault, owner).await
    }

    /// Seals `plaintext` for its place with the organisation's active data key.
    pub async fn seal(
        &mut self,
        place: Place<'_>,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, StoreError> {
        let owner = KeyOwner::Org(self.ctx().org_id());
        seal_for(&mut self.tx, &self.vault, owner, place, plaintext).await
    }

    /// Opens a value sealed for this place; anything else (another row, another tenant,
    /// tampering) is an error.
    pub async fn open(
        &mut self,
        place: Place<'_>,
        ciphertext: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, StoreError> {
        let owner = KeyOwner::Org(self.ctx().org_id());
        open_for(&mut self.tx, &self.vault, owner, place, ciphertext).await
    }

    /// Stores (or replaces) a named secret, sealed, and records `secret.set` (name only).
    pub async fn put_secret(
        &mut self,
        name: &SecretName,
        value: &SecretString,
    ) -> Result<SecretMeta, StoreError> {
        let plain = value.expose_secret();
        if plain.is_empty() || plain.len() > MAX_SECRET_BYTES {
            return Err(StoreError::Invalid(format!(
                "a secret is 1 to {MAX_SECRET_BYTES} bytes"
            )));
        }
        let org = self.ctx().org_id().as_uuid();
        let existing: Option<uuid::Uuid> = with_conn!(self.tx, c => {
            sqlx::query_scalar("SELECT id FROM org_secrets WHERE org_id = $1 AND name = $2")
                .bind(org)
                .bind(name.as_str())
                .fetch_optional(c)
                .await?
        });
        let id = existing.unwrap_or_else(uuid::Uuid::now_v7);
        let row_id = id.to_string();
        let ct = self
            .seal(
                Place {
                    table: "org_secrets",
                    column: "ciphertext",
                    row_id: &row_id,
                },
                plain.as_bytes(),
            )
            .await?;
        let last4 = last4_of(plain);
        let now = now_micros();
        with_conn!(self.tx, c => {
            sqlx::query("INSERT INTO org_secrets (org_id, id, name, ciphertext, last4, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6) ON CONFLICT (org_id, name) DO UPDATE SET ciphertext = excluded.ciphertext, last4 = excluded.last4, updated_at = excluded.updated_at")
                .bind(org)
                .bind(id)
                .bind(name.as_str())
                .bind(&ct)
                .bind(last4.as_deref())
                .bind(now)
                .execute(c)
                .await?;
        });
        self.audit(AuditRecord::new(
            if existing.is_some() {
                "secret.replaced"
            } else {
                "secret.set"
            },
            "secret",
            name.as_str(),
            serde_json::json!({}),
        ))
        .await?;
        Ok(SecretMeta {
            name: name.as_str().to_owned(),
            configured: true,
            last4,
            updated_at: now,
        })
    }

    /// The plain value of a named secret, for the code that must use it (never for a client).
    pub async fn secret(&mut self, name: &SecretName) -> Result<Option<SecretString>, StoreError> {
        let org = self.ctx().org_id().as_uuid();
        let row: Option<(uuid::Uuid, Vec<u8>)> = with_conn!(self.tx, c => {
            sqlx::query_as("SELECT id, ciphertext FROM org_secrets WHERE org_id = $1 AND name = $2")
                .bind(org)
                .bind(name.as_str())
                .fetch_optional(c)
                .await?
        });
        let Some((id, ct)) = row else {
            return Ok(None);
        };
        let row_id = id.to_string();
        let plain = self
            .open(
                Place {
                    table: "org_secrets",
                    column: "ciphertext",
                    row_id: &row_id,
                },
                &ct,
            )
            .await?;
        let text = std::str::from_utf8(&plain)
            .map_err(|_| StoreError::Corrupt("a secret is not UTF-8".into()))?;
        Ok(Some(SecretString::from(text.to_owned())))
    }

    /// What may be shown about every secret of the organisation.
    pub async fn list_secret_meta(&mut self) -> Result<Vec<SecretMeta>, StoreError> {
        let org = self.ctx().org_id().as_uuid();
        let rows: Vec<(String, Option<String>, OffsetDateTime)> = with_conn!(self.tx, c => {
            sqlx::query_as("SELECT name, last4, updated_at FROM org_secrets WHERE org_id = $1 ORDER BY name")
                .bind(org)
                .fetch_all(c)
                .await?
        });
        Ok(rows
            .into_iter()
            .map(|(name, last4, updated_at)| SecretMeta {
                name,
                configured: true,
                last4,
                updated_at,
            })
            .collect())
    }

    /// Removes a named secret; true if there was one. Records `secret.deleted`.
    pub async fn delete_secret(&mut self, name: &SecretName) -> Result<bool, StoreError> {
        let org = self.ctx().org_id().as_uuid();
        let n = with_conn!(self.tx, c => {
            sqlx::query("DELETE FROM org_secrets WHERE org_id = $1 AND name = $2")
                .bind(org)
                .bind(name.as_str())
                .execute(c)
                .await?
                .rows_affected()
        });
        if n > 0 {
            self.audit(AuditRecord::new(
                "secret.deleted",
                "secret",
                name.as_str(),
                serde_json::json!({}),
            ))
            .await?;
        }
        Ok(n > 0)
    }

    /// Re-wraps this organisation's data keys that an older master key wraps; returns how many.
    async fn rewrap_own_data_keys(&mut self) -> Result<u64, StoreError> {
        let org = self.ctx().org_id();
        let (count, from) = rewrap_owner(&mut self.tx, &self.vault, KeyOwner::Org(org)).await?;
        if count > 0 {
            let to = self.vault.ring().primary_version();
            self.audit(AuditRecord::new(
                "data_keys.rewrapped",
                "organisation",
                org.to_string(),
                serde_json::json!({ "count": count, "from_versions": from, "to_version": to }),
            ))
            .await?;
        }
        Ok(count)
    }
}

/// Key ids and master versions are stored as 32-bit signed integers (PostgreSQL INTEGER).
fn to_u32(v: i32) -> Result<u32, StoreError> {
    u32::try_from(v).map_err(|_| StoreError::Corrupt("key id or version out of range".into()))
}

fn to_i32(v: u32) -> i32 {
    i32::try_from(v).expect("key ids and versions stay far below 2^31")
}

impl Store {
    /// Re-wraps every organisation's data keys under the primary master key, one
    /// organisation per transaction, so a running server is never blocked for long and
    /// keeps decrypting throughout (it unwraps with whichever version a key names).
    pub async fn rewrap_data_keys(&self) -> Result<RewrapReport, StoreError> {
        let mut report = RewrapReport {
            master_version: self.vault().ring().primary_version(),
            ..RewrapReport::default()
        };
        let mut g = self.begin_global(true).await?;
        let (system, _) = rewrap_owner(&mut g.tx, self.vault(), KeyOwner::System).await?;
        g.commit().await?;
        report.rewrapped += system;
        for org in self.all_org_ids().await? {
            let ctx = TenantCtx::system(org, "keys-rotate");
            let mut tx = self.begin(&ctx).await?;
            report.rewrapped += tx.rewrap_own_data_keys().await?;
            tx.commit().await?;
            report.organisations += 1;
        }
        Ok(report)
    }

    /// Adds a new master key version to the key file and re-wraps every data key with it.
    /// Only for keys kept in a file; keys from the environment are rotated by the operator
    /// (add a version to `FRONTDESK_MASTER_KEY`, then [`Store::rewrap_data_keys`]).
    pub async fn rotate_master_key(&self) -> Result<RewrapReport, StoreError> {
        let path = self
            .vault()
            .key_file()
            .ok_or(StoreError::Vault(VaultError::NotAFile))?
            .to_owned();
        let (ring, _version) = crate::vault::MasterKeyring::rotate_file(&path)?;
        self.vault().replace_ring(ring);
        self.rewrap_data_keys().await
    }

    /// How many data keys each master key version wraps, across all organisations. A
    /// version with no keys left may be removed from the keyring.
    pub async fn data_keys_by_master_version(&self) -> Result<BTreeMap<u32, u64>, StoreError> {
        let mut counts = BTreeMap::new();
        let mut g = self.begin_global(false).await?;
        let system: Vec<(i32, i64)> = with_conn!(g.tx, c => {
            sqlx::query_as("SELECT master_version, count(*) FROM system_data_keys GROUP BY master_version")
                .fetch_all(c)
                .await?
        });
        g.commit().await?;
        for (v, n) in system {
            *counts.entry(to_u32(v)?).or_insert(0) += n as u64;
        }
        for org in self.all_org_ids().await? {
            let ctx = TenantCtx::system(org, "keys-status");
            let mut tx = self.begin_read(&ctx).await?;
            let rows: Vec<(i32, i64)> = with_conn!(tx.tx, c => {
                sqlx::query_as("SELECT master_version, count(*) FROM org_data_keys WHERE org_id = $1 GROUP BY master_version")
                    .bind(org.as_uuid())
                    .fetch_all(c)
                    .await?
            });
            tx.commit().await?;
            for (v, n) in rows {
                *counts.entry(to_u32(v)?).or_insert(0) += n as u64;
            }
        }
        Ok(counts)
    }

    /// Convenience for one-off reads: a named secret of the context's organisation.
    pub async fn secret(
        &self,
        ctx: &TenantCtx,
        name: &SecretName,
    ) -> Result<Option<SecretString>, StoreError> {
        let mut tx = self.begin_read(ctx).await?;
        let v = tx.secret(name).await?;
        tx.commit().await?;
        Ok(v)
    }
}
