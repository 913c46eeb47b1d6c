//! Clinic queues: configuration, the staff board and its actions, the waiting-room screen,
//! reports and the join QR code. Each change and the patient messages it causes are one
//! transaction (messages through the outbox). Doctors (may call, may not manage) see only
//! their own queues: the store enforces it, other queues answer 404.
//!
//! Live updates: every change announces `queue.changed` for the queues it touched on its
//! transaction (`TenantTx::announce_queue_changed`), so the event reaches the boards
//! listening on `GET /api/v1/events` exactly when the change commits.

use super::{ApiJson, path_id};
use crate::AppState;
use crate::auth::{Access, Tenant};
use crate::error::{ApiError, ErrorEnvelope};
use crate::routes::RouteTableBuilder;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use frontdesk_domain::queue::{QueueTexts, WeeklyHours};
use frontdesk_domain::{ChannelId, E164, Permission, QueueId, QueueTokenId, UserId};
use frontdesk_store::{
    AuditEvent, Board, DayReport, JoinOutcome, QueueSettings, QueueTemplates, QueueView, Screen,
    TenantCtx, TokenView,
};
use frontdesk_worker::queue as patients;
use serde::{Deserialize, Serialize};
use time::Date;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::routes;

pub(crate) fn routes(b: RouteTableBuilder) -> RouteTableBuilder {
    use Permission::*;
    b.json(routes!(list_queues), Access::Perm(QueueRead))
        .json(routes!(create_queue), Access::Perm(QueueConfigure))
        .json(routes!(update_queue), Access::Perm(QueueConfigure))
        .json(routes!(get_board), Access::Perm(QueueRead))
        .json(routes!(get_screen), Access::Perm(QueueRead))
        .json(routes!(get_qr), Access::Perm(QueueRead))
        .json(routes!(pause_queue), Access::Perm(QueueManage))
        .json(routes!(check_in), Access::Perm(QueueManage))
        .json(routes!(call_next), Access::Perm(QueueCallNext))
        .json(routes!(get_token), Access::Perm(QueueRead))
        .json(routes!(consult_action), Access::Perm(QueueCallNext))
        .json(routes!(manage_action), Access::Perm(QueueManage))
        .json(routes!(get_reports), Access::Perm(QueueRead))
        .json(routes!(export_reports), Access::Perm(QueueExport))
        .json(routes!(set_time_zone), Access::Perm(QueueConfigure))
}

/// A queue's configuration.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QueueBody {
    pub channel_id: String,
    pub name: String,
    /// Join keywords (case and spacing do not matter), unique per number.
    pub keywords: Vec<String>,
    /// 1–4 capital letters: tokens read `A-001`.
    pub token_prefix: String,
    pub daily_cap: i32,
    /// Tell waiting patients their position when it moved by this many places (0: never).
    pub position_step: i32,
    /// Opening spans per weekday in the organisation's time zone; absent: always open.
    pub hours: Option<WeeklyHours>,
    /// Closed days, `YYYY-MM-DD`.
    #[serde(default)]
    pub holidays: Vec<String>,
    /// Texts per language code, per message (`joined`, `come_in`, …).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub texts: QueueTexts,
    /// Approved templates per message, for patients outside the 24-hour window.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub templates: QueueTemplates,
    /// Users assigned as the queue's doctors.
    #[serde(default)]
    pub doctors: Vec<String>,
}

fn parse_day(s: &str) -> Result<Date, ApiError> {
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    Date::parse(s, &fmt)
        .map_err(|_| ApiError::unprocessable("invalid", format!("{s:?} is not a YYYY-MM-DD date")))
}

impl QueueBody {
    pub(crate) fn settings(self) -> Result<QueueSettings, ApiError> {
        let invalid = |m: String| ApiError::unprocessable("invalid", m);
        let channel_id = path_id(&self.channel_id, ChannelId::parse)?;
        if self.holidays.len() > 366 || self.doctors.len() > 50 || self.keywords.len() > 10 {
            return Err(invalid(
                "at most 366 holidays, 50 doctors and 10 keywords".into(),
            ));
        }
        Ok(QueueSettings {
            channel_id,
            name: self.name,
            keywords: self.keywords,
            token_prefix: self.token_prefix,
            daily_cap: self.daily_cap,
            position_step: self.position_step,
            hours: self.hours,
            holidays: self
                .holidays
                .iter()
                .map(|d| parse_day(d))
                .collect::<Result<_, _>>()?,
            texts: self.texts,
            templates: self.templates,
            doctors: self
                .doctors
                .iter()
                .map(|d| {
                    UserId::parse(d).map_err(|_| invalid(format!("doctor {d:?} is not a user id")))
                })
                .collect::<Result<_, _>>()?,
        })
    }
}

/// The queues the caller may see (doctors: their own).
#[utoipa::path(get, path = "/api/v1/queues", tag = "queue",
    responses((status = 200, description = "Queues by name", body = Vec<QueueView>)))]
async fn list_queues(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
) -> Result<Json<Vec<QueueView>>, ApiError> {
    let mut tx = state.store().begin_read(&ctx).await?;
    let qs = tx.queues().await?;
    tx.commit().await?;
    Ok(Json(qs))
}

/// Creates a queue on a number.
#[utoipa::path(post, path = "/api/v1/queues", tag = "queue", request_body = QueueBody,
    responses((status = 201, description = "Created", body = QueueView),
        (status = 404, description = "No such channel here", body = ErrorEnvelope),
        (status = 409, description = "Name or keyword taken", body = ErrorEnvelope),
        (status = 422, description = "Invalid configuration", body = ErrorEnvelope)))]
async fn create_queue(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    ApiJson(body): ApiJson<QueueBody>,
) -> Result<(StatusCode, Json<QueueView>), ApiError> {
    let q = save_queue(&state, &ctx, None, body.settings()?).await?;
    Ok((StatusCode::CREATED, Json(q)))
}

/// Replaces a queue's configuration.
#[utoipa::path(put, path = "/api/v1/queues/{queue_id}", tag = "queue", request_body = QueueBody,
    params(("queue_id" = String, Path, description = "Queue id")),
    responses((status = 200, description = "Updated", body = QueueView),
        (status = 404, description = "No such queue or channel here", body = ErrorEnvelope),
        (status = 409, description = "Name or keyword taken", body = ErrorEnvelope),
        (status = 422, description = "Invalid configuration", body = ErrorEnvelope)))]
async fn update_queue(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<QueueBody>,
) -> Result<Json<QueueView>, ApiError> {
    let id = path_id(&id, QueueId::parse)?;
    let q = save_queue(&state, &ctx, Some(id), body.settings()?).await?;
    Ok(Json(q))
}

/// Creates a queue (`id` absent) or replaces its configuration; audited by the store.
pub(crate) async fn save_queue(
    state: &AppState,
    ctx: &TenantCtx,
    id: Option<QueueId>,
    s: QueueSettings,
) -> Result<QueueView, ApiError> {
    let mut tx = state.store().begin(ctx).await?;
    let q = match id {
        None => tx.create_queue(&s).await?,
        Some(id) => tx.update_queue(id, &s).await?,
    };
    tx.announce_queue_changed(q.id);
    tx.commit().await?;
    Ok(q)
}

/// Everything the staff board shows: the queue, who is with the doctor, the waiting line,
/// today's finished tokens, counts and the consultation average.
#[utoipa::path(get, path = "/api/v1/queues/{queue_id}/board", tag = "queue",
    params(("queue_id" = String, Path, description = "Queue id")),
    responses((status = 200, description = "The board", body = Board),
        (status = 404, description = "No such queue here (or not the doctor's)", body = ErrorEnvelope)))]
async fn get_board(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    Path(id): Path<String>,
) -> Result<Json<Board>, ApiError> {
    let id = path_id(&id, QueueId::parse)?;
    let mut tx = state.store().begin_read(&ctx).await?;
    let b = tx.board(id, state.now()).await?;
    tx.commit().await?;
    Ok(Json(b))
}

/// What the waiting-room screen shows: token labels and counts, no names or numbers.
#[utoipa::path(get, path = "/api/v1/queues/{queue_id}/screen", tag = "queue",
    params(("queue_id" = String, Path, description = "Queue id")),
    responses((status = 200, description = "The screen", body = Screen),
        (status = 404, description = "No such queue here", body = ErrorEnvelope)))]
async fn get_screen(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    Path(id): Path<String>,
) -> Result<Json<Screen>, ApiError> {
    let id = path_id(&id, QueueId::parse)?;
    let mut tx = state.store().begin_read(&ctx).await?;
    let s = tx.screen(id).await?;
    tx.commit().await?;
    Ok(Json(s))
}

/// A wa.me link that opens WhatsApp with the queue's keyword typed in, and its QR code.
#[derive(Serialize, ToSchema)]
pub struct QueueQr {
    pub keyword: String,
    pub link: String,
    /// An SVG document (no script).
    pub svg: String,
}

/// The join link and QR code of a queue (its first keyword).
#[utoipa::path(get, path = "/api/v1/queues/{queue_id}/qr", tag = "queue",
    params(("queue_id" = String, Path, description = "Queue id")),
    responses((status = 200, description = "Link and QR code", body = QueueQr),
        (status = 404, description = "No such queue here", body = ErrorEnvelope)))]
async fn get_qr(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    Path(id): Path<String>,
) -> Result<Json<QueueQr>, ApiError> {
    let id = path_id(&id, QueueId::parse)?;
    Ok(Json(join_qr(&state, &ctx, id).await?))
}

/// The join link (first keyword) and its QR code.
pub(crate) async fn join_qr(
    state: &AppState,
    ctx: &TenantCtx,
    id: QueueId,
) -> Result<QueueQr, ApiError> {
    let mut tx = state.store().begin_read(ctx).await?;
    let q = tx.queue(id).await?;
    let channel = tx.channel(q.channel_id).await?;
    tx.commit().await?;
    let keyword = q.keywords.first().cloned().unwrap_or_default();
    let digits: String = channel
        .display_number
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    let text: String = url::form_urlencoded::byte_serialize(keyword.as_bytes()).collect();
    let link = format!("https://wa.me/{digits}?text={}", text.replace('+', "%20"));
    let svg = crate::auth::totp::qr_svg(&link);
    Ok(QueueQr { keyword, link, svg })
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PauseBody {
    pub paused: bool,
    /// Told to waiting patients and to those who try to join (at most 500 characters).
    #[serde(default)]
    pub message: String,
}

/// Pauses a queue (waiting patients get the message) or resumes it.
#[utoipa::path(post, path = "/api/v1/queues/{queue_id}/pause", tag = "queue", request_body = PauseBody,
    params(("queue_id" = String, Path, description = "Queue id")),
    responses((status = 200, description = "The queue", body = QueueView),
        (status = 404, description = "No such queue here", body = ErrorEnvelope),
        (status = 422, description = "Message too long", body = ErrorEnvelope)))]
async fn pause_queue(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<PauseBody>,
) -> Result<Json<QueueView>, ApiError> {
    let id = path_id(&id, QueueId::parse)?;
    Ok(Json(
        pause_or_resume(&state, &ctx, id, body.paused, &body.message).await?,
    ))
}

/// Pauses (waiting patients get the message) or resumes a queue.
pub(crate) async fn pause_or_resume(
    state: &AppState,
    ctx: &TenantCtx,
    id: QueueId,
    paused: bool,
    message: &str,
) -> Result<QueueView, ApiError> {
    let now = state.now();
    let mut tx = state.store().begin(ctx).await?;
    let q = tx.set_queue_paused(id, paused, message).await?;
    if paused {
        patients::notify_paused(&mut tx, id, now).await?;
    }
    tx.announce_queue_changed(id);
    tx.commit().await?;
    Ok(q)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckInBody {
    /// The walk-in's name (1–80 characters), shown on the board only.
    pub name: String,
    /// Their phone number, if they have one: they then get the WhatsApp messages too.
    pub phone: Option<String>,
    pub language: Option<String>,
}

/// What a check-in or a join did.
#[derive(Serialize, ToSchema)]
pub struct JoinAnswer {
    /// `joined`, `already_in_queue`, `paused`, `closed` or `cap_reached`.
    pub outcome: &'static str,
    pub token: Option<TokenView>,
}

/// Checks a walk-in in (hours do not apply at the desk; pause and the daily cap do).
#[utoipa::path(post, path = "/api/v1/queues/{queue_id}/check-in", tag = "queue", request_body = CheckInBody,
    params(("queue_id" = String, Path, description = "Queue id")),
    responses((status = 201, description = "Checked in", body = JoinAnswer),
        (status = 200, description = "Not checked in: already in the queue, paused or full", body = JoinAnswer),
        (status = 404, description = "No such queue here", body = ErrorEnvelope),
        (status = 422, description = "Invalid name or phone", body = ErrorEnvelope)))]
async fn check_in(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<CheckInBody>,
) -> Result<(StatusCode, Json<JoinAnswer>), ApiError> {
    let id = path_id(&id, QueueId::parse)?;
    let (status, answer) = check_in_walk_in(&state, &ctx, id, &body).await?;
    Ok((status, Json(answer)))
}

/// Checks a walk-in in; the line hears of it when they joined.
pub(crate) async fn check_in_walk_in(
    state: &AppState,
    ctx: &TenantCtx,
    id: QueueId,
    body: &CheckInBody,
) -> Result<(StatusCode, JoinAnswer), ApiError> {
    let phone = body
        .phone
        .as_deref()
        .map(E164::parse)
        .transpose()
        .map_err(|e| ApiError::unprocessable("invalid", e.to_string()))?;
    if body.language.as_deref().is_some_and(|l| l.len() > 10) {
        return Err(ApiError::unprocessable(
            "invalid",
            "language is a short code like `en`",
        ));
    }
    let now = state.now();
    let mut tx = state.store().begin(ctx).await?;
    // Unless the desk names one, the language of the number's contact, else English.
    let lang = match (body.language.clone(), &phone) {
        (Some(l), _) => l,
        (None, Some(p)) => {
            let who = frontdesk_store::CustomerIdentity {
                phone: Some(p.clone()),
                ..Default::default()
            };
            match tx.find_contact(&who).await? {
                Some(c) => tx.contact_language(c).await?,
                None => None,
            }
            .unwrap_or_else(|| "en".into())
        }
        (None, None) => "en".into(),
    };
    let out = tx
        .check_in(id, &body.name, phone.as_ref(), &lang, now)
        .await?;
    let answer = match out {
        JoinOutcome::Joined(t) => {
            patients::notify_line(&mut tx, id, now).await?;
            tx.announce_queue_changed(id);
            (
                StatusCode::CREATED,
                JoinAnswer {
                    outcome: "joined",
                    token: Some(t),
                },
            )
        }
        JoinOutcome::AlreadyIn(t) => (
            StatusCode::OK,
            JoinAnswer {
                outcome: "already_in_queue",
                token: Some(t),
            },
        ),
        JoinOutcome::Paused(_) => (
            StatusCode::OK,
            JoinAnswer {
                outcome: "paused",
                token: None,
            },
        ),
        JoinOutcome::Closed(_) => (
            StatusCode::OK,
            JoinAnswer {
                outcome: "closed",
                token: None,
            },
        ),
        JoinOutcome::CapReached => (
            StatusCode::OK,
            JoinAnswer {
                outcome: "cap_reached",
                token: None,
            },
        ),
    };
    tx.commit().await?;
    Ok(answer)
}

/// Calls the next waiting patient: they are told to come in, the line behind them moves.
/// Two callers at the same instant never get the same patient.
#[utoipa::path(post, path = "/api/v1/queues/{queue_id}/call-next", tag = "queue",
    params(("queue_id" = String, Path, description = "Queue id")),
    responses((status = 200, description = "The called token", body = TokenView),
        (status = 204, description = "Nobody is waiting"),
        (status = 404, description = "No such queue here (or not the doctor's)", body = ErrorEnvelope)))]
async fn call_next(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = path_id(&id, QueueId::parse)?;
    Ok(match call_next_patient(&state, &ctx, id).await? {
        Some((t, _)) => Json(t).into_response(),
        None => StatusCode::NO_CONTENT.into_response(),
    })
}

/// Calls the next waiting patient (none: nobody waits) and tells them to come in; with
/// whether they could be told over WhatsApp (see `patients::notify_called`).
pub(crate) async fn call_next_patient(
    state: &AppState,
    ctx: &TenantCtx,
    id: QueueId,
) -> Result<Option<(TokenView, bool)>, ApiError> {
    let now = state.now();
    let mut tx = state.store().begin(ctx).await?;
    let Some(t) = tx.call_next(id, now).await? else {
        tx.commit().await?;
        return Ok(None);
    };
    let told = patients::notify_called(&mut tx, &t, now).await?;
    tx.announce_queue_changed(id);
    tx.commit().await?;
    Ok(Some((t, told)))
}

/// A token and its history (its audit events, oldest first).
#[derive(Serialize, ToSchema)]
pub struct TokenDetail {
    pub token: TokenView,
    pub history: Vec<AuditEvent>,
}

/// One token with its history, for the board.
#[utoipa::path(get, path = "/api/v1/queue-tokens/{token_id}", tag = "queue",
    params(("token_id" = String, Path, description = "Token id")),
    responses((status = 200, description = "The token", body = TokenDetail),
        (status = 404, description = "No such token here", body = ErrorEnvelope)))]
async fn get_token(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    Path(id): Path<String>,
) -> Result<Json<TokenDetail>, ApiError> {
    let id = path_id(&id, QueueTokenId::parse)?;
    let mut tx = state.store().begin_read(&ctx).await?;
    let token = tx.token(id).await?;
    let history = tx.token_history(id).await?;
    tx.commit().await?;
    Ok(Json(TokenDetail { token, history }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsultBody {
    /// `recall` (call again), `serve` (came in) or `complete`.
    pub action: String,
}

/// The doctor's actions on a called patient: recall, serve, complete.
#[utoipa::path(post, path = "/api/v1/queue-tokens/{token_id}/consult", tag = "queue", request_body = ConsultBody,
    params(("token_id" = String, Path, description = "Token id")),
    responses((status = 200, description = "The token", body = TokenView),
        (status = 404, description = "No such token here", body = ErrorEnvelope),
        (status = 409, description = "Not possible in the token's state", body = ErrorEnvelope),
        (status = 422, description = "Unknown action", body = ErrorEnvelope)))]
async fn consult_action(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ConsultBody>,
) -> Result<Json<TokenView>, ApiError> {
    let id = path_id(&id, QueueTokenId::parse)?;
    Ok(Json(consult(&state, &ctx, id, &body.action).await?.0))
}

/// A doctor's action on a token: `recall`, `serve` or `complete`; with whether a recalled
/// patient could be told over WhatsApp (always true for the others).
pub(crate) async fn consult(
    state: &AppState,
    ctx: &TenantCtx,
    id: QueueTokenId,
    action: &str,
) -> Result<(TokenView, bool), ApiError> {
    let now = state.now();
    let mut tx = state.store().begin(ctx).await?;
    let (t, told) = match action {
        "recall" => {
            let t = tx.recall(id, now).await?;
            let told = patients::notify_called(&mut tx, &t, now).await?;
            (t, told)
        }
        "serve" => (tx.start_serving(id, now).await?, true),
        "complete" => (tx.complete(id, now).await?, true),
        _ => {
            return Err(ApiError::unprocessable(
                "invalid",
                "action is recall, serve or complete",
            ));
        }
    };
    tx.announce_queue_changed(t.queue_id);
    tx.commit().await?;
    Ok((t, told))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ManageBody {
    /// `no_show`, `skip`, `cancel`, `reorder` (with `position`) or `move` (with `queue_id`).
    pub action: String,
    /// For reorder: the new place in the waiting line, 1 is next.
    pub position: Option<i64>,
    /// For move: the queue to move to.
    pub queue_id: Option<String>,
}

/// The desk's actions on a token: no-show, skip, cancel, reorder, move to another queue.
#[utoipa::path(post, path = "/api/v1/queue-tokens/{token_id}/manage", tag = "queue", request_body = ManageBody,
    params(("token_id" = String, Path, description = "Token id")),
    responses((status = 200, description = "The token", body = TokenView),
        (status = 404, description = "No such token or queue here", body = ErrorEnvelope),
        (status = 409, description = "Not possible in the token's state", body = ErrorEnvelope),
        (status = 422, description = "Unknown action or missing field", body = ErrorEnvelope)))]
async fn manage_action(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ManageBody>,
) -> Result<Json<TokenView>, ApiError> {
    let id = path_id(&id, QueueTokenId::parse)?;
    Ok(Json(manage(&state, &ctx, id, &body).await?))
}

/// The desk's action on a token: `no_show`, `skip`, `cancel`, `reorder` or `move`.
pub(crate) async fn manage(
    state: &AppState,
    ctx: &TenantCtx,
    id: QueueTokenId,
    body: &ManageBody,
) -> Result<TokenView, ApiError> {
    let now = state.now();
    let mut tx = state.store().begin(ctx).await?;
    let before = tx.token(id).await?;
    let t = match (body.action.as_str(), body.position, &body.queue_id) {
        ("no_show", None, None) => tx.mark_no_show(id, now).await?,
        ("skip", None, None) => tx.skip(id, now).await?,
        ("cancel", None, None) => {
            let t = tx.cancel_token(id, now).await?;
            patients::notify_cancelled(&mut tx, &t, now).await?;
            t
        }
        ("reorder", Some(p), None) if (1..=10_000).contains(&p) => tx.reorder(id, p).await?,
        ("move", None, Some(q)) => {
            let to = path_id(q, QueueId::parse)?;
            let t = tx.move_token(id, to, now).await?;
            patients::notify_line(&mut tx, to, now).await?;
            t
        }
        _ => {
            return Err(ApiError::unprocessable(
                "invalid",
                "action is no_show, skip, cancel, reorder (with position 1–10000) or move (with queue_id)",
            ));
        }
    };
    patients::notify_line(&mut tx, before.queue_id, now).await?;
    tx.announce_queue_changed(before.queue_id);
    tx.announce_queue_changed(t.queue_id);
    tx.commit().await?;
    Ok(t)
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ReportFilter {
    /// First local day, `YYYY-MM-DD`.
    pub from: String,
    /// Last local day (inclusive), at most 366 days after `from`.
    pub to: String,
    /// One queue; absent: every queue the caller may see.
    pub queue_id: Option<String>,
}

async fn report(
    state: &AppState,
    ctx: &frontdesk_store::TenantCtx,
    f: Result<Query<ReportFilter>, axum::extract::rejection::QueryRejection>,
) -> Result<Vec<DayReport>, ApiError> {
    let Query(f) = f.map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))?;
    let (from, to) = (parse_day(&f.from)?, parse_day(&f.to)?);
    let queue = f
        .queue_id
        .as_deref()
        .map(|q| path_id(q, QueueId::parse))
        .transpose()?;
    let mut tx = state.store().begin_read(ctx).await?;
    let r = tx.queue_report(queue, from, to).await?;
    tx.commit().await?;
    Ok(r)
}

/// Per day and queue: joined, served, no-shows, cancellations, no-show rate, average wait
/// and consultation.
#[utoipa::path(get, path = "/api/v1/queue-reports", tag = "queue", params(ReportFilter),
    responses((status = 200, description = "Days, oldest first", body = Vec<DayReport>),
        (status = 400, description = "Invalid filter", body = ErrorEnvelope),
        (status = 422, description = "Invalid dates or range", body = ErrorEnvelope)))]
async fn get_reports(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    f: Result<Query<ReportFilter>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<DayReport>>, ApiError> {
    Ok(Json(report(&state, &ctx, f).await?))
}

fn csv_field(s: &str) -> String {
    // Quote always; a leading formula character is neutralised for spreadsheets.
    let s = if s.starts_with(['=', '+', '-', '@']) {
        format!("'{s}")
    } else {
        s.to_owned()
    };
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// The same report as CSV, for roles allowed to export.
#[utoipa::path(get, path = "/api/v1/queue-reports/export", tag = "queue", params(ReportFilter),
    responses((status = 200, description = "CSV", content_type = "text/csv"),
        (status = 400, description = "Invalid filter", body = ErrorEnvelope),
        (status = 422, description = "Invalid dates or range", body = ErrorEnvelope)))]
async fn export_reports(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    f: Result<Query<ReportFilter>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let rows = report(&state, &ctx, f).await?;
    let mut out = String::from(
        "day,queue,joined,served,no_show,cancelled,no_show_rate,avg_wait_minutes,avg_consult_minutes,expired\n",
    );
    for r in rows {
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{}\n",
            r.day,
            csv_field(&r.queue_name),
            r.joined,
            r.served,
            r.no_show,
            r.cancelled,
            r.no_show_rate,
            r.avg_wait_minutes,
            r.avg_consult_minutes,
            r.expired
        ));
    }
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"queue-report.csv\"",
            ),
        ],
        out,
    )
        .into_response())
}

#[derive(Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TimeZoneBody {
    /// An IANA time zone, e.g. `Asia/Kolkata`; queue hours are read in it.
    pub time_zone: String,
}

/// Sets the organisation's time zone for queue hours.
#[utoipa::path(put, path = "/api/v1/queue-time-zone", tag = "queue", request_body = TimeZoneBody,
    responses((status = 200, description = "Set", body = TimeZoneBody),
        (status = 422, description = "Unknown time zone", body = ErrorEnvelope)))]
async fn set_time_zone(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    ApiJson(body): ApiJson<TimeZoneBody>,
) -> Result<Json<TimeZoneBody>, ApiError> {
    let mut tx = state.store().begin(&ctx).await?;
    tx.set_time_zone(&body.time_zone).await?;
    // Opening hours are read in the time zone: every board's "open now" may change.
    for q in tx.queues().await? {
        tx.announce_queue_changed(q.id);
    }
    tx.commit().await?;
    Ok(Json(body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use frontdesk_domain::queue::QueueText;

    #[test]
    fn csv_fields_are_quoted_and_formulas_neutralised() {
        assert_eq!(csv_field("Dr \"M\""), "\"Dr \"\"M\"\"\"");
        assert_eq!(csv_field("=cmd()"), "\"'=cmd()\"");
    }

    #[test]
    fn every_text_has_a_default() {
        for t in QueueText::ALL {
            assert!(!t.default_text().is_empty());
        }
    }
}
