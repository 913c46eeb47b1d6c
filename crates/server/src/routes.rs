//! The route table: every route is registered here, once, with what kind of route it is.
//! The router and the OpenAPI document are both built from it, and tests enumerate it.

use crate::AppState;
use axum::http::Method;
use axum::routing::MethodRouter;
use utoipa::openapi::OpenApi;
use utoipa::openapi::path::PathItem;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouter};

/// What a route serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteKind {
    /// JSON, documented in the OpenAPI document.
    Json,
    /// Anything else: the metrics text, the OpenAPI document itself.
    Other,
}

/// One method on one path.
#[derive(Debug, Clone)]
pub struct RouteInfo {
    pub method: Method,
    pub path: String,
    pub kind: RouteKind,
}

/// Collects routes; `finish` yields the router, the OpenAPI document and the table.
pub(crate) struct RouteTableBuilder {
    api: OpenApiRouter<AppState>,
    table: Vec<RouteInfo>,
}

fn methods_of(item: &PathItem) -> Vec<Method> {
    let mut out = Vec::new();
    let ops = [
        (Method::GET, &item.get),
        (Method::POST, &item.post),
        (Method::PUT, &item.put),
        (Method::PATCH, &item.patch),
        (Method::DELETE, &item.delete),
    ];
    for (m, op) in ops {
        if op.is_some() {
            out.push(m);
        }
    }
    out
}

impl RouteTableBuilder {
    pub fn new(doc: OpenApi) -> Self {
        Self {
            api: OpenApiRouter::with_openapi(doc),
            table: Vec::new(),
        }
    }

    /// A JSON route described by its handler's `#[utoipa::path]`.
    pub fn json(mut self, route: UtoipaMethodRouter<AppState>) -> Self {
        for (path, item) in route.1.paths.iter() {
            for method in methods_of(item) {
                self.table.push(RouteInfo {
                    method,
                    path: path.clone(),
                    kind: RouteKind::Json,
                });
            }
        }
        self.api = self.api.routes(route);
        self
    }

    /// A route that does not answer JSON.
    pub fn other(mut self, method: Method, path: &str, handler: MethodRouter<AppState>) -> Self {
        self.table.push(RouteInfo {
            method,
            path: path.to_owned(),
            kind: RouteKind::Other,
        });
        self.api = self.api.route(path, handler);
        self
    }

    pub fn finish(self) -> (axum::Router<AppState>, OpenApi, Vec<RouteInfo>) {
        let (router, doc) = self.api.split_for_parts();
        (router, doc, self.table)
    }
}
