//! The tenant context and the transactions that carry it.
//!
//! A [`TenantCtx`] can only be made inside this crate, by the code that authenticates or
//! creates an organisation; repository functions take a [`TenantTx`] begun from one. On
//! PostgreSQL the transaction first sets `app.org_id` (transaction-local), which every
//! row-level security policy compares with; on SQLite every query filters on the context's
//! organisation itself.

use crate::{Store, StoreError};
use frontdesk_domain::{Actor, OrgId, Role};

/// Who is acting, for which organisation, in which role. No public constructor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantCtx {
    org_id: OrgId,
    actor: Actor,
    role: Role,
}

impl TenantCtx {
    /// Only authentication (and organisation creation) in this crate may build one.
    pub(crate) fn new(org_id: OrgId, actor: Actor, role: Role) -> Self {
        Self {
            org_id,
            actor,
            role,
        }
    }

    /// A context for Frontdesk's own work on an organisation (workers, operator commands).
    pub(crate) fn system(org_id: OrgId, component: &str) -> Self {
        Self::new(org_id, Actor::System(component.to_owned()), Role::System)
    }

    pub fn org_id(&self) -> OrgId {
        self.org_id
    }

    pub fn actor(&self) -> &Actor {
        &self.actor
    }

    pub fn role(&self) -> &Role {
        &self.role
    }
}

pub(crate) enum Tx {
    Sqlite(sqlx::Transaction<'static, sqlx::Sqlite>),
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
}

/// Runs `$body` with `$c` bound to the transaction's connection, once per backend, so SQL
/// that both dialects accept is written once and type-checked for each.
macro_rules! with_conn {
    ($tx:expr, $c:ident => $body:expr) => {
        match &mut $tx {
            $crate::tenant::Tx::Sqlite(t) => {
                let $c: &mut sqlx::SqliteConnection = &mut *t;
                $body
            }
            $crate::tenant::Tx::Postgres(t) => {
                let $c: &mut sqlx::PgConnection = &mut *t;
                $body
            }
        }
    };
}
pub(crate) use with_conn;

/// A transaction scoped to one organisation. Dropped without `commit`, it rolls back.
pub struct TenantTx {
    ctx: TenantCtx,
    pub(crate) tx: Tx,
    pub(crate) vault: std::sync::Arc<crate::Vault>,
}

impl TenantTx {
    pub fn ctx(&self) -> &TenantCtx {
        &self.ctx
    }

    pub async fn commit(self) -> Result<(), StoreError> {
        match self.tx {
            Tx::Sqlite(t) => t.commit().await?,
            Tx::Postgres(t) => t.commit().await?,
        }
        Ok(())
    }
}

/// A transaction that may only list organisation ids (operator commands).
pub(crate) struct SystemTx {
    pub(crate) tx: Tx,
}

impl Store {
    /// Begins a transaction that writes for `ctx`'s organisation. On SQLite it takes the
    /// write lock up front (`BEGIN IMMEDIATE`), so it never fails half-way on a lock upgrade.
    pub async fn begin(&self, ctx: &TenantCtx) -> Result<TenantTx, StoreError> {
        self.begin_scoped(ctx, true).await
    }

    /// Begins a transaction that only reads (on SQLite it does not take the write lock).
    pub async fn begin_read(&self, ctx: &TenantCtx) -> Result<TenantTx, StoreError> {
        self.begin_scoped(ctx, false).await
    }

    async fn begin_scoped(&self, ctx: &TenantCtx, write: bool) -> Result<TenantTx, StoreError> {
        let tx = match &self.pool {
            crate::Pool::Sqlite(p) => Tx::Sqlite(if write {
                p.begin_with("BEGIN IMMEDIATE").await?
            } else {
                p.begin().await?
            }),
            crate::Pool::Postgres(p) => {
                let mut t = p.begin().await?;
                sqlx::query("SELECT set_config('app.org_id', $1, true)")
                    .bind(ctx.org_id().to_string())
                    .execute(&mut *t)
                    .await?;
                Tx::Postgres(t)
            }
        };
        Ok(TenantTx {
            ctx: ctx.clone(),
            tx,
            vault: self.vault().clone(),
        })
    }

    /// Begins a transaction in which organisations may be listed across tenants, and
    /// nothing else (PostgreSQL's `system_listing` policy).
    pub(crate) async fn begin_system(&self) -> Result<SystemTx, StoreError> {
        let tx = match &self.pool {
            crate::Pool::Sqlite(p) => Tx::Sqlite(p.begin().await?),
            crate::Pool::Postgres(p) => {
                let mut t = p.begin().await?;
                sqlx::query("SELECT set_config('app.scope', 'system', true)")
                    .execute(&mut *t)
                    .await?;
                Tx::Postgres(t)
            }
        };
        Ok(SystemTx { tx })
    }

    /// Ids of every organisation, for operator commands that walk all tenants.
    pub(crate) async fn all_org_ids(&self) -> Result<Vec<OrgId>, StoreError> {
        let mut sys = self.begin_system().await?;
        let ids: Vec<uuid::Uuid> = with_conn!(sys.tx, c => {
            sqlx::query_scalar("SELECT id FROM organisations ORDER BY id").fetch_all(c).await?
        });
        Ok(ids.into_iter().map(OrgId::from_uuid).collect())
    }
}
