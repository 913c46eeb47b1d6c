//! People for tests: sign-up and sign-in over the API (bearer tokens) and in a browser's
//! way (cookie, CSRF token), against a running test server.

use super::TestApp;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// A strong password no policy refuses.
pub const PASSWORD: &str = "plum orchard by the river 42";

/// An API client signed in as a person.
#[derive(Debug, Clone)]
pub struct ApiUser {
    pub email: String,
    pub password: String,
    pub user_id: String,
    pub org_id: Option<String>,
    pub access: String,
    pub refresh: String,
}

impl TestApp {
    /// Calls the JSON API; returns the status and the body (`Null` when empty).
    pub async fn api(
        &self,
        method: Method,
        path: &str,
        bearer: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.client.request(method, self.url(path));
        if let Some(t) = bearer {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        let status = r.status();
        let text = r.text().await.unwrap();
        let v = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, v)
    }

    /// Signs up a new organisation and its admin over the API.
    pub async fn signup(&self, org: &str, email: &str) -> ApiUser {
        let (status, v) = self
            .api(Method::POST, "/api/v1/auth/signup", None, Some(json!({
                "organisation_name": org, "name": format!("Admin of {org}"), "email": email, "password": PASSWORD
            })))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{v}");
        self.api_user(email, PASSWORD, &v).await
    }

    /// Signs in over the API.
    pub async fn login(&self, email: &str, password: &str) -> ApiUser {
        let (status, v) = self
            .api(
                Method::POST,
                "/api/v1/auth/login",
                None,
                Some(json!({ "email": email, "password": password })),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{v}");
        self.api_user(email, password, &v).await
    }

    async fn api_user(&self, email: &str, password: &str, tokens: &Value) -> ApiUser {
        let access = tokens["access_token"].as_str().unwrap().to_owned();
        let (_, me) = self
            .api(Method::GET, "/api/v1/me", Some(&access), None)
            .await;
        ApiUser {
            email: email.to_owned(),
            password: password.to_owned(),
            user_id: me["user"]["id"].as_str().unwrap().to_owned(),
            org_id: tokens["org_id"].as_str().map(str::to_owned),
            access,
            refresh: tokens["refresh_token"].as_str().unwrap().to_owned(),
        }
    }

    /// Invites `email` into the admin's organisation with the named role and accepts as a
    /// new account; returns the new member signed in over the API.
    pub async fn add_member(&self, admin: &ApiUser, email: &str, role_name: &str) -> ApiUser {
        let (_, roles) = self
            .api(Method::GET, "/api/v1/roles", Some(&admin.access), None)
            .await;
        let role_id = roles
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == role_name)
            .unwrap_or_else(|| panic!("no role {role_name}: {roles}"))["id"]
            .clone();
        let (status, inv) = self
            .api(
                Method::POST,
                "/api/v1/invitations",
                Some(&admin.access),
                Some(json!({ "email": email, "role_id": role_id })),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{inv}");
        let url = url::Url::parse(inv["invite_url"].as_str().unwrap()).unwrap();
        let token = url
            .query_pairs()
            .find(|(k, _)| k == "token")
            .unwrap()
            .1
            .into_owned();
        let (status, v) = self
            .api(Method::POST, "/api/v1/invitations/accept", None, Some(json!({ "token": token, "name": format!("Member {email}"), "password": PASSWORD })))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{v}");
        self.api_user(email, PASSWORD, &v).await
    }
}

/// A browser-like session: the session cookie and the CSRF token its forms carry.
#[derive(Debug, Clone)]
pub struct WebSession {
    pub cookie_name: String,
    pub cookie: String,
    pub csrf: String,
}

/// The value of a cookie set by a response.
pub fn set_cookie_value(r: &reqwest::Response, name: &str) -> Option<String> {
    r.headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| {
            v.strip_prefix(&format!("{name}="))
                .map(|rest| rest.split(';').next().unwrap_or_default().to_owned())
        })
}

/// The `_csrf` value of the first form on a page.
pub fn csrf_in(html: &str) -> Option<String> {
    let at = html.find("name=\"_csrf\" value=\"")? + "name=\"_csrf\" value=\"".len();
    Some(html[at..].split('"').next()?.to_owned())
}

impl TestApp {
    /// Opens the sign-in page and submits it; returns the session (second factor still
    /// pending if the account has one; see [`TestApp::web_totp`]).
    pub async fn web_login(&self, email: &str, password: &str) -> WebSession {
        let r = self.client.get(self.url("/login")).send().await.unwrap();
        let pre = set_cookie_value(&r, "fd_csrf").expect("pre-session CSRF cookie");
        let html = r.text().await.unwrap();
        let csrf = csrf_in(&html).unwrap();
        assert_eq!(csrf, pre, "double-submit token matches its cookie");
        let r = self
            .client
            .post(self.url("/login"))
            .header("cookie", format!("fd_csrf={pre}"))
            .form(&[
                ("_csrf", csrf.as_str()),
                ("email", email),
                ("password", password),
                ("next", "/"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            StatusCode::SEE_OTHER,
            "{}",
            r.text().await.unwrap_or_default()
        );
        let cookie = set_cookie_value(&r, "fd_session").expect("session cookie");
        let mut s = WebSession {
            cookie_name: "fd_session".into(),
            cookie,
            csrf: String::new(),
        };
        s.csrf = self.page_csrf(&s).await;
        s
    }

    /// The session's CSRF token, read off a page's form.
    pub async fn page_csrf(&self, s: &WebSession) -> String {
        let path = "/settings/profile";
        let r = self.web_get(s, path).await;
        let html = r.text().await.unwrap();
        if let Some(c) = csrf_in(&html) {
            return c;
        }
        // A session still waiting for its second factor has only the code form.
        let r = self.web_get(s, "/login/2fa").await;
        csrf_in(&r.text().await.unwrap()).expect("a form with a CSRF token")
    }

    pub async fn web_get(&self, s: &WebSession, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .header("cookie", format!("{}={}", s.cookie_name, s.cookie))
            .header("accept", "text/html")
            .send()
            .await
            .unwrap()
    }

    /// Posts a form with the session's cookie and CSRF token.
    pub async fn web_post(
        &self,
        s: &WebSession,
        path: &str,
        fields: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut all: Vec<(&str, &str)> = vec![("_csrf", s.csrf.as_str())];
        all.extend_from_slice(fields);
        self.client
            .post(self.url(path))
            .header("cookie", format!("{}={}", s.cookie_name, s.cookie))
            .header("accept", "text/html")
            .form(&all)
            .send()
            .await
            .unwrap()
    }
}
