//! Connecting a simulated number: a Cloud API channel whose Graph API is the simulator's
//! own, with fresh ids and secrets. The answer is the channel as admins see it; the
//! secrets stay sealed in the channel (and the access token's hash in the simulator).

use super::{now_ms, random_digits, random_secret};
use crate::AppState;
use crate::api::ApiJson;
use crate::auth::{Access, Tenant};
use crate::error::{ApiError, ErrorEnvelope};
use crate::routes::RouteTableBuilder;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use frontdesk_domain::Permission;
use frontdesk_store::{ChannelView, NewChannel, NewSimNumber, Provider, TenantCtx};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::routes;

pub(crate) fn routes(b: RouteTableBuilder) -> RouteTableBuilder {
    b.json(
        routes!(create_simulated_channel),
        Access::Perm(Permission::ChannelsManage),
    )
}

/// The Graph API version the simulator announces for its channels.
pub(crate) const API_VERSION: &str = "v23.0";

/// A simulated number to connect.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSimulatedChannel {
    /// The channel's name (also the number's verified business name).
    pub name: String,
    /// Messages per second the fake Graph API accepts before answering 130429 (1–1000);
    /// absent: no limit.
    #[serde(default)]
    pub send_rate_limit: Option<i32>,
}

/// Connects a simulated WhatsApp number (a Cloud API channel served by the simulator).
#[utoipa::path(post, path = "/api/v1/channels/simulator", tag = "channels", request_body = NewSimulatedChannel,
    responses(
        (status = 201, description = "Connected; never a secret in the answer", body = ChannelView),
        (status = 422, description = "Invalid name or rate", body = ErrorEnvelope),
    ))]
async fn create_simulated_channel(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    ApiJson(req): ApiJson<NewSimulatedChannel>,
) -> Result<(StatusCode, Json<ChannelView>), ApiError> {
    let view = connect(&state, &ctx, &req.name, req.send_rate_limit).await?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// Creates the channel and the simulator's record of it, in one transaction.
pub async fn connect(
    state: &AppState,
    ctx: &TenantCtx,
    name: &str,
    send_rate_limit: Option<i32>,
) -> Result<ChannelView, ApiError> {
    if send_rate_limit.is_some_and(|r| !(1..=1000).contains(&r)) {
        return Err(ApiError::unprocessable(
            "invalid",
            "the send rate limit is 1–1000 messages per second",
        ));
    }
    let phone_number_id = random_digits(15);
    let waba_id = random_digits(15);
    let tail = random_digits(6);
    // +1 555 01x xxxx: the 555-01xx range is reserved for fiction.
    let display_number = format!("+1 555 01{} {}", &tail[1..2], &tail[2..6]);
    let access_token = SecretString::from(format!("EAAS{}", random_secret(48)));
    let token_hash = frontdesk_store::tokens::token_hash(access_token.expose_secret());
    let base = state
        .auth()
        .base_url
        .join("simulator/graph")
        .map_err(ApiError::internal)?;
    let mut tx = state.store().begin(ctx).await?;
    let (view, _key) = tx
        .create_channel(NewChannel {
            name: name.to_owned(),
            provider: Provider::Cloud,
            phone_number_id: phone_number_id.clone(),
            waba_id: waba_id.clone(),
            display_number: display_number.clone(),
            api_base_url: base.to_string(),
            api_version: API_VERSION.into(),
            simulated: true,
            access_token,
            app_secret: Some(SecretString::from(hex_secret())),
            verify_token: Some(SecretString::from(random_secret(24))),
            throughput_mps: 80,
        })
        .await?;
    // Its own fake Meta app, for the Resumable Upload API (template samples).
    let view = tx
        .update_channel(
            view.id,
            frontdesk_store::ChannelUpdate {
                app_id: Some(random_digits(15)),
                ..Default::default()
            },
        )
        .await?;
    tx.create_sim_number(NewSimNumber {
        channel_id: view.id,
        phone_number_id,
        waba_id,
        display_number,
        verified_name: view.name.clone(),
        access_token_hash: token_hash,
        send_rate_limit,
        created_ms: now_ms(state),
    })
    .await?;
    tx.commit().await?;
    Ok(view)
}

/// 32 lower-case hex characters, like a Meta app secret.
fn hex_secret() -> String {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).expect("the OS random number generator works");
    b.iter().map(|x| format!("{x:02x}")).collect()
}
