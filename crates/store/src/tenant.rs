//! The tenant context and the transactions that carry it.
//!
//! A [`TenantCtx`] can only be made inside this crate, by the code that authenticates or
//! creates an organisation; repository functions take a [`TenantTx`] begun from one. On
//! PostgreSQL the transaction first sets `app.org_id` (transaction-local), which every
//! row-level security policy compares with; on SQLite every query filters on the context's
//! organisation itself.

use crate::{Store, StoreError};
use frontdesk_domain::{Actor, OrgId, Permission, Role, UserId};

/// Who is acting, for which organisation, in which role. No public constructor: only the
/// store's authentication (a session, an API key) and organisation creation make one.
///
/// Code outside the store has every ingredient of one:
///
/// ```
/// use frontdesk_domain::{Actor, OrgId, Role, UserId};
/// let _parts = (OrgId::new(), Actor::User(UserId::new()), Role::system());
/// ```
///
/// but cannot put them together (each block below must fail to compile):
///
/// ```compile_fail
/// use frontdesk_domain::{Actor, OrgId, Role, UserId};
/// let ctx = frontdesk_store::TenantCtx::new(OrgId::new(), Actor::User(UserId::new()), Role::system());
/// ```
///
/// ```compile_fail
/// let ctx = frontdesk_store::TenantCtx::system(frontdesk_domain::OrgId::new(), "me");
/// ```
///
/// ```compile_fail
/// use frontdesk_domain::{Actor, OrgId, Role, UserId};
/// let ctx = frontdesk_store::TenantCtx { org_id: OrgId::new(), actor: Actor::User(UserId::new()), role: Role::system() };
/// ```
///
/// ```compile_fail
/// let ctx: frontdesk_store::TenantCtx = frontdesk_domain::OrgId::new().into();
/// ```
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
        Self::new(org_id, Actor::System(component.to_owned()), Role::system())
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

    /// Whether the actor holds this permission here.
    pub fn can(&self, p: Permission) -> bool {
        self.role.can(p)
    }

    /// The acting user, if a person (not an API key or Frontdesk itself) is acting.
    pub fn user_id(&self) -> Option<UserId> {
        match self.actor {
            Actor::User(u) => Some(u),
            _ => None,
        }
    }
}

/// What a transaction may see on PostgreSQL, set with transaction-local settings that
/// the row-level security policies read. Tenant and user scope are never set together, so
/// a user's own memberships never mix into a tenant's rows.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Scope<'a> {
    /// Global tables only (users, sessions): every tenant table reads empty.
    None,
    /// One organisation's rows.
    Tenant(OrgId),
    /// A user's own memberships and the names of their organisations.
    User(UserId),
    /// Exactly the rows a presented token (its SHA-256) names.
    Token(&'a [u8]),
    /// Organisation ids, for operator commands that walk every tenant.
    System,
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

/// One statement built with sqlx's `QueryBuilder` for the transaction's backend (multi-row
/// inserts, `IN` lists, `VALUES` tables): `$body` is written once and compiled for each
/// backend, so its pushed binds are typed for that backend. `execute` answers the rows the
/// statement changed; `fetch_all as T` its rows.
macro_rules! with_builder {
    (@run $qb:ident, $t:ident, execute) => {
        $qb.build().execute(&mut **$t).await?.rows_affected()
    };
    (@run $qb:ident, $t:ident, fetch_all as $ty:ty) => {
        $qb.build_query_as::<$ty>().fetch_all(&mut **$t).await?
    };
    ($tx:expr, $qb:ident => $body:block, $($run:tt)+) => {
        match &mut $tx {
            $crate::tenant::Tx::Sqlite(t) => {
                let mut $qb = sqlx::QueryBuilder::<sqlx::Sqlite>::new("");
                $body
                $crate::tenant::with_builder!(@run $qb, t, $($run)+)
            }
            $crate::tenant::Tx::Postgres(t) => {
                let mut $qb = sqlx::QueryBuilder::<sqlx::Postgres>::new("");
                $body
                $crate::tenant::with_builder!(@run $qb, t, $($run)+)
            }
        }
    };
}
pub(crate) use with_builder;

/// Rows per multi-row statement (bind parameters stay far below either backend's limit).
pub(crate) const ROWS_PER_STATEMENT: usize = 250;

/// Appends ` IN (…)` to a query being built, one bound parameter per value (the caller
/// keeps the list within the backends' parameter limits).
pub(crate) fn push_in<'t, DB, T>(
    qb: &mut sqlx::QueryBuilder<DB>,
    values: impl IntoIterator<Item = T>,
) where
    DB: sqlx::Database,
    T: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
{
    qb.push(" IN (");
    let mut list = qb.separated(", ");
    for v in values {
        list.push_bind(v);
    }
    qb.push(")");
}

/// Sets the transaction's scope (PostgreSQL; SQLite has no row-level security and the
/// store's queries filter on their own).
pub(crate) async fn set_scope(tx: &mut Tx, scope: Scope<'_>) -> Result<(), StoreError> {
    let Tx::Postgres(t) = tx else {
        return Ok(());
    };
    let (org, user, token, system) = match scope {
        Scope::None => (String::new(), String::new(), String::new(), ""),
        Scope::Tenant(o) => (o.to_string(), String::new(), String::new(), ""),
        Scope::User(u) => (String::new(), u.to_string(), String::new(), ""),
        Scope::Token(h) => (String::new(), String::new(), hex::encode(h), ""),
        Scope::System => (String::new(), String::new(), String::new(), "system"),
    };
    sqlx::query("SELECT set_config('app.org_id', $1, true), set_config('app.user_id', $2, true), set_config('app.token_hash', $3, true), set_config('app.scope', $4, true)")
        .bind(org)
        .bind(user)
        .bind(token)
        .bind(system)
        .execute(&mut **t)
        .await?;
    Ok(())
}

/// A transaction scoped to one organisation. Dropped without `commit`, it rolls back.
pub struct TenantTx {
    ctx: TenantCtx,
    pub(crate) tx: Tx,
    pub(crate) vault: std::sync::Arc<crate::Vault>,
    /// SQLite writes: this process's turn to write, released with the transaction.
    gate: WriteTurn,
    /// Events announced when (and only if) the transaction commits.
    pending: Vec<crate::events::Event>,
    /// Outbox rows were queued: the dispatcher is woken after commit.
    queued_work: bool,
    bus: crate::events::EventBus,
    /// The transaction may write: its commit drops these organisations' cached unread
    /// counts (see [`crate::unread`]).
    writes: bool,
    counts_changed: Vec<OrgId>,
    /// A read transaction's unread-count cache ticket, taken before it read anything.
    pub(crate) ticket: Option<crate::unread::Ticket>,
    /// PostgreSQL: statuses and send records to look at again once this commits (see
    /// [`crate::messaging::Recheck`]), with the store to do it in.
    pub(crate) rechecks: Vec<crate::messaging::Recheck>,
    store: Option<crate::Store>,
}

/// Held by a SQLite write transaction for its whole life (see [`crate::gate`]).
pub(crate) type WriteTurn = Option<crate::gate::Turn>;

impl TenantTx {
    pub fn ctx(&self) -> &TenantCtx {
        &self.ctx
    }

    /// Commits, then publishes the events the transaction queued and wakes the dispatcher
    /// when it queued outbox work.
    pub async fn commit(mut self) -> Result<(), StoreError> {
        let rechecks = std::mem::take(&mut self.rechecks);
        let store = self.store.take();
        let ctx = self.ctx.clone();
        self.commit_alone().await?;
        if let Some(store) = store
            && !rechecks.is_empty()
        {
            crate::messaging::recheck(&store, &ctx, rechecks).await;
        }
        Ok(())
    }

    /// Commits, without looking at anything again after (see [`Self::recheck_after_commit`]).
    pub(crate) async fn commit_alone(mut self) -> Result<(), StoreError> {
        // Other processes hear of the events when (and only if) this commits.
        if let Tx::Postgres(t) = &mut self.tx
            && !self.pending.is_empty()
        {
            for payload in self.bus.relay_payloads(&self.pending) {
                sqlx::query("SELECT pg_notify($1, $2)")
                    .bind(crate::events::RELAY_CHANNEL)
                    .bind(payload)
                    .execute(&mut **t)
                    .await?;
            }
        }
        self.tx.commit().await?;
        drop(self.gate);
        for org in &self.counts_changed {
            self.bus.unread().changed(*org);
        }
        self.bus.publish(self.pending);
        if self.queued_work {
            self.bus.wake_outbox();
        }
        Ok(())
    }

    /// Looks at `r` again in a transaction of its own once this one commits (PostgreSQL
    /// write transactions only; SQLite's writers see each other's commits).
    pub(crate) fn recheck_after_commit(&mut self, r: crate::messaging::Recheck) {
        if self.store.is_some() {
            self.rechecks.push(r);
        }
    }

    /// Nothing this transaction wrote changes what the inbox counts as unread (the caller
    /// wrote only webhook bodies, or adjusts the cached counts itself): its commit keeps
    /// them.
    pub(crate) fn keeps_unread_counts(&mut self) {
        self.counts_changed.clear();
    }

    /// The unread-count cache this transaction's commit updates.
    pub(crate) fn unread_cache(&self) -> &crate::unread::UnreadCache {
        self.bus.unread()
    }

    /// Outbox work was queued in this transaction.
    pub(crate) fn queued_outbox_work(&mut self) {
        self.queued_work = true;
    }

    /// Queues an event to publish after commit.
    pub(crate) fn emit(&mut self, e: crate::events::Event) {
        self.pending.push(e);
    }

    /// The events queued so far (published at commit).
    pub(crate) fn pending_events(&self) -> &[crate::events::Event] {
        &self.pending
    }

    /// Continues the same transaction outside any tenant (global tables only).
    pub(crate) async fn into_global(mut self) -> Result<GlobalTx, StoreError> {
        debug_assert!(
            self.rechecks.is_empty(),
            "a transaction with statuses to look at again stays a tenant's"
        );
        set_scope(&mut self.tx, Scope::None).await?;
        Ok(GlobalTx {
            tx: self.tx,
            vault: self.vault,
            gate: self.gate,
            bus: self.bus,
            writes: self.writes,
            counts_changed: self.counts_changed,
        })
    }
}

impl Tx {
    pub(crate) async fn commit(self) -> Result<(), StoreError> {
        match self {
            Tx::Sqlite(t) => t.commit().await?,
            Tx::Postgres(t) => t.commit().await?,
        }
        Ok(())
    }
}

/// A transaction over the global tables (users, sessions, sign-in tokens), which may
/// narrow itself to a user's, a token's or one tenant's rows as authentication proceeds.
pub(crate) struct GlobalTx {
    pub(crate) tx: Tx,
    pub(crate) vault: std::sync::Arc<crate::Vault>,
    gate: WriteTurn,
    bus: crate::events::EventBus,
    writes: bool,
    /// Organisations this transaction wrote in as a tenant before (see [`TenantTx`]).
    counts_changed: Vec<OrgId>,
}

impl GlobalTx {
    pub(crate) async fn scope(&mut self, scope: Scope<'_>) -> Result<(), StoreError> {
        set_scope(&mut self.tx, scope).await
    }

    /// Continues the same transaction as `ctx`'s organisation.
    pub(crate) async fn into_tenant(mut self, ctx: TenantCtx) -> Result<TenantTx, StoreError> {
        set_scope(&mut self.tx, Scope::Tenant(ctx.org_id())).await?;
        let mut counts_changed = self.counts_changed;
        if self.writes && !counts_changed.contains(&ctx.org_id()) {
            counts_changed.push(ctx.org_id());
        }
        let ticket = (!self.writes).then(|| self.bus.unread().ticket(ctx.org_id()));
        Ok(TenantTx {
            ctx,
            tx: self.tx,
            vault: self.vault,
            gate: self.gate,
            pending: Vec::new(),
            queued_work: false,
            bus: self.bus,
            writes: self.writes,
            counts_changed,
            ticket,
            rechecks: Vec::new(),
            store: None,
        })
    }

    pub(crate) async fn commit(self) -> Result<(), StoreError> {
        self.tx.commit().await?;
        for org in &self.counts_changed {
            self.bus.unread().changed(*org);
        }
        Ok(())
    }
}

/// Whether a transaction writes, and how urgently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Write {
    No,
    Yes,
    Urgent,
    Background,
    /// Someone waits, but losing the commit to a power cut is harmless (read marks, the
    /// built-in simulator's records of the messages it carries): it is visible at once and
    /// survives a crash of the process, but is not synced to disk before the answer.
    Relaxed,
}

impl Store {
    async fn begin_tx(&self, write: Write) -> Result<(Tx, WriteTurn), StoreError> {
        Ok(match &self.pool {
            crate::Pool::Sqlite(p, relaxed) if write != Write::No => {
                let turn = match write {
                    Write::Urgent => self.write_gate.urgent().await,
                    Write::Background => self.write_gate.background().await,
                    _ => self.write_gate.normal().await,
                };
                let pool = if write == Write::Relaxed { relaxed } else { p };
                (
                    Tx::Sqlite(pool.begin_with("BEGIN IMMEDIATE").await?),
                    Some(turn),
                )
            }
            crate::Pool::Sqlite(p, _) => (Tx::Sqlite(p.begin().await?), None),
            crate::Pool::Postgres(p) => {
                let mut tx = p.begin().await?;
                if write == Write::Relaxed {
                    // The commit returns before its WAL record is flushed; a crash of the
                    // server may lose it, never half of it.
                    sqlx::query("SET LOCAL synchronous_commit = off")
                        .execute(&mut *tx)
                        .await?;
                }
                (Tx::Postgres(tx), None)
            }
        })
    }

    /// Begins a transaction that writes for `ctx`'s organisation. On SQLite it takes the
    /// write lock up front (`BEGIN IMMEDIATE`), so it never fails half-way on a lock upgrade.
    pub async fn begin(&self, ctx: &TenantCtx) -> Result<TenantTx, StoreError> {
        self.begin_scoped(ctx, Write::Yes).await
    }

    /// A write no one waits on (the worker's): on SQLite it yields to urgent writes for a
    /// moment (see [`crate::gate`]).
    pub async fn begin_background(&self, ctx: &TenantCtx) -> Result<TenantTx, StoreError> {
        self.begin_scoped(ctx, Write::Background).await
    }

    /// A write someone waits on to answer a provider (the webhook group commit): on SQLite
    /// it goes ahead of background writes (see [`crate::gate`]).
    pub(crate) async fn begin_urgent(&self, ctx: &TenantCtx) -> Result<TenantTx, StoreError> {
        self.begin_scoped(ctx, Write::Urgent).await
    }

    /// A write whose loss to a power cut is harmless (see [`Write::Relaxed`]): read marks,
    /// the simulator's per-message records.
    pub async fn begin_relaxed(&self, ctx: &TenantCtx) -> Result<TenantTx, StoreError> {
        self.begin_scoped(ctx, Write::Relaxed).await
    }

    /// The durability a write transaction runs with, as the database reports it from inside
    /// one: `(ordinary, relaxed)` — SQLite's `synchronous` level, PostgreSQL's
    /// `synchronous_commit`. Both are rolled back.
    #[cfg(feature = "testing")]
    pub async fn write_durability(&self, ctx: &TenantCtx) -> Result<(String, String), StoreError> {
        let mut out = Vec::new();
        for write in [Write::Yes, Write::Relaxed] {
            let mut tx = self.begin_scoped(ctx, write).await?;
            let level: String = match &mut tx.tx {
                Tx::Sqlite(t) => sqlx::query_scalar::<_, i64>("PRAGMA synchronous")
                    .fetch_one(&mut **t)
                    .await?
                    .to_string(),
                Tx::Postgres(t) => {
                    sqlx::query_scalar("SHOW synchronous_commit")
                        .fetch_one(&mut **t)
                        .await?
                }
            };
            out.push(level);
        }
        let relaxed = out.pop().unwrap_or_default();
        Ok((out.pop().unwrap_or_default(), relaxed))
    }

    /// Begins a transaction that only reads (on SQLite it does not take the write lock).
    pub async fn begin_read(&self, ctx: &TenantCtx) -> Result<TenantTx, StoreError> {
        self.begin_scoped(ctx, Write::No).await
    }

    async fn begin_scoped(&self, ctx: &TenantCtx, write: Write) -> Result<TenantTx, StoreError> {
        // Before the transaction exists, so it cannot have read anything older.
        let ticket = (write == Write::No).then(|| self.events.unread().ticket(ctx.org_id()));
        let (mut tx, gate) = self.begin_tx(write).await?;
        set_scope(&mut tx, Scope::Tenant(ctx.org_id())).await?;
        Ok(TenantTx {
            ctx: ctx.clone(),
            tx,
            vault: self.vault().clone(),
            gate,
            pending: Vec::new(),
            queued_work: false,
            bus: self.events.clone(),
            writes: write != Write::No,
            counts_changed: if write == Write::No {
                Vec::new()
            } else {
                vec![ctx.org_id()]
            },
            ticket,
            rechecks: Vec::new(),
            store: (write != Write::No && matches!(self.pool, crate::Pool::Postgres(_)))
                .then(|| self.clone()),
        })
    }

    /// Begins a transaction over the global tables.
    pub(crate) async fn begin_global(&self, write: bool) -> Result<GlobalTx, StoreError> {
        self.begin_global_as(if write { Write::Yes } else { Write::No })
            .await
    }

    /// A global write no one waits on (claiming webhook rows to process).
    pub(crate) async fn begin_global_background(&self) -> Result<GlobalTx, StoreError> {
        self.begin_global_as(Write::Background).await
    }

    async fn begin_global_as(&self, write: Write) -> Result<GlobalTx, StoreError> {
        let (mut tx, gate) = self.begin_tx(write).await?;
        set_scope(&mut tx, Scope::None).await?;
        Ok(GlobalTx {
            tx,
            vault: self.vault().clone(),
            gate,
            bus: self.events.clone(),
            writes: write != Write::No,
            counts_changed: Vec::new(),
        })
    }

    /// Ids of every organisation, for operator commands that walk all tenants.
    pub(crate) async fn all_org_ids(&self) -> Result<Vec<OrgId>, StoreError> {
        let mut g = self.begin_global(false).await?;
        g.scope(Scope::System).await?;
        let ids: Vec<uuid::Uuid> = with_conn!(g.tx, c => {
            sqlx::query_scalar("SELECT id FROM organisations ORDER BY id").fetch_all(c).await?
        });
        g.commit().await?;
        Ok(ids.into_iter().map(OrgId::from_uuid).collect())
    }
}
