//! The JSON API under `/api/v1`. Each area registers its routes with the access they need.

pub(crate) mod account;
pub(crate) mod admin;
pub(crate) mod audit;
pub(crate) mod campaigns;
pub(crate) mod channels;
pub(crate) mod contacts;
mod events;
pub(crate) mod exports;
pub(crate) mod imports;
mod inbox;
pub(crate) mod messages;
pub(crate) mod queue;
pub(crate) mod segments;
mod session;
pub(crate) mod templates;

pub(crate) use session::reset_password;

use crate::error::ApiError;
use crate::routes::RouteTableBuilder;
use axum::extract::{FromRequest, Request};
use serde::de::DeserializeOwned;

pub(crate) fn routes(b: RouteTableBuilder) -> RouteTableBuilder {
    let b = session::routes(b);
    let b = account::routes(b);
    let b = admin::routes(b);
    let b = channels::routes(b);
    let b = messages::routes(b);
    let b = queue::routes(b);
    let b = inbox::routes(b);
    let b = contacts::routes(b);
    let b = segments::routes(b);
    let b = imports::routes(b);
    let b = exports::routes(b);
    let b = events::routes(b);
    let b = templates::routes(b);
    let b = campaigns::routes(b);
    audit::routes(b)
}

/// A JSON body whose refusal is the error envelope with a message saying what is wrong.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            Err(rejection) => {
                use axum::extract::rejection::JsonRejection as R;
                Err(match rejection {
                    R::MissingJsonContentType(_) => ApiError::UnsupportedMediaType,
                    R::BytesRejection(_) => ApiError::PayloadTooLarge,
                    other => ApiError::bad_request("invalid_body", other.body_text()),
                })
            }
        }
    }
}

/// An id from the path; anything that is not one names nothing here (404).
pub(crate) fn path_id<T>(
    s: &str,
    parse: impl Fn(&str) -> Result<T, uuid::Error>,
) -> Result<T, ApiError> {
    parse(s).map_err(|_| ApiError::NotFound)
}
