//! Auth bootstrap, identity and projects.

use serde::{Deserialize, Serialize};

/// `GET /v1/auth/cli/config`: arkor's backend has no OAuth provider, so every field is
/// null and the CLI uses anonymous or token login.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CliConfig {
    /// OAuth domain (always null).
    pub auth0_domain: Option<String>,
    /// OAuth client id (always null).
    pub client_id: Option<String>,
    /// OAuth audience (always null).
    pub audience: Option<String>,
    /// Loopback ports for an OAuth callback (always empty).
    pub callback_ports: Vec<u16>,
}

/// Whether the token is for the CLI/SDK or a web client.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientKind {
    /// The CLI or the SDK.
    Cli,
    /// A browser client.
    Web,
}

/// `POST /v1/auth/anonymous` body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnonymousRequest {
    /// Who asks.
    pub kind: ClientKind,
}

/// An organisation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Org {
    /// `org_...`.
    pub id: String,
    /// URL-safe name, unique.
    pub slug: String,
    /// Display name.
    pub name: String,
}

/// `POST /v1/auth/anonymous` answer. The token is shown exactly once.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AnonymousResponse {
    /// Bearer token for every later request.
    pub token: String,
    /// The anonymous identity.
    pub anonymous_id: String,
    /// Echo of the request.
    pub kind: ClientKind,
    /// The organisation created for this identity.
    pub personal_org: Org,
}

/// The caller.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    /// `usr_...`.
    pub id: String,
    /// The anonymous id when the user is anonymous.
    pub anonymous_id: Option<String>,
    /// Always `"anonymous"` today.
    pub kind: String,
}

/// `GET /v1/me` answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Me {
    /// The caller.
    pub user: User,
    /// Organisations the caller belongs to.
    pub orgs: Vec<Org>,
}

/// A project inside an organisation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Project {
    /// `prj_...`.
    pub id: String,
    /// Unique within the organisation.
    pub slug: String,
    /// Display name.
    pub name: String,
    /// Owning organisation.
    pub org_id: String,
}

/// `GET /v1/projects` answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectList {
    /// The organisation.
    pub org: Org,
    /// Its projects, oldest first.
    pub projects: Vec<Project>,
}

/// `POST /v1/projects` body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateProjectRequest {
    /// Display name.
    pub name: String,
    /// `^[a-z0-9][a-z0-9-]{0,38}[a-z0-9]$` or a single `[a-z0-9]`.
    pub slug: String,
}

/// `POST /v1/projects` answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectResponse {
    /// The new project.
    pub project: Project,
}
