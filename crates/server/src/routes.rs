//! The route table: every route is registered here, once, with what kind of route it is.
//! The router and the OpenAPI document are both built from it, and tests enumerate it.

use crate::AppState;
use crate::auth::{Access, Guard, Surface};
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
    /// An HTML page or form target of the web UI.
    Page,
    /// Anything else: the metrics text, the OpenAPI document itself, static assets.
    Other,
}

/// One method on one path, with what it requires of its caller.
#[derive(Debug, Clone)]
pub struct RouteInfo {
    pub method: Method,
    pub path: String,
    pub kind: RouteKind,
    pub access: Access,
}

/// Collects routes; `finish` yields the router, the OpenAPI document and the table.
pub(crate) struct RouteTableBuilder {
    api: OpenApiRouter<AppState>,
    table: Vec<RouteInfo>,
    state: AppState,
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
    pub fn new(doc: OpenApi, state: AppState) -> Self {
        Self {
            api: OpenApiRouter::with_openapi(doc),
            table: Vec::new(),
            state,
        }
    }

    /// The route's handler wrapped in the guard that enforces `access` and the body size
    /// limit: the declaration and the enforcement are one and the same.
    fn guarded(
        &self,
        handler: MethodRouter<AppState>,
        access: Access,
        surface: Surface,
        body_limit: Option<usize>,
    ) -> MethodRouter<AppState> {
        let guard = Guard {
            state: self.state.clone(),
            access,
            surface,
            body_limit: body_limit.unwrap_or(self.state.settings().body_limit_bytes),
        };
        handler.route_layer(axum::middleware::from_fn_with_state(
            guard,
            crate::auth::guard,
        ))
    }

    /// A JSON route described by its handler's `#[utoipa::path]`.
    pub fn json(self, route: UtoipaMethodRouter<AppState>, access: Access) -> Self {
        self.json_sized(route, access, None)
    }

    /// A JSON route that takes bodies up to `body_limit` bytes (file uploads) instead of
    /// the server's default limit.
    pub fn json_sized(
        mut self,
        route: UtoipaMethodRouter<AppState>,
        access: Access,
        body_limit: Option<usize>,
    ) -> Self {
        let (schemas, paths, handler) = route;
        for (path, item) in paths.paths.iter() {
            for method in methods_of(item) {
                self.table.push(RouteInfo {
                    method,
                    path: path.clone(),
                    kind: RouteKind::Json,
                    access,
                });
            }
        }
        let handler = self.guarded(handler, access, Surface::Api, body_limit);
        self.api = self.api.routes((schemas, paths, handler));
        self
    }

    /// A page of the web UI (or a form it posts to).
    pub fn page(
        self,
        method: Method,
        path: &str,
        handler: MethodRouter<AppState>,
        access: Access,
    ) -> Self {
        self.page_sized(method, path, handler, access, None)
    }

    /// A form target that takes bodies up to `body_limit` bytes (a pasted CSV file).
    pub fn page_sized(
        mut self,
        method: Method,
        path: &str,
        handler: MethodRouter<AppState>,
        access: Access,
        body_limit: Option<usize>,
    ) -> Self {
        self.table.push(RouteInfo {
            method,
            path: path.to_owned(),
            kind: RouteKind::Page,
            access,
        });
        let handler = self.guarded(handler, access, Surface::Page, body_limit);
        self.api = self.api.route(path, handler);
        self
    }

    /// A route that does not answer JSON.
    pub fn other(
        self,
        method: Method,
        path: &str,
        handler: MethodRouter<AppState>,
        access: Access,
    ) -> Self {
        self.other_sized(method, path, handler, access, None)
    }

    /// A route that does not answer JSON and takes bodies up to `body_limit` bytes.
    pub fn other_sized(
        mut self,
        method: Method,
        path: &str,
        handler: MethodRouter<AppState>,
        access: Access,
        body_limit: Option<usize>,
    ) -> Self {
        self.table.push(RouteInfo {
            method,
            path: path.to_owned(),
            kind: RouteKind::Other,
            access,
        });
        let handler = self.guarded(handler, access, Surface::Api, body_limit);
        self.api = self.api.route(path, handler);
        self
    }

    pub fn finish(self) -> (axum::Router<AppState>, OpenApi, Vec<RouteInfo>) {
        let (router, doc) = self.api.split_for_parts();
        (router, doc, self.table)
    }
}
