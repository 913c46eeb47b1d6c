//! `GET /api/v1/events`: the organisation's live events over Server-Sent Events, for open
//! dashboards (the inbox, the queue boards).
//!
//! Access is `member`: the inbox and the clinic queue both listen here, and their staff hold
//! different permissions. Each event is filtered for the caller instead: inbox events need
//! `inbox.read` and the store's visibility rule (read-all, assigned to them, to one of their
//! teams, or on a number their teams serve — the facts the event carries), queue events need
//! `queue.read`, notifications go to their one user. Numbers in payloads are masked for
//! callers without `contacts.view_phone`.
//!
//! Each subscriber has a forwarding task that drains the shared bus (so it never holds the
//! bus back) into a bounded buffer of [`SUBSCRIBER_BUFFER`] frames. A client that reads too
//! slowly loses events rather than growing memory: once room frees up it gets one `resync`
//! event, telling it to refetch. Every [`KEEP_ALIVE`] the task writes a comment, checks the
//! credential again (a revoked session or an expired token ends the stream; the role and
//! teams are reloaded, so changes apply within that period) and, now and then, marks the
//! agent seen for round-robin assignment.

use crate::AppState;
use crate::auth::{Access, Authed, resolve};
use crate::error::ApiError;
use crate::routes::RouteTableBuilder;
use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;
use bytes::Bytes;
use frontdesk_domain::{ChannelId, Permission, TeamId};
use frontdesk_store::inbox::{Viewer, mask_phones_in_json};
use frontdesk_store::{Event, EventKind, StoreError, TenantCtx};
use std::collections::HashSet;
use std::convert::Infallible;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};

/// Frames one subscriber may have waiting before it is considered lagging.
pub(crate) const SUBSCRIBER_BUFFER: usize = 64;
/// How often a comment keeps the connection (and proxies) alive.
pub(crate) const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// The reconnection delay we suggest to clients (`retry:`), in milliseconds.
const RETRY_MS: u64 = 3000;
/// Mark the agent seen every this many keep-alives (presence lasts ten minutes).
const PRESENCE_EVERY: u32 = 4;

pub(crate) fn routes(b: RouteTableBuilder) -> RouteTableBuilder {
    b.json(utoipa_axum::routes!(stream_events), Access::Member)
}

/// Who listens and what they may see.
struct Audience {
    ctx: TenantCtx,
    viewer: Viewer,
    channels: HashSet<ChannelId>,
    teams: HashSet<TeamId>,
}

impl Audience {
    async fn load(state: &AppState, ctx: TenantCtx) -> Result<Self, StoreError> {
        let viewer = Viewer::of(&ctx);
        let (channels, teams) = match viewer.user {
            Some(user) if !viewer.read_all && ctx.can(Permission::InboxRead) => {
                let mut tx = state.store().begin_read(&ctx).await?;
                let v = tx.visibility_of(user).await?;
                tx.commit().await?;
                v
            }
            _ => (Vec::new(), Vec::new()),
        };
        Ok(Self {
            ctx,
            viewer,
            channels: channels.into_iter().collect(),
            teams: teams.into_iter().collect(),
        })
    }

    /// Whether this caller may see the event (the SQL visibility rule, on the event's facts).
    fn admits(&self, e: &Event) -> bool {
        if e.org_id != self.ctx.org_id() {
            return false;
        }
        if e.for_user.is_some() && e.for_user != self.viewer.user {
            return false;
        }
        match e.kind {
            EventKind::Notification => e.for_user.is_some(),
            EventKind::QueueChanged => self.ctx.can(Permission::QueueRead),
            EventKind::MessageNew
            | EventKind::MessageStatus
            | EventKind::ConversationUpdated
            | EventKind::NoteNew => {
                self.ctx.can(Permission::InboxRead)
                    && (self.viewer.read_all
                        || (self.viewer.user.is_some() && e.assignee_id == self.viewer.user)
                        || e.team_id.is_some_and(|t| self.teams.contains(&t))
                        || e.channel_id.is_some_and(|c| self.channels.contains(&c)))
            }
        }
    }

    /// The event as an SSE frame: `event: <type>` and one line of JSON with its `type`.
    fn render(&self, e: &Event) -> Bytes {
        let mut data = e.data.clone();
        if !self.viewer.view_phone {
            mask_phones_in_json(&mut data);
        }
        if let serde_json::Value::Object(m) = &mut data {
            m.insert("type".into(), e.kind.as_str().into());
        }
        frame(e.kind.as_str(), &data)
    }
}

fn frame(kind: &str, data: &serde_json::Value) -> Bytes {
    // serde_json writes no raw newlines, so the data is one `data:` line.
    Bytes::from(format!("event: {kind}\ndata: {data}\n\n"))
}

fn resync_frame() -> Bytes {
    frame(
        "resync",
        &serde_json::json!({ "type": "resync", "reason": "lagged" }),
    )
}

/// A subscriber's bounded buffer, and whether it missed frames since it last had room.
pub(crate) struct Outlet {
    tx: mpsc::Sender<Bytes>,
    lagging: bool,
}

/// The client hung up.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Gone;

impl Outlet {
    pub(crate) fn new(tx: mpsc::Sender<Bytes>) -> Self {
        Self { tx, lagging: false }
    }

    /// Queues a frame; when the buffer is full the frame is dropped and the client will get
    /// a `resync` first once there is room again.
    pub(crate) fn offer(&mut self, frame: Bytes) -> Result<(), Gone> {
        if self.lagging && !self.try_resync()? {
            return Ok(());
        }
        match self.tx.try_send(frame) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.lagging = true;
                Ok(())
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Err(Gone),
        }
    }

    /// Frames were lost upstream: tell the client as soon as there is room.
    pub(crate) fn missed(&mut self) -> Result<(), Gone> {
        self.lagging = true;
        self.try_resync().map(|_| ())
    }

    /// A keep-alive comment (skipped when the client is not reading anyway), and the pending
    /// `resync` if there is room for it now.
    pub(crate) fn keep_alive(&mut self) -> Result<(), Gone> {
        if self.lagging && !self.try_resync()? {
            return Ok(());
        }
        match self.tx.try_send(Bytes::from_static(b": keep-alive\n\n")) {
            Err(mpsc::error::TrySendError::Closed(_)) => Err(Gone),
            _ => Ok(()),
        }
    }

    fn try_resync(&mut self) -> Result<bool, Gone> {
        match self.tx.try_send(resync_frame()) {
            Ok(()) => {
                self.lagging = false;
                Ok(true)
            }
            Err(mpsc::error::TrySendError::Full(_)) => Ok(false),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(Gone),
        }
    }
}

/// Streams the organisation's events the caller may see (`text/event-stream`): each is
/// `event: <type>` with `data: <json>`; a `resync` event means some were missed.
#[utoipa::path(get, path = "/api/v1/events", tag = "events",
    responses((status = 200, description = "Server-sent events: `message.new`, `message.status`, `conversation.updated`, `note.new`, `notification`, `queue.changed`, `resync`", content_type = "text/event-stream", body = String),
        (status = 401, description = "Not signed in", body = crate::error::ErrorEnvelope)))]
async fn stream_events(
    axum::extract::State(state): axum::extract::State<AppState>,
    Authed(caller): Authed,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let ctx = caller.principal.ctx.clone().ok_or_else(|| {
        ApiError::internal(std::io::Error::other("member route without a tenant"))
    })?;
    // Subscribe before loading, so nothing committed meanwhile is missed.
    let bus = state.store().events().subscribe();
    let audience = Audience::load(&state, ctx).await?;
    touch(&state, &audience.ctx).await?;
    // Only the credential is kept, to check it again on each keep-alive.
    let mut credential = HeaderMap::new();
    for name in [header::AUTHORIZATION, header::COOKIE] {
        if let Some(v) = headers.get(&name) {
            credential.insert(name, v.clone());
        }
    }
    let (tx, rx) = mpsc::channel(SUBSCRIBER_BUFFER);
    tx.try_send(Bytes::from(format!("retry: {RETRY_MS}\n\n")))
        .expect("an empty buffer has room");
    tokio::spawn(forward(state, credential, audience, bus, Outlet::new(tx)));

    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, Infallible>(b), rx))
    });
    let mut resp = Response::new(Body::from_stream(body));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // Reverse proxies (nginx) must not hold events back in a buffer.
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(resp)
}

/// Marks a person seen (keeps "online" from expiring for round-robin assignment).
async fn touch(state: &AppState, ctx: &TenantCtx) -> Result<(), StoreError> {
    let Some(user) = ctx.user_id() else {
        return Ok(());
    };
    let mut tx = state.store().begin(ctx).await?;
    tx.touch_presence(user, state.now()).await?;
    tx.commit().await
}

/// The subscriber's task: bus → filter → bounded buffer, with keep-alives and re-checks.
async fn forward(
    state: AppState,
    credential: HeaderMap,
    mut audience: Audience,
    mut bus: broadcast::Receiver<std::sync::Arc<Event>>,
    mut outlet: Outlet,
) {
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + KEEP_ALIVE, KEEP_ALIVE);
    let mut n: u32 = 0;
    loop {
        let step = tokio::select! {
            () = outlet.tx.closed() => Err(Gone),
            r = bus.recv() => match r {
                Ok(e) if audience.admits(&e) => outlet.offer(audience.render(&e)),
                Ok(_) => Ok(()),
                Err(broadcast::error::RecvError::Lagged(_)) => outlet.missed(),
                Err(broadcast::error::RecvError::Closed) => Err(Gone),
            },
            _ = ticks.tick() => {
                n = n.wrapping_add(1);
                match recheck(&state, &credential, &audience.ctx, n).await {
                    Some(a) => {
                        audience = a;
                        outlet.keep_alive()
                    }
                    None => Err(Gone),
                }
            }
        };
        if step.is_err() {
            return;
        }
    }
}

/// The audience again if the credential still authenticates the same person in the same
/// organisation (with their current role and teams); `None` ends the stream.
async fn recheck(
    state: &AppState,
    credential: &HeaderMap,
    was: &TenantCtx,
    tick: u32,
) -> Option<Audience> {
    let caller = resolve(state, credential).await.ok().flatten()?;
    let ctx = caller.principal.ctx?;
    if ctx.org_id() != was.org_id() || ctx.user_id() != was.user_id() {
        return None;
    }
    if tick.is_multiple_of(PRESENCE_EVERY)
        && let Err(e) = touch(state, &ctx).await
    {
        tracing::warn!(error = %e, "could not mark the agent seen");
    }
    match Audience::load(state, ctx).await {
        Ok(a) => Some(a),
        Err(e) => {
            tracing::warn!(error = %e, "could not reload an event subscriber's visibility");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(rx: &mut mpsc::Receiver<Bytes>) -> Vec<String> {
        let mut out = Vec::new();
        while let Ok(b) = rx.try_recv() {
            out.push(String::from_utf8(b.to_vec()).unwrap());
        }
        out
    }

    #[test]
    fn a_slow_subscriber_loses_frames_then_gets_one_resync_never_more_memory() {
        let (tx, mut rx) = mpsc::channel(3);
        let mut o = Outlet::new(tx);
        for i in 0..10 {
            o.offer(Bytes::from(format!("e{i}"))).unwrap();
        }
        // Only the buffer's worth is held; the rest was dropped.
        assert_eq!(drain(&mut rx), vec!["e0", "e1", "e2"]);
        o.offer(Bytes::from_static(b"e10")).unwrap();
        let got = drain(&mut rx);
        assert_eq!(got.len(), 2);
        assert!(got[0].starts_with("event: resync\ndata: "), "{got:?}");
        assert_eq!(got[1], "e10");
        // Back in step: no further resync.
        o.offer(Bytes::from_static(b"e11")).unwrap();
        assert_eq!(drain(&mut rx), vec!["e11"]);
    }

    #[test]
    fn missed_upstream_events_resync_and_keep_alives_carry_a_pending_resync() {
        let (tx, mut rx) = mpsc::channel(1);
        let mut o = Outlet::new(tx);
        o.offer(Bytes::from_static(b"e0")).unwrap();
        o.missed().unwrap(); // no room: the resync waits
        assert_eq!(drain(&mut rx), vec!["e0"]);
        o.keep_alive().unwrap();
        let got = drain(&mut rx);
        assert!(got[0].starts_with("event: resync"), "{got:?}");
        o.keep_alive().unwrap();
        assert_eq!(drain(&mut rx), vec![": keep-alive\n\n"]);
        drop(rx);
        assert_eq!(o.offer(Bytes::from_static(b"x")), Err(Gone));
    }
}
