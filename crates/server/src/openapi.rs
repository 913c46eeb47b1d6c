//! The OpenAPI 3.1 document, generated from the handlers and served at `/api/openapi.json`.

use crate::routes::RouteTableBuilder;
use axum::Extension;
use axum::http::{Method, header};
use axum::response::IntoResponse;
use axum::routing::get;
use std::sync::Arc;
use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Frontdesk API",
        description = "Self-hosted WhatsApp Business platform. JSON API under /api/v1.",
    ),
    components(schemas(crate::error::ErrorEnvelope, crate::error::ErrorBody))
)]
struct ApiDoc;

pub(crate) fn base_document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// The serialised document, computed once when the app is built.
#[derive(Clone)]
pub(crate) struct OpenApiJson(pub Arc<str>);

pub(crate) fn routes(b: RouteTableBuilder) -> RouteTableBuilder {
    b.other(
        Method::GET,
        "/api/openapi.json",
        get(openapi_json),
        crate::auth::Access::Public,
    )
}

async fn openapi_json(Extension(doc): Extension<OpenApiJson>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/vnd.oai.openapi+json;version=3.1",
        )],
        doc.0.to_string(),
    )
}
