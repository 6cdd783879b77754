//! Bearer tokens (`--api-tokens FILE`) and the check every API request
//! passes.
//!
//! The file is YAML:
//!
//! ```yaml
//! tokens:
//!   - name: ci            # shown in logs instead of the token
//!     token: 9f2c...       # at least 16 characters
//!     role: admin         # or read
//!     projects: [shop]    # optional: only these projects
//! ```
//!
//! A presented token is compared with every configured one in constant time
//! (`subtle`), so timing says nothing about how much of it matched; tokens
//! never appear in logs or in `Debug` output.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::{ApiConfig, ApiError};

/// The shortest token accepted: shorter ones are guessable.
pub const MIN_TOKEN_LEN: usize = 16;

#[derive(Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// `get`, `describe`, watch, logs.
    Read,
    /// Everything `read` may, plus apply, delete, rollout and node actions.
    Admin,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    name: String,
    token: String,
    role: Role,
    #[serde(default)]
    projects: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    tokens: Vec<Entry>,
}

/// The configured tokens.
pub struct Tokens {
    entries: Vec<Entry>,
}

impl std::fmt::Debug for Tokens {
    /// Names only: a token must never reach a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.entries.iter().map(|e| &e.name))
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TokensError {
    #[error("{path}: {cause}")]
    Read { path: String, cause: std::io::Error },
    #[error("{path}: {cause}")]
    Parse { path: String, cause: String },
    #[error("{path}: tokens[{index}] ({name}): {cause}")]
    Invalid {
        path: String,
        index: usize,
        name: String,
        cause: String,
    },
}

/// What the caller may do, from its token (or anonymous read).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Access {
    /// The token's name (`anonymous` without one): what logs show.
    pub name: String,
    pub role: Role,
    /// `None`: every project.
    pub projects: Option<BTreeSet<String>>,
}

impl Access {
    fn anonymous() -> Access {
        Access {
            name: "anonymous".into(),
            role: Role::Read,
            projects: None,
        }
    }

    /// Whether the caller may see `project`.
    pub fn may_read(&self, project: &str) -> bool {
        self.projects.as_ref().is_none_or(|p| p.contains(project))
    }

    /// `Ok` when the caller may change `project`, else a 403 naming it.
    pub fn check_write(&self, project: &str) -> Result<(), ApiError> {
        self.check_read(project)?;
        if self.role < Role::Admin {
            return Err(ApiError::Forbidden(format!(
                "token {:?} has the read role",
                self.name
            )));
        }
        Ok(())
    }

    /// `Ok` when the caller may change what belongs to no project (nodes):
    /// an admin token not limited to projects.
    pub fn check_write_cluster(&self) -> Result<(), ApiError> {
        if self.role < Role::Admin || self.projects.is_some() {
            return Err(ApiError::Forbidden(format!(
                "token {:?} may not change nodes: that needs an admin token for every project",
                self.name
            )));
        }
        Ok(())
    }

    /// `Ok` when the caller may see `project`, else a 403 naming it.
    pub fn check_read(&self, project: &str) -> Result<(), ApiError> {
        if self.may_read(project) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!(
                "token {:?} may not read project {project:?}",
                self.name
            )))
        }
    }
}

impl Tokens {
    /// Reads and checks a tokens file.
    pub fn load(path: &Path) -> Result<Tokens, TokensError> {
        let text = std::fs::read_to_string(path).map_err(|cause| TokensError::Read {
            path: path.display().to_string(),
            cause,
        })?;
        Tokens::parse(&text, &path.display().to_string())
    }

    /// Parses the YAML of a tokens file; `path` names it in errors.
    pub fn parse(text: &str, path: &str) -> Result<Tokens, TokensError> {
        let file: File = serde_saphyr::from_str(text).map_err(|e| TokensError::Parse {
            path: path.into(),
            cause: e.to_string().lines().next().unwrap_or_default().to_string(),
        })?;
        let mut names = BTreeSet::new();
        for (index, e) in file.tokens.iter().enumerate() {
            let invalid = |cause: &str| TokensError::Invalid {
                path: path.into(),
                index,
                name: e.name.clone(),
                cause: cause.into(),
            };
            if e.token.len() < MIN_TOKEN_LEN {
                return Err(invalid(&format!(
                    "token: at least {MIN_TOKEN_LEN} characters are required"
                )));
            }
            if !names.insert(e.name.as_str()) {
                return Err(invalid("name: used twice"));
            }
            let same = file.tokens[..index]
                .iter()
                .any(|o| bool::from(o.token.as_bytes().ct_eq(e.token.as_bytes())));
            if same {
                return Err(invalid("token: the same token is listed twice"));
            }
        }
        Ok(Tokens {
            entries: file.tokens,
        })
    }

    /// The access of `presented`, or `None`. Compares with every entry, in
    /// constant time per entry, whatever matched.
    pub fn find(&self, presented: &str) -> Option<Access> {
        let mut found = None;
        for e in &self.entries {
            if bool::from(e.token.as_bytes().ct_eq(presented.as_bytes())) && found.is_none() {
                found = Some(Access {
                    name: e.name.clone(),
                    role: e.role,
                    projects: (!e.projects.is_empty())
                        .then(|| e.projects.iter().cloned().collect()),
                });
            }
        }
        found
    }
}

/// The access a request's `Authorization` header gives under `cfg`.
pub fn authenticate(cfg: &ApiConfig, authorization: Option<&str>) -> Result<Access, ApiError> {
    let Some(value) = authorization else {
        return if cfg.anonymous_read {
            Ok(Access::anonymous())
        } else {
            Err(ApiError::Unauthenticated)
        };
    };
    let token = value
        .strip_prefix("Bearer ")
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or(ApiError::Unauthenticated)?;
    cfg.tokens
        .as_ref()
        .and_then(|t| t.find(token))
        .ok_or(ApiError::BadToken)
}

/// Middleware: authenticates, refuses writes to `read` tokens, and hands
/// the [`Access`] to the handler as an extension.
pub async fn require(State(cfg): State<Arc<ApiConfig>>, mut req: Request, next: Next) -> Response {
    let header = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let access = match authenticate(&cfg, header) {
        Ok(a) => a,
        Err(e) => return e.into_response(),
    };
    if !req.method().is_safe() && access.role < Role::Admin {
        return ApiError::Forbidden(format!("token {:?} has the read role", access.name))
            .into_response();
    }
    req.extensions_mut().insert(access);
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "tokens:\n  - {name: ci, token: aaaaaaaaaaaaaaaaaaaa, role: admin}\n  - {name: viewer, token: bbbbbbbbbbbbbbbbbbbb, role: read, projects: [shop]}\n";

    fn tokens() -> Tokens {
        match Tokens::parse(FILE, "tokens.yaml") {
            Ok(t) => t,
            Err(e) => panic!("{e}"),
        }
    }

    fn check(header: Option<&str>, anonymous: bool, expected: Result<(&str, Role, bool), &str>) {
        let cfg = ApiConfig {
            tokens: Some(Arc::new(tokens())),
            anonymous_read: anonymous,
        };
        let got = authenticate(&cfg, header)
            .map(|a| (a.name.clone(), a.role, a.may_read("other")))
            .map_err(|e| e.to_string());
        let expected = expected
            .map(|(n, r, all)| (n.to_string(), r, all))
            .map_err(String::from);
        assert_eq!(got, expected, "{header:?} anonymous={anonymous}");
    }

    #[test]
    fn who_a_request_is() {
        let admin = Ok(("ci", Role::Admin, true));
        let viewer = Ok(("viewer", Role::Read, false));
        let anonymous = Ok(("anonymous", Role::Read, true));
        let unauthenticated = Err("authentication required: send Authorization: Bearer TOKEN");
        check(Some("Bearer aaaaaaaaaaaaaaaaaaaa"), false, admin);
        check(Some("Bearer bbbbbbbbbbbbbbbbbbbb"), false, viewer);
        check(
            Some("Bearer aaaaaaaaaaaaaaaaaaab"),
            false,
            Err("invalid token"),
        );
        check(Some("Bearer aaaa"), true, Err("invalid token"));
        check(Some("Basic aaaaaaaaaaaaaaaaaaaa"), false, unauthenticated);
        check(Some("Bearer "), false, unauthenticated);
        check(None, false, unauthenticated);
        check(None, true, anonymous);
    }

    #[test]
    fn bad_files_name_the_entry() {
        let cases = [
            ("tokens: [{name: a, token: short, role: read}]", "t.yaml: tokens[0] (a): token: at least 16 characters are required"),
            ("tokens: [{name: a, token: aaaaaaaaaaaaaaaaaaaa, role: read}, {name: a, token: bbbbbbbbbbbbbbbbbbbb, role: read}]", "t.yaml: tokens[1] (a): name: used twice"),
            ("tokens: [{name: a, token: aaaaaaaaaaaaaaaaaaaa, role: read}, {name: b, token: aaaaaaaaaaaaaaaaaaaa, role: admin}]", "t.yaml: tokens[1] (b): token: the same token is listed twice"),
        ];
        for (text, want) in cases {
            match Tokens::parse(text, "t.yaml") {
                Ok(_) => panic!("accepted: {text}"),
                Err(e) => assert_eq!(e.to_string(), want),
            }
        }
        for text in [
            "tokens: [{name: a, token: aaaaaaaaaaaaaaaaaaaa, role: root}]",
            "tokens: [{name: a, token: aaaaaaaaaaaaaaaaaaaa, role: read, extra: 1}]",
        ] {
            match Tokens::parse(text, "t.yaml") {
                Ok(_) => panic!("accepted: {text}"),
                Err(e) => {
                    let e = e.to_string();
                    assert!(e.starts_with("t.yaml: ") && !e.contains('\n'), "{e}");
                }
            }
        }
    }

    #[test]
    fn debug_never_shows_a_token() {
        let shown = format!("{:?}", tokens());
        assert_eq!(shown, r#"["ci", "viewer"]"#);
    }
}
