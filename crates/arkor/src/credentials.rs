//! Credentials (`~/.arkor/credentials.json`, mode 0600), the backend URL, and the
//! project scope (`.arkor/state.json` in the project).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::client::{ApiError, Client, ProjectScope};

/// The default local backend.
pub const DEFAULT_BACKEND_URL: &str = "http://127.0.0.1:4100";

/// How the token was obtained.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CredentialsKind {
    /// `POST /v1/auth/anonymous`, done automatically.
    Anonymous,
    /// `arkor login --token`.
    Token,
}

/// What `credentials.json` holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Credentials {
    /// Anonymous or a given token.
    pub kind: CredentialsKind,
    /// Bearer token.
    pub token: String,
    /// The backend the token belongs to.
    pub base_url: String,
    /// The personal organisation of an anonymous identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_slug: Option<String>,
    /// The anonymous id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anonymous_id: Option<String>,
}

/// Errors of credential and scope resolution; each says what to do.
#[derive(Debug, thiserror::Error)]
pub enum ScopeError {
    /// The backend refused or could not be reached.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// A file could not be read or written.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// `.arkor/state.json` names an organisation the current anonymous identity does not own.
    #[error(
        "{path} points at organisation \"{state_org}\", but the current anonymous identity owns \
         \"{creds_org}\". Delete {path} to start a new project scope, or log in with the account \
         that owns it."
    )]
    ProjectStateMismatch {
        /// The state file.
        path: PathBuf,
        /// Its organisation.
        state_org: String,
        /// The credentials' organisation.
        creds_org: String,
    },
    /// Token login without a state file.
    #[error(
        "No .arkor/state.json found. Create it by hand with {{ \"orgSlug\", \"projectSlug\", \
         \"projectId\" }} pointing at the project you want to use."
    )]
    NoState,
}

/// Where arkor keeps user-wide files: `$ARKOR_DATA_DIR`, else `~/.arkor`.
pub fn arkor_home() -> PathBuf {
    #[allow(clippy::disallowed_methods)] // The SDK's one place that reads its environment.
    let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    var("ARKOR_DATA_DIR")
        .unwrap_or_else(|| var("HOME").unwrap_or_else(|| PathBuf::from(".")).join(".arkor"))
}

/// The backend to use: `$ARKOR_BACKEND_URL` (set by `arkor start`), the stored
/// credentials' backend, the local backend's `backend.json`, else the default port.
pub fn backend_url() -> String {
    #[allow(clippy::disallowed_methods)] // See `arkor_home`.
    if let Some(url) = std::env::var("ARKOR_BACKEND_URL").ok().filter(|u| !u.is_empty()) {
        return url;
    }
    let home = arkor_home();
    if let Ok(Some(c)) = read_credentials(&credentials_path(&home)) {
        return c.base_url;
    }
    std::fs::read_to_string(home.join("backend.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v["url"].as_str().map(str::to_owned))
        .unwrap_or_else(|| DEFAULT_BACKEND_URL.to_owned())
}

/// `<home>/credentials.json`.
pub fn credentials_path(home: &Path) -> PathBuf {
    home.join("credentials.json")
}

/// Reads credentials; `Ok(None)` when absent, an error when unreadable or corrupt.
pub fn read_credentials(path: &Path) -> Result<Option<Credentials>, ScopeError> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text).map(Some).map_err(|e| ScopeError::File {
            path: path.to_owned(),
            message: format!("corrupt credentials ({e})"),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ScopeError::File { path: path.to_owned(), message: e.to_string() }),
    }
}

/// Writes credentials with mode 0600.
pub fn write_credentials(path: &Path, c: &Credentials) -> Result<(), ScopeError> {
    let text = serde_json::to_string_pretty(c).expect("serialises") + "\n";
    write_private(path, &text)
        .map_err(|e| ScopeError::File { path: path.to_owned(), message: e.to_string() })
}

/// Writes a file only its owner can read (mode 0600 on Unix), creating its directory.
pub fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    use std::io::Write;
    opts.open(path)?.write_all(text.as_bytes())?;
    // `mode` applies only when the file is created; an existing file is narrowed here.
    #[cfg(unix)]
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    Ok(())
}

/// Credentials that work on `base_url`: the stored ones when they were issued there, or
/// when that backend accepts their token (a local backend may come back on another port;
/// the file is updated), else a
/// new anonymous identity there (persisted). A corrupt file is replaced with a warning; a
/// rejected login token is an error.
pub async fn ensure_credentials(home: &Path, base_url: &str) -> Result<Credentials, ScopeError> {
    let path = credentials_path(home);
    let base = base_url.trim_end_matches('/').to_owned();
    match read_credentials(&path) {
        // Issued by this very backend: no need to ask it again (Studio calls this on
        // every request).
        Ok(Some(c)) if c.base_url == base => return Ok(c),
        Ok(Some(mut c)) => match Client::new(&base, Some(c.token.clone())).me().await {
            Ok(_) => {
                if c.base_url != base {
                    c.base_url = base;
                    write_credentials(&path, &c)?;
                }
                return Ok(c);
            }
            Err(e) if e.status() == Some(401) && c.kind == CredentialsKind::Anonymous => {}
            Err(e) if e.status() == Some(401) => {
                return Err(ScopeError::File {
                    path,
                    message: format!(
                        "the backend at {base} rejected the stored token ({e}); run `arkor login` again"
                    ),
                });
            }
            Err(e) => return Err(e.into()),
        },
        Ok(None) => {}
        Err(e) => eprintln!("warning: {e}; replacing it with a new anonymous identity"),
    }
    let anon = Client::new(&base, None).anonymous().await?;
    let c = Credentials {
        kind: CredentialsKind::Anonymous,
        token: anon.token,
        base_url: base,
        org_slug: Some(anon.personal_org.slug),
        anonymous_id: Some(anon.anonymous_id),
    };
    write_credentials(&path, &c)?;
    Ok(c)
}

/// `.arkor/state.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProjectState {
    /// Organisation slug.
    pub org_slug: String,
    /// Project slug.
    pub project_slug: String,
    /// Project id.
    pub project_id: String,
}

/// The project scope for `cwd`, creating the project on first use (the reference rules:
/// an anonymous identity may only use a state of its own organisation; the state file is
/// never overwritten).
pub async fn ensure_project_state(
    cwd: &Path,
    creds: &Credentials,
    client: &Client,
) -> Result<ProjectScope, ScopeError> {
    let path = cwd.join(".arkor").join("state.json");
    if let Ok(text) = std::fs::read_to_string(&path) {
        let state: ProjectState = serde_json::from_str(&text).map_err(|e| ScopeError::File {
            path: path.clone(),
            message: format!("invalid JSON ({e})"),
        })?;
        if creds.kind == CredentialsKind::Anonymous
            && creds.org_slug.as_deref() != Some(&state.org_slug)
        {
            return Err(ScopeError::ProjectStateMismatch {
                path,
                state_org: state.org_slug,
                creds_org: creds.org_slug.clone().unwrap_or_default(),
            });
        }
        return Ok(ProjectScope { org_slug: state.org_slug, project_slug: state.project_slug });
    }
    let Some(org) = creds.org_slug.clone().filter(|_| creds.kind == CredentialsKind::Anonymous)
    else {
        return Err(ScopeError::NoState);
    };
    let raw = cwd.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let slug = project_slug(&raw);
    let project = match client.create_project(&org, &raw, &slug).await {
        Ok(p) => p,
        Err(e) if e.status() == Some(409) => client
            .list_projects(&org)
            .await?
            .projects
            .into_iter()
            .find(|p| p.slug == slug)
            .ok_or(e)?,
        Err(e) => return Err(e.into()),
    };
    let state = ProjectState { org_slug: org, project_slug: project.slug, project_id: project.id };
    let err = |e: std::io::Error| ScopeError::File { path: path.clone(), message: e.to_string() };
    std::fs::create_dir_all(path.parent().expect("has a parent")).map_err(err)?;
    std::fs::write(&path, serde_json::to_string_pretty(&state).expect("serialises") + "\n")
        .map_err(err)?;
    Ok(ProjectScope { org_slug: state.org_slug, project_slug: state.project_slug })
}

/// The reference slug rule: lowercase, `[^a-z0-9-]` to `-`, trimmed dashes, 40 chars,
/// `project` when empty.
pub fn project_slug(name: &str) -> String {
    let s: String = name
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' { c } else { '-' })
        .collect();
    let s: String = s.trim_matches('-').chars().take(40).collect();
    let s = s.trim_end_matches('-').to_owned();
    if s.is_empty() { "project".to_owned() } else { s }
}

#[cfg(test)]
mod tests {
    #[test]
    fn slugs() {
        assert_eq!(super::project_slug("My Project_2"), "my-project-2");
        assert_eq!(super::project_slug("  "), "project");
        assert_eq!(super::project_slug("日本"), "project");
    }
}
