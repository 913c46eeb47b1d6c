//! Sign-in and account flows shared by the JSON API and the web pages: password checks
//! with throttling, the second factor, opening sessions, one-time links by email, and the
//! audit events they leave.

use crate::AppState;
use crate::auth::{password, totp};
use crate::error::ApiError;
use frontdesk_domain::{Email, OrgId, UserId};
use frontdesk_store::{
    AuditRecord, EmailTokenPurpose, IssuedSession, NewSession, SessionKind, ThrottleScope, User,
};
use secrecy::SecretString;
use std::net::IpAddr;

/// The answer to a password sign-in.
pub(crate) enum PasswordCheck {
    Ok(User),
    /// Wrong email or password: one answer for both, so accounts cannot be probed.
    Refused,
    /// Too many failures for this account or address.
    Locked {
        retry_after_secs: u64,
    },
}

/// Whole seconds until `until` (at least one), for `Retry-After`.
fn secs_until(until: time::OffsetDateTime, now: time::OffsetDateTime) -> u64 {
    (until - now).whole_seconds().max(1) as u64
}

/// The uniform refusal of a sign-in.
pub(crate) fn login_refused() -> ApiError {
    ApiError::Unauthorized
}

fn throttle_keys(email: &str, ip: Option<IpAddr>) -> [(ThrottleScope, String); 2] {
    [
        (ThrottleScope::Account, email.trim().to_lowercase()),
        (
            ThrottleScope::Ip,
            ip.map(|i| i.to_string())
                .unwrap_or_else(|| "unknown".into()),
        ),
    ]
}

/// Checks an email and password, counting failures per account and per address.
pub(crate) async fn check_password(
    state: &AppState,
    email: &str,
    password_given: SecretString,
    ip: Option<IpAddr>,
) -> Result<PasswordCheck, ApiError> {
    let now = state.now();
    let store = state.store();
    for (scope, key) in throttle_keys(email, ip) {
        if let Some(until) = store.throttle_locked_until(scope, &key, now).await? {
            let secs = secs_until(until, now);
            return Ok(PasswordCheck::Locked {
                retry_after_secs: secs,
            });
        }
    }
    let creds = match Email::parse(email) {
        Ok(e) => store.credentials_by_email(&e).await?,
        Err(_) => None,
    };
    // The hash is checked even for an unknown account, so timing does not tell.
    let stored = creds
        .as_ref()
        .and_then(|c| c.password_hash.as_ref())
        .map(|h| secrecy::ExposeSecret::expose_secret(h).to_owned())
        .unwrap_or_else(|| password::dummy_hash().to_owned());
    let pw = password_given.clone();
    let verified = tokio::task::spawn_blocking(move || password::verify(&pw, &stored))
        .await
        .map_err(ApiError::internal)?;
    let known = creds.as_ref().is_some_and(|c| c.password_hash.is_some());
    if !known || verified == password::Verified::No {
        let mut locked = None;
        for (scope, key) in throttle_keys(email, ip) {
            let policy = match scope {
                ThrottleScope::Account => state.auth().account_throttle,
                ThrottleScope::Ip => state.auth().ip_throttle,
            };
            if let Some(until) = store.throttle_failure(scope, &key, policy, now).await? {
                locked = Some(until);
            }
        }
        if let Some(c) = &creds {
            store
                .record_user_event(
                    c.user.id,
                    false,
                    AuditRecord::new(
                        "auth.login_failed",
                        "user",
                        c.user.id.to_string(),
                        serde_json::json!({ "ip": ip }),
                    ),
                )
                .await?;
        }
        tracing::info!(known_account = creds.is_some(), "sign-in refused");
        if let Some(until) = locked {
            let secs = secs_until(until, now);
            return Ok(PasswordCheck::Locked {
                retry_after_secs: secs,
            });
        }
        return Ok(PasswordCheck::Refused);
    }
    let creds = creds.expect("known account");
    store
        .throttle_reset(ThrottleScope::Account, &throttle_keys(email, ip)[0].1)
        .await?;
    if verified == password::Verified::YesRehash {
        let fresh = tokio::task::spawn_blocking(move || password::hash(&password_given))
            .await
            .map_err(ApiError::internal)?;
        store.set_password_hash(creds.user.id, &fresh, now).await?;
        tracing::info!("password hash upgraded to argon2id");
    }
    Ok(PasswordCheck::Ok(creds.user))
}

/// Checks a TOTP code of the user's enabled second factor (a used code cannot be replayed).
async fn check_totp(state: &AppState, user: UserId, code: &str) -> Result<bool, ApiError> {
    let Some(t) = state.store().totp_state(user).await? else {
        return Ok(false);
    };
    if !t.enabled {
        return Ok(false);
    }
    let Some(step) = totp::matching_step(&t.secret, code, state.now().unix_timestamp()) else {
        return Ok(false);
    };
    Ok(state.store().accept_totp_step(user, step).await?)
}

/// The answer to a second-factor code at sign-in.
pub(crate) enum SecondFactor {
    Ok,
    Refused,
    Locked { retry_after_secs: u64 },
}

/// Checks the code that completes a sign-in. Wrong codes are counted under a key of their
/// own (a correct password does not reset it), so knowing the password does not let anyone
/// try all million codes; every failure is audited. Shared by the API and the sign-in page.
pub(crate) async fn second_factor(
    state: &AppState,
    user: &User,
    code: &str,
    ip: Option<IpAddr>,
) -> Result<SecondFactor, ApiError> {
    let now = state.now();
    let key = format!("2fa:{}", user.email);
    if let Some(until) = state
        .store()
        .throttle_locked_until(ThrottleScope::Account, &key, now)
        .await?
    {
        return Ok(SecondFactor::Locked {
            retry_after_secs: secs_until(until, now),
        });
    }
    if check_totp(state, user.id, code).await? {
        state
            .store()
            .throttle_reset(ThrottleScope::Account, &key)
            .await?;
        return Ok(SecondFactor::Ok);
    }
    let locked = state
        .store()
        .throttle_failure(
            ThrottleScope::Account,
            &key,
            state.auth().account_throttle,
            now,
        )
        .await?;
    state
        .store()
        .record_user_event(
            user.id,
            false,
            AuditRecord::new(
                "auth.totp_failed",
                "user",
                user.id.to_string(),
                serde_json::json!({ "ip": ip }),
            ),
        )
        .await?;
    Ok(match locked {
        Some(until) => SecondFactor::Locked {
            retry_after_secs: secs_until(until, now),
        },
        None => SecondFactor::Refused,
    })
}

/// The organisation a new session starts in: the one asked for (if a member), else the
/// user's first.
pub(crate) async fn initial_org(
    state: &AppState,
    user: UserId,
    asked: Option<OrgId>,
) -> Result<Option<OrgId>, ApiError> {
    let orgs = state.store().memberships_of(user).await?;
    if let Some(a) = asked {
        return if orgs.iter().any(|o| o.org_id == a) {
            Ok(Some(a))
        } else {
            Err(ApiError::NotFound)
        };
    }
    Ok(orgs.first().map(|o| o.org_id))
}

/// Where a sign-in comes from.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Client<'a> {
    pub ip: Option<IpAddr>,
    pub user_agent: Option<&'a str>,
}

impl<'a> Client<'a> {
    pub(crate) fn new(ip: Option<IpAddr>, headers: &'a axum::http::HeaderMap) -> Self {
        let user_agent = headers
            .get(axum::http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok());
        Self { ip, user_agent }
    }
}

/// Opens a session after a successful first factor and records the sign-in.
pub(crate) async fn open_session(
    state: &AppState,
    user: &User,
    kind: SessionKind,
    org: Option<OrgId>,
    mfa_pending: bool,
    client: Client<'_>,
    method: &str,
) -> Result<IssuedSession, ApiError> {
    let (ip, user_agent) = (client.ip, client.user_agent);
    let ip_text = ip.map(|i| i.to_string());
    let ttl = match kind {
        SessionKind::Web => state.auth().web_session_ttl,
        SessionKind::Api => state.auth().refresh_token_ttl,
    };
    let issued = state
        .store()
        .create_session(NewSession {
            user: user.id,
            org,
            kind,
            mfa_pending,
            ip: ip_text.as_deref(),
            user_agent,
            ttl,
            now: state.now(),
        })
        .await?;
    let action = if mfa_pending {
        "auth.password_ok_awaiting_2fa"
    } else {
        "auth.login"
    };
    state
        .store()
        .record_user_event(
            user.id,
            true,
            AuditRecord::new(
                action,
                "session",
                issued.id.to_string(),
                serde_json::json!({ "method": method, "kind": kind, "ip": ip }),
            ),
        )
        .await?;
    Ok(issued)
}

/// Sends a one-time sign-in or reset link if the email belongs to an account. The caller
/// answers the same either way.
pub(crate) async fn send_email_link(
    state: &AppState,
    email: &str,
    purpose: EmailTokenPurpose,
    ip: Option<IpAddr>,
) -> Result<(), ApiError> {
    let Ok(email) = Email::parse(email) else {
        return Ok(());
    };
    // Throttled like sign-ins: one address cannot flood an inbox or probe accounts.
    let now = state.now();
    for (scope, key) in throttle_keys(email.as_str(), ip) {
        if state
            .store()
            .throttle_locked_until(scope, &key, now)
            .await?
            .is_some()
        {
            return Ok(());
        }
    }
    let Some(creds) = state.store().credentials_by_email(&email).await? else {
        return Ok(());
    };
    let (ttl, path, subject, what) = match purpose {
        EmailTokenPurpose::MagicLink => (
            state.auth().magic_link_ttl,
            "/auth/magic",
            "Your Frontdesk sign-in link",
            "sign in",
        ),
        EmailTokenPurpose::PasswordReset => (
            state.auth().password_reset_ttl,
            "/password/reset",
            "Reset your Frontdesk password",
            "choose a new password",
        ),
    };
    let token = state
        .store()
        .create_email_token(creds.user.id, purpose, ttl, now)
        .await?;
    let mut link = state
        .auth()
        .base_url
        .join(path)
        .map_err(ApiError::internal)?;
    link.query_pairs_mut()
        .append_pair("token", secrecy::ExposeSecret::expose_secret(&token));
    let body = format!(
        "Hello {name},\n\nUse this link to {what} (it works once, for {mins} minutes):\n\n{link}\n\nIf you did not ask for it, ignore this mail; nothing changes.\n",
        name = creds.user.name,
        mins = ttl.whole_minutes(),
    );
    state
        .mailer()
        .send_later(creds.user.email.clone(), subject.into(), body);
    let action = match purpose {
        EmailTokenPurpose::MagicLink => "auth.magic_link_sent",
        EmailTokenPurpose::PasswordReset => "auth.password_reset_requested",
    };
    state
        .store()
        .record_user_event(
            creds.user.id,
            false,
            AuditRecord::new(
                action,
                "user",
                creds.user.id.to_string(),
                serde_json::json!({ "ip": ip }),
            ),
        )
        .await?;
    Ok(())
}

/// Validates and hashes a new password for `user_email`/`user_name`.
pub(crate) async fn new_password_hash(
    pw: SecretString,
    personal: &[&str],
) -> Result<String, ApiError> {
    password::check_policy(secrecy::ExposeSecret::expose_secret(&pw), personal)
        .map_err(|e| ApiError::unprocessable("weak_password", e.to_string()))?;
    tokio::task::spawn_blocking(move || password::hash(&pw))
        .await
        .map_err(ApiError::internal)
}

/// Sets a new password: every other session of the user ends, and it is audited.
pub(crate) async fn change_password(
    state: &AppState,
    user: &User,
    new_pw: SecretString,
    keep: Option<frontdesk_domain::SessionId>,
) -> Result<(), ApiError> {
    let hash = new_password_hash(new_pw, &[&user.email, &user.name]).await?;
    let now = state.now();
    state.store().set_password_hash(user.id, &hash, now).await?;
    let ended = state
        .store()
        .revoke_user_sessions(user.id, keep, "password_changed", now)
        .await?;
    state
        .store()
        .record_user_event(
            user.id,
            true,
            AuditRecord::new(
                "auth.password_changed",
                "user",
                user.id.to_string(),
                serde_json::json!({ "sessions_ended": ended }),
            ),
        )
        .await?;
    state.mailer().send_later(
        user.email.clone(),
        "Your Frontdesk password was changed".into(),
        format!("Hello {},\n\nThe password of your Frontdesk account was just changed, and your other sessions were signed out.\nIf this was not you, reset your password now and tell your administrator.\n", user.name),
    );
    Ok(())
}

/// Ends one of the user's sessions and records it; false if it was not theirs or already over.
pub(crate) async fn end_session(
    state: &AppState,
    user: UserId,
    session: frontdesk_domain::SessionId,
    reason: &str,
    action: &str,
) -> Result<bool, ApiError> {
    if !state
        .store()
        .revoke_session(user, session, reason, state.now())
        .await?
    {
        return Ok(false);
    }
    state
        .store()
        .record_user_event(
            user,
            true,
            AuditRecord::new(
                action,
                "session",
                session.to_string(),
                serde_json::json!({}),
            ),
        )
        .await?;
    Ok(true)
}

/// Ends every session of the user but `keep`, and records it; returns how many ended.
pub(crate) async fn end_other_sessions(
    state: &AppState,
    user: UserId,
    keep: Option<frontdesk_domain::SessionId>,
) -> Result<u64, ApiError> {
    let n = state
        .store()
        .revoke_user_sessions(user, keep, "revoked_by_user", state.now())
        .await?;
    state
        .store()
        .record_user_event(
            user,
            true,
            AuditRecord::new(
                "auth.other_sessions_revoked",
                "user",
                user.to_string(),
                serde_json::json!({ "count": n }),
            ),
        )
        .await?;
    Ok(n)
}
