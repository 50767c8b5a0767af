//! Auth bootstrap, identity and projects.

use std::sync::Arc;

use arkor_protocol::auth::{
    AnonymousRequest, AnonymousResponse, CliConfig, CreateProjectRequest, Me, Org, Project,
    ProjectList, ProjectResponse,
};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use super::{ApiError, ApiResult, Caller, JsonBody, OrgScope};
use crate::AppState;

use crate::util::{new_id, new_token, token_hash};

pub async fn cli_config() -> Json<CliConfig> {
    Json(CliConfig::default())
}

pub async fn anonymous(
    State(state): State<Arc<AppState>>,
    JsonBody(req): JsonBody<AnonymousRequest>,
) -> ApiResult<Json<AnonymousResponse>> {
    let token = new_token();
    let user_id = new_id("usr");
    let anonymous_id = new_id("anon");
    let org_id = new_id("org");
    let slug = format!("anon-{}", &org_id[4..16]);
    let org = Org { id: org_id, slug, name: "Personal".to_owned() };
    let (o, a, h) = (org.clone(), anonymous_id.clone(), token_hash(&token));
    state.store.create_anonymous(&user_id, &a, &o, &h).await?;
    Ok(Json(AnonymousResponse { token, anonymous_id, kind: req.kind, personal_org: org }))
}

pub async fn me(State(state): State<Arc<AppState>>, Caller(user): Caller) -> ApiResult<Json<Me>> {
    let id = user.id.clone();
    let orgs = state.store.orgs_of(&id).await?;
    Ok(Json(Me { user, orgs }))
}

pub async fn list_projects(
    State(state): State<Arc<AppState>>,
    scope: OrgScope,
) -> ApiResult<Json<ProjectList>> {
    let id = scope.org.id.clone();
    let projects = state.store.projects(&id).await?;
    Ok(Json(ProjectList { org: scope.org, projects }))
}

pub async fn create_project(
    State(state): State<Arc<AppState>>,
    scope: OrgScope,
    JsonBody(req): JsonBody<CreateProjectRequest>,
) -> ApiResult<(StatusCode, Json<ProjectResponse>)> {
    if !valid_slug(&req.slug) {
        return Err(ApiError::bad_request(format!(
            "invalid slug \"{}\": expected 1-40 characters of a-z, 0-9 and '-', not starting or \
             ending with '-'",
            req.slug
        )));
    }
    if req.name.trim().is_empty() || req.name.len() > 200 {
        return Err(ApiError::bad_request("invalid name: expected 1-200 characters"));
    }
    let project = Project {
        id: new_id("prj"),
        slug: req.slug.clone(),
        name: req.name.clone(),
        org_id: scope.org.id.clone(),
    };
    let p = project.clone();
    if !state.store.insert_project(&p).await? {
        return Err(ApiError::new(
            arkor_protocol::error::ErrorCode::Conflict,
            format!("a project with slug \"{}\" already exists", req.slug),
        ));
    }
    Ok((StatusCode::CREATED, Json(ProjectResponse { project })))
}

fn valid_slug(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 40
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}
