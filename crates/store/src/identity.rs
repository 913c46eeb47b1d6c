//! People and their sign-ins: users, sessions, refresh tokens, one-time email tokens, and
//! authentication, the one place (with API keys) where a [`TenantCtx`] is made from a
//! credential.
//!
//! Users and sessions are global tables: a person signs in before an organisation is
//! chosen and may belong to several. The organisation a session works in is checked
//! against the user's membership on every request, so removing a member or changing a role
//! takes effect on the next request.

use crate::members::role_from_row;
use crate::secrets::{KeyOwner, Place, open_for, seal_for};
use crate::tenant::{GlobalTx, Scope, TenantCtx, with_conn};
use crate::tokens::{new_token, random_urlsafe, token_hash};
use crate::{Store, StoreError};
use frontdesk_domain::{Actor, ApiKeyId, Email, OrgId, SessionId, UserId};
use secrecy::SecretString;
use serde::Serialize;
use time::{Duration, OffsetDateTime};
use zeroize::Zeroizing;

/// A user as the account pages show it. The password hash is never part of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct User {
    pub id: UserId,
    pub email: String,
    pub name: String,
    pub totp_enabled: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// What sign-in needs: the user and their password hash.
#[derive(Clone)]
pub struct Credentials {
    pub user: User,
    pub password_hash: Option<SecretString>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("password_hash", &"[redacted]")
            .finish()
    }
}

/// Browser (cookie) or API client (access and refresh tokens).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SessionKind {
    Web,
    Api,
}

impl SessionKind {
    fn as_str(self) -> &'static str {
        match self {
            SessionKind::Web => "web",
            SessionKind::Api => "api",
        }
    }

    fn parse(s: &str) -> Result<Self, StoreError> {
        match s {
            "web" => Ok(SessionKind::Web),
            "api" => Ok(SessionKind::Api),
            _ => Err(StoreError::Corrupt(format!("session kind {s:?}"))),
        }
    }
}

/// The session a request came with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    pub id: SessionId,
    pub kind: SessionKind,
    /// Compared (in constant time) with the token every state-changing form carries.
    pub csrf_token: String,
    /// Signed in with a password, second factor still to come.
    pub mfa_pending: bool,
    pub active_org: Option<OrgId>,
}

/// Who a request comes from, once its credential checked out.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The person; `None` for an API key.
    pub user: Option<User>,
    pub session: Option<SessionInfo>,
    pub api_key: Option<ApiKeyId>,
    /// The organisation and role the request acts in; `None` when the session has no
    /// organisation (or no longer belongs to it).
    pub ctx: Option<TenantCtx>,
    /// The organisation requires two-factor sign-in and this user has not set it up.
    pub needs_2fa_setup: bool,
}

/// A session as its owner lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct SessionSummary {
    pub id: SessionId,
    pub kind: SessionKind,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub last_seen_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

/// What to open.
#[derive(Debug, Clone)]
pub struct NewSession<'a> {
    pub user: UserId,
    pub org: Option<OrgId>,
    pub kind: SessionKind,
    pub mfa_pending: bool,
    pub ip: Option<&'a str>,
    pub user_agent: Option<&'a str>,
    /// Absolute lifetime of a web session; for API sessions, the refresh token's lifetime.
    pub ttl: Duration,
    pub now: OffsetDateTime,
}

/// A new session's credentials, shown once.
pub struct IssuedSession {
    pub id: SessionId,
    /// Web: the cookie value.
    pub cookie_token: Option<SecretString>,
    /// API: the first refresh token.
    pub refresh_token: Option<SecretString>,
    pub csrf_token: String,
    pub expires_at: OffsetDateTime,
}

/// What happened to a presented refresh token.
pub enum Refreshed {
    /// Spent, replaced by a new one, for this session.
    Rotated {
        session: SessionId,
        user: UserId,
        org: Option<OrgId>,
        refresh_token: SecretString,
    },
    /// It had been used before: the whole session is now revoked.
    Reused { session: SessionId, user: UserId },
    /// Unknown, expired, or its session is over.
    Invalid,
}

/// A one-time link's purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmailTokenPurpose {
    MagicLink,
    PasswordReset,
}

impl EmailTokenPurpose {
    fn as_str(self) -> &'static str {
        match self {
            EmailTokenPurpose::MagicLink => "magic_link",
            EmailTokenPurpose::PasswordReset => "password_reset",
        }
    }

    fn prefix(self) -> &'static str {
        match self {
            EmailTokenPurpose::MagicLink => "fdm",
            EmailTokenPurpose::PasswordReset => "fdp",
        }
    }
}

/// A user's TOTP state; the secret leaves the vault only for the code that checks it.
pub struct TotpState {
    pub secret: Zeroizing<Vec<u8>>,
    pub enabled: bool,
}

/// How long an idle web session lives, and how often `last_seen_at` is written.
#[derive(Debug, Clone, Copy)]
pub struct SessionPolicy {
    pub idle_timeout: Duration,
    pub touch_every: Duration,
}

impl Default for SessionPolicy {
    fn default() -> Self {
        Self {
            idle_timeout: Duration::hours(12),
            touch_every: Duration::minutes(1),
        }
    }
}

pub(crate) type UserRow = (uuid::Uuid, String, String, bool, OffsetDateTime);

type CredentialsRow = (
    uuid::Uuid,
    String,
    String,
    bool,
    OffsetDateTime,
    Option<String>,
);

fn credentials_from_row((id, email, name, totp, created, hash): CredentialsRow) -> Credentials {
    Credentials {
        user: user_from_row((id, email, name, totp, created)),
        password_hash: hash.map(SecretString::from),
    }
}

pub(crate) fn user_from_row(r: UserRow) -> User {
    User {
        id: UserId::from_uuid(r.0),
        email: r.1,
        name: r.2,
        totp_enabled: r.3,
        created_at: r.4,
    }
}

/// Inserts a user (inside sign-up or invitation acceptance).
pub(crate) async fn insert_user(
    g: &mut GlobalTx,
    email: &Email,
    name: &str,
    password_hash: Option<&str>,
    now: OffsetDateTime,
) -> Result<User, StoreError> {
    let user = User {
        id: UserId::new(),
        email: email.as_str().to_owned(),
        name: crate::members::valid_label(name, 200, "name")?,
        totp_enabled: false,
        created_at: now,
    };
    let r = with_conn!(g.tx, c => {
        sqlx::query("INSERT INTO users (id, email, name, password_hash, totp_enabled, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6)")
            .bind(user.id.as_uuid())
            .bind(&user.email)
            .bind(&user.name)
            .bind(password_hash)
            .bind(false)
            .bind(now)
            .execute(c)
            .await
            .map(drop)
    });
    match r {
        Ok(_) => Ok(user),
        Err(e)
            if e.as_database_error()
                .is_some_and(|d| d.is_unique_violation()) =>
        {
            Err(StoreError::Conflict("email_taken"))
        }
        Err(e) => Err(e.into()),
    }
}

impl Store {
    /// The user with this email and their password hash, for sign-in.
    pub async fn credentials_by_email(
        &self,
        email: &Email,
    ) -> Result<Option<Credentials>, StoreError> {
        let mut g = self.begin_global(false).await?;
        let row: Option<CredentialsRow> = with_conn!(g.tx, c => {
            sqlx::query_as("SELECT id, email, name, totp_enabled, created_at, password_hash FROM users WHERE email = $1")
                .bind(email.as_str())
                .fetch_optional(c)
                .await?
        });
        g.commit().await?;
        Ok(row.map(credentials_from_row))
    }

    /// The user with this id and their password hash (to confirm a password change).
    pub async fn credentials(&self, user: UserId) -> Result<Option<Credentials>, StoreError> {
        let mut g = self.begin_global(false).await?;
        let row: Option<CredentialsRow> = with_conn!(g.tx, c => {
            sqlx::query_as("SELECT id, email, name, totp_enabled, created_at, password_hash FROM users WHERE id = $1")
                .bind(user.as_uuid())
                .fetch_optional(c)
                .await?
        });
        g.commit().await?;
        Ok(row.map(credentials_from_row))
    }

    pub async fn user(&self, user: UserId) -> Result<Option<User>, StoreError> {
        let mut g = self.begin_global(false).await?;
        let row: Option<UserRow> = with_conn!(g.tx, c => {
            sqlx::query_as("SELECT id, email, name, totp_enabled, created_at FROM users WHERE id = $1")
                .bind(user.as_uuid())
                .fetch_optional(c)
                .await?
        });
        g.commit().await?;
        Ok(row.map(user_from_row))
    }

    /// Replaces a user's password hash (a change, a reset, or a hash upgrade at sign-in).
    pub async fn set_password_hash(
        &self,
        user: UserId,
        hash: &str,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let mut g = self.begin_global(true).await?;
        with_conn!(g.tx, c => {
            sqlx::query("UPDATE users SET password_hash = $2, updated_at = $3 WHERE id = $1")
                .bind(user.as_uuid())
                .bind(hash)
                .bind(now)
                .execute(c)
                .await?;
        });
        g.commit().await
    }

    pub async fn rename_user(
        &self,
        user: UserId,
        name: &str,
        now: OffsetDateTime,
    ) -> Result<User, StoreError> {
        let name = crate::members::valid_label(name, 200, "name")?;
        let mut g = self.begin_global(true).await?;
        with_conn!(g.tx, c => {
            sqlx::query("UPDATE users SET name = $2, updated_at = $3 WHERE id = $1")
                .bind(user.as_uuid())
                .bind(&name)
                .bind(now)
                .execute(c)
                .await?;
        });
        g.commit().await?;
        self.user(user).await?.ok_or(StoreError::NotFound)
    }

    /// Stores a new TOTP secret (sealed with the installation key) awaiting confirmation.
    /// A user with two-factor already on must turn it off first.
    pub async fn set_pending_totp(
        &self,
        user: UserId,
        secret: &[u8],
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let mut g = self.begin_global(true).await?;
        let row_id = user.to_string();
        let place = Place {
            table: "users",
            column: "totp_secret",
            row_id: &row_id,
        };
        let sealed = seal_for(&mut g.tx, &g.vault, KeyOwner::System, place, secret).await?;
        let n = with_conn!(g.tx, c => {
            sqlx::query("UPDATE users SET totp_secret = $2, totp_last_step = NULL, updated_at = $3 WHERE id = $1 AND NOT totp_enabled")
                .bind(user.as_uuid())
                .bind(&sealed)
                .bind(now)
                .execute(c)
                .await?
                .rows_affected()
        });
        if n != 1 {
            return Err(StoreError::Conflict("totp_already_enabled"));
        }
        g.commit().await
    }

    /// The user's TOTP secret, if one is set (pending or enabled).
    pub async fn totp_state(&self, user: UserId) -> Result<Option<TotpState>, StoreError> {
        let mut g = self.begin_global(false).await?;
        let row: Option<(Option<Vec<u8>>, bool)> = with_conn!(g.tx, c => {
            sqlx::query_as("SELECT totp_secret, totp_enabled FROM users WHERE id = $1")
                .bind(user.as_uuid())
                .fetch_optional(c)
                .await?
        });
        let Some((Some(sealed), enabled)) = row else {
            g.commit().await?;
            return Ok(None);
        };
        let row_id = user.to_string();
        let place = Place {
            table: "users",
            column: "totp_secret",
            row_id: &row_id,
        };
        let secret = open_for(&mut g.tx, &g.vault, KeyOwner::System, place, &sealed).await?;
        g.commit().await?;
        Ok(Some(TotpState { secret, enabled }))
    }

    /// Records that a TOTP time step was used; false if it (or a later one) was used
    /// before, so a code cannot be replayed.
    pub async fn accept_totp_step(&self, user: UserId, step: i64) -> Result<bool, StoreError> {
        let mut g = self.begin_global(true).await?;
        let n = with_conn!(g.tx, c => {
            sqlx::query("UPDATE users SET totp_last_step = $2 WHERE id = $1 AND (totp_last_step IS NULL OR totp_last_step < $2)")
                .bind(user.as_uuid())
                .bind(step)
                .execute(c)
                .await?
                .rows_affected()
        });
        g.commit().await?;
        Ok(n == 1)
    }

    /// Turns two-factor sign-in on or off (off also forgets the secret).
    pub async fn set_totp_enabled(
        &self,
        user: UserId,
        enabled: bool,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let mut g = self.begin_global(true).await?;
        with_conn!(g.tx, c => {
            if enabled {
                sqlx::query("UPDATE users SET totp_enabled = $2, updated_at = $3 WHERE id = $1 AND totp_secret IS NOT NULL")
            } else {
                sqlx::query("UPDATE users SET totp_enabled = $2, totp_secret = NULL, totp_last_step = NULL, updated_at = $3 WHERE id = $1")
            }
            .bind(user.as_uuid())
            .bind(enabled)
            .bind(now)
            .execute(c)
            .await?;
        });
        g.commit().await
    }

    /// Opens a session. Web sessions get a cookie token; API sessions a first refresh token.
    pub async fn create_session(&self, s: NewSession<'_>) -> Result<IssuedSession, StoreError> {
        let id = SessionId::new();
        let csrf_token = random_urlsafe(32);
        let expires_at = s.now + s.ttl;
        let (cookie_token, cookie_hash) = match s.kind {
            SessionKind::Web => {
                let (t, h) = new_token("fds");
                (Some(t), Some(h.to_vec()))
            }
            SessionKind::Api => (None, None),
        };
        let ip = s.ip.map(|v| v.chars().take(64).collect::<String>());
        let ua = s
            .user_agent
            .map(|v| v.chars().take(300).collect::<String>());
        let mut g = self.begin_global(true).await?;
        with_conn!(g.tx, c => {
            sqlx::query("INSERT INTO sessions (id, token_hash, user_id, active_org_id, kind, csrf_token, mfa_pending, created_at, last_seen_at, expires_at, ip, user_agent) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $9, $10, $11)")
                .bind(id.as_uuid())
                .bind(cookie_hash)
                .bind(s.user.as_uuid())
                .bind(s.org.map(|o| o.as_uuid()))
                .bind(s.kind.as_str())
                .bind(&csrf_token)
                .bind(s.mfa_pending)
                .bind(s.now)
                .bind(expires_at)
                .bind(ip)
                .bind(ua)
                .execute(c)
                .await?;
        });
        let refresh_token = match s.kind {
            SessionKind::Api => Some(insert_refresh(&mut g, id, s.now, s.ttl).await?),
            SessionKind::Web => None,
        };
        g.commit().await?;
        Ok(IssuedSession {
            id,
            cookie_token,
            refresh_token,
            csrf_token,
            expires_at,
        })
    }

    /// The principal behind a web session cookie, or `None` if the session is unknown,
    /// revoked, expired, or idle for too long (which revokes it).
    pub async fn authenticate_cookie(
        &self,
        cookie: &str,
        now: OffsetDateTime,
        policy: SessionPolicy,
    ) -> Result<Option<Principal>, StoreError> {
        let hash = token_hash(cookie);
        self.authenticate_session(SessionLookup::Cookie(&hash), None, now, policy)
            .await
    }

    /// The principal behind an API access token's session: the session must still be live
    /// and work in the organisation the token names.
    pub async fn authenticate_session_id(
        &self,
        session: SessionId,
        org: Option<OrgId>,
        now: OffsetDateTime,
    ) -> Result<Option<Principal>, StoreError> {
        let policy = SessionPolicy::default();
        self.authenticate_session(SessionLookup::Id(session), Some(org), now, policy)
            .await
    }

    async fn authenticate_session(
        &self,
        lookup: SessionLookup<'_>,
        expected_org: Option<Option<OrgId>>,
        now: OffsetDateTime,
        policy: SessionPolicy,
    ) -> Result<Option<Principal>, StoreError> {
        type Row = (
            uuid::Uuid,
            uuid::Uuid,
            Option<uuid::Uuid>,
            String,
            String,
            bool,
            OffsetDateTime,
            String,
            String,
            bool,
            OffsetDateTime,
        );
        let mut g = self.begin_global(false).await?;
        let row: Option<Row> = with_conn!(g.tx, c => {
            match lookup {
                SessionLookup::Cookie(h) => sqlx::query_as("SELECT s.id, s.user_id, s.active_org_id, s.kind, s.csrf_token, s.mfa_pending, s.last_seen_at, u.email, u.name, u.totp_enabled, u.created_at FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.token_hash = $1 AND s.kind = 'web' AND s.revoked_at IS NULL AND s.expires_at > $2")
                    .bind(&h[..])
                    .bind(now)
                    .fetch_optional(c)
                    .await?,
                SessionLookup::Id(id) => sqlx::query_as("SELECT s.id, s.user_id, s.active_org_id, s.kind, s.csrf_token, s.mfa_pending, s.last_seen_at, u.email, u.name, u.totp_enabled, u.created_at FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id = $1 AND s.kind = 'api' AND s.revoked_at IS NULL AND s.expires_at > $2")
                    .bind(id.as_uuid())
                    .bind(now)
                    .fetch_optional(c)
                    .await?,
            }
        });
        let Some((sid, uid, org, kind, csrf, mfa_pending, last_seen, email, name, totp, created)) =
            row
        else {
            g.commit().await?;
            return Ok(None);
        };
        let session = SessionInfo {
            id: SessionId::from_uuid(sid),
            kind: SessionKind::parse(&kind)?,
            csrf_token: csrf,
            mfa_pending,
            active_org: org.map(OrgId::from_uuid),
        };
        if let Some(expected) = expected_org
            && expected != session.active_org
        {
            // A token minted for another organisation than the session now works in.
            g.commit().await?;
            return Ok(None);
        }
        let user = user_from_row((uid, email, name, totp, created));
        if session.kind == SessionKind::Web && last_seen + policy.idle_timeout <= now {
            g.commit().await?;
            self.revoke_session(user.id, session.id, "idle", now)
                .await?;
            return Ok(None);
        }
        let needs_touch = last_seen + policy.touch_every <= now;
        let (ctx, require_2fa) = match session.active_org {
            Some(org) if !session.mfa_pending => match member_ctx(&mut g, org, user.id).await? {
                Some((ctx, require)) => (Some(ctx), require),
                None => (None, false),
            },
            _ => (None, false),
        };
        g.commit().await?;
        if needs_touch {
            let mut w = self.begin_global(true).await?;
            with_conn!(w.tx, c => {
                sqlx::query("UPDATE sessions SET last_seen_at = $2 WHERE id = $1")
                    .bind(session.id.as_uuid())
                    .bind(now)
                    .execute(c)
                    .await?;
            });
            w.commit().await?;
        }
        let needs_2fa_setup = require_2fa && !user.totp_enabled;
        Ok(Some(Principal {
            user: Some(user),
            session: Some(session),
            api_key: None,
            ctx,
            needs_2fa_setup,
        }))
    }

    /// The second factor was given: the session becomes a full one.
    pub async fn complete_mfa(&self, session: SessionId) -> Result<(), StoreError> {
        let mut g = self.begin_global(true).await?;
        with_conn!(g.tx, c => {
            sqlx::query("UPDATE sessions SET mfa_pending = $2 WHERE id = $1")
                .bind(session.as_uuid())
                .bind(false)
                .execute(c)
                .await?;
        });
        g.commit().await
    }

    /// Moves a session to another organisation the user belongs to; returns the new context.
    pub async fn switch_org(
        &self,
        user: UserId,
        session: SessionId,
        org: OrgId,
    ) -> Result<TenantCtx, StoreError> {
        let mut g = self.begin_global(true).await?;
        let Some((ctx, _)) = member_ctx(&mut g, org, user).await? else {
            return Err(StoreError::NotFound);
        };
        g.scope(Scope::None).await?;
        with_conn!(g.tx, c => {
            sqlx::query("UPDATE sessions SET active_org_id = $3 WHERE id = $1 AND user_id = $2")
                .bind(session.as_uuid())
                .bind(user.as_uuid())
                .bind(org.as_uuid())
                .execute(c)
                .await?;
        });
        g.commit().await?;
        Ok(ctx)
    }

    /// Spends a refresh token and issues the next; a second use of a spent token revokes
    /// its whole session (a stolen token and its rightful owner cannot both go on).
    pub async fn refresh_session(
        &self,
        refresh_token: &str,
        now: OffsetDateTime,
        ttl: Duration,
    ) -> Result<Refreshed, StoreError> {
        let hash = token_hash(refresh_token);
        let mut g = self.begin_global(true).await?;
        let pg = matches!(g.tx, crate::tenant::Tx::Postgres(_));
        type Row = (
            uuid::Uuid,
            Option<OffsetDateTime>,
            OffsetDateTime,
            uuid::Uuid,
            Option<uuid::Uuid>,
            Option<OffsetDateTime>,
            OffsetDateTime,
        );
        let row: Option<Row> = with_conn!(g.tx, c => {
            let sql = if pg {
                "SELECT r.session_id, r.used_at, r.expires_at, s.user_id, s.active_org_id, s.revoked_at, s.expires_at FROM refresh_tokens r JOIN sessions s ON s.id = r.session_id WHERE r.token_hash = $1 FOR UPDATE OF r, s"
            } else {
                "SELECT r.session_id, r.used_at, r.expires_at, s.user_id, s.active_org_id, s.revoked_at, s.expires_at FROM refresh_tokens r JOIN sessions s ON s.id = r.session_id WHERE r.token_hash = $1"
            };
            sqlx::query_as(sql).bind(&hash[..]).fetch_optional(c).await?
        });
        let Some((sid, used_at, expires_at, uid, org, revoked_at, _session_expires)) = row else {
            return Ok(Refreshed::Invalid);
        };
        let session = SessionId::from_uuid(sid);
        let user = UserId::from_uuid(uid);
        if used_at.is_some() {
            if revoked_at.is_none() {
                revoke_in(
                    &mut g,
                    Some(session),
                    user,
                    None,
                    "refresh_token_reused",
                    now,
                )
                .await?;
            }
            g.commit().await?;
            return Ok(Refreshed::Reused { session, user });
        }
        if revoked_at.is_some() || expires_at <= now {
            return Ok(Refreshed::Invalid);
        }
        with_conn!(g.tx, c => {
            sqlx::query("UPDATE refresh_tokens SET used_at = $2 WHERE token_hash = $1")
                .bind(&hash[..])
                .bind(now)
                .execute(&mut *c)
                .await?;
            sqlx::query("UPDATE sessions SET last_seen_at = $2, expires_at = $3 WHERE id = $1")
                .bind(sid)
                .bind(now)
                .bind(now + ttl)
                .execute(&mut *c)
                .await?;
        });
        let next = insert_refresh(&mut g, session, now, ttl).await?;
        g.commit().await?;
        Ok(Refreshed::Rotated {
            session,
            user,
            org: org.map(OrgId::from_uuid),
            refresh_token: next,
        })
    }

    /// Ends one of the user's sessions; false if it was not theirs or already over.
    pub async fn revoke_session(
        &self,
        user: UserId,
        session: SessionId,
        reason: &str,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let mut g = self.begin_global(true).await?;
        let n = revoke_in(&mut g, Some(session), user, None, reason, now).await?;
        g.commit().await?;
        Ok(n > 0)
    }

    /// Ends every session of the user but `keep`; returns how many.
    pub async fn revoke_user_sessions(
        &self,
        user: UserId,
        keep: Option<SessionId>,
        reason: &str,
        now: OffsetDateTime,
    ) -> Result<u64, StoreError> {
        let mut g = self.begin_global(true).await?;
        let n = revoke_in(&mut g, None, user, keep, reason, now).await?;
        g.commit().await?;
        Ok(n)
    }

    /// The user's live sessions, newest first.
    pub async fn list_sessions(
        &self,
        user: UserId,
        now: OffsetDateTime,
    ) -> Result<Vec<SessionSummary>, StoreError> {
        type Row = (
            uuid::Uuid,
            String,
            Option<String>,
            Option<String>,
            OffsetDateTime,
            OffsetDateTime,
            OffsetDateTime,
        );
        let mut g = self.begin_global(false).await?;
        let rows: Vec<Row> = with_conn!(g.tx, c => {
            sqlx::query_as("SELECT id, kind, ip, user_agent, created_at, last_seen_at, expires_at FROM sessions WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > $2 ORDER BY created_at DESC LIMIT 200")
                .bind(user.as_uuid())
                .bind(now)
                .fetch_all(c)
                .await?
        });
        g.commit().await?;
        rows.into_iter()
            .map(
                |(id, kind, ip, user_agent, created_at, last_seen_at, expires_at)| {
                    Ok(SessionSummary {
                        id: SessionId::from_uuid(id),
                        kind: SessionKind::parse(&kind)?,
                        ip,
                        user_agent,
                        created_at,
                        last_seen_at,
                        expires_at,
                    })
                },
            )
            .collect()
    }

    /// Issues a one-time link token for the user; earlier unused ones of the same purpose
    /// stop working.
    pub async fn create_email_token(
        &self,
        user: UserId,
        purpose: EmailTokenPurpose,
        ttl: Duration,
        now: OffsetDateTime,
    ) -> Result<SecretString, StoreError> {
        let (token, hash) = new_token(purpose.prefix());
        let mut g = self.begin_global(true).await?;
        with_conn!(g.tx, c => {
            sqlx::query("UPDATE email_tokens SET used_at = $3 WHERE user_id = $1 AND purpose = $2 AND used_at IS NULL")
                .bind(user.as_uuid())
                .bind(purpose.as_str())
                .bind(now)
                .execute(&mut *c)
                .await?;
            sqlx::query("INSERT INTO email_tokens (token_hash, purpose, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)")
                .bind(&hash[..])
                .bind(purpose.as_str())
                .bind(user.as_uuid())
                .bind(now)
                .bind(now + ttl)
                .execute(&mut *c)
                .await?;
        });
        g.commit().await?;
        Ok(token)
    }

    /// Spends a one-time link token; its user if it was valid, unused and unexpired.
    pub async fn redeem_email_token(
        &self,
        token: &str,
        purpose: EmailTokenPurpose,
        now: OffsetDateTime,
    ) -> Result<Option<UserId>, StoreError> {
        let hash = token_hash(token);
        let mut g = self.begin_global(true).await?;
        let user: Option<uuid::Uuid> = with_conn!(g.tx, c => {
            sqlx::query_scalar("UPDATE email_tokens SET used_at = $3 WHERE token_hash = $1 AND purpose = $2 AND used_at IS NULL AND expires_at > $3 RETURNING user_id")
                .bind(&hash[..])
                .bind(purpose.as_str())
                .bind(now)
                .fetch_optional(c)
                .await?
        });
        g.commit().await?;
        Ok(user.map(UserId::from_uuid))
    }
}

enum SessionLookup<'a> {
    Cookie(&'a [u8; 32]),
    Id(SessionId),
}

async fn insert_refresh(
    g: &mut GlobalTx,
    session: SessionId,
    now: OffsetDateTime,
    ttl: Duration,
) -> Result<SecretString, StoreError> {
    let (token, hash) = new_token("fdr");
    with_conn!(g.tx, c => {
        sqlx::query("INSERT INTO refresh_tokens (token_hash, session_id, created_at, expires_at) VALUES ($1, $2, $3, $4)")
            .bind(&hash[..])
            .bind(session.as_uuid())
            .bind(now)
            .bind(now + ttl)
            .execute(c)
            .await?;
    });
    Ok(token)
}

/// Revokes one session of `user` (or all but `keep`); returns how many were live.
pub(crate) async fn revoke_in(
    g: &mut GlobalTx,
    one: Option<SessionId>,
    user: UserId,
    keep: Option<SessionId>,
    reason: &str,
    now: OffsetDateTime,
) -> Result<u64, StoreError> {
    let n = with_conn!(g.tx, c => {
        match one {
            Some(s) => sqlx::query("UPDATE sessions SET revoked_at = $3, revoked_reason = $4 WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL")
                .bind(s.as_uuid())
                .bind(user.as_uuid())
                .bind(now)
                .bind(reason)
                .execute(c)
                .await?
                .rows_affected(),
            // The nil id is never a session's, so "keep nothing" needs no NULL handling.
            None => sqlx::query("UPDATE sessions SET revoked_at = $3, revoked_reason = $4 WHERE user_id = $1 AND id <> $2 AND revoked_at IS NULL")
                .bind(user.as_uuid())
                .bind(keep.map_or(uuid::Uuid::nil(), |k| k.as_uuid()))
                .bind(now)
                .bind(reason)
                .execute(c)
                .await?
                .rows_affected(),
        }
    });
    Ok(n)
}

/// The tenant context of `user` in `org` (and whether the organisation requires
/// two-factor), read inside the organisation's scope; `None` if not a member.
pub(crate) async fn member_ctx(
    g: &mut GlobalTx,
    org: OrgId,
    user: UserId,
) -> Result<Option<(TenantCtx, bool)>, StoreError> {
    g.scope(Scope::Tenant(org)).await?;
    type Row = (String, Option<String>, String, bool);
    let row: Option<Row> = with_conn!(g.tx, c => {
        sqlx::query_as("SELECT r.name, r.builtin, r.permissions, o.require_2fa FROM memberships m JOIN roles r ON r.org_id = m.org_id AND r.id = m.role_id JOIN organisations o ON o.id = m.org_id WHERE m.org_id = $1 AND m.user_id = $2")
            .bind(org.as_uuid())
            .bind(user.as_uuid())
            .fetch_optional(c)
            .await?
    });
    g.scope(Scope::None).await?;
    let Some((name, builtin, permissions, require_2fa)) = row else {
        return Ok(None);
    };
    let role = role_from_row(name, builtin.as_deref(), &permissions)?;
    Ok(Some((
        TenantCtx::new(org, Actor::User(user), role),
        require_2fa,
    )))
}
