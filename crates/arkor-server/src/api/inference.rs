//! Chat: `/v1/inference/chat` (arkor's, scoped by org and project), and the
//! OpenAI-compatible `/v1/models` and `/v1/chat/completions` (scoped by the token).

use std::convert::Infallible;
use std::sync::Arc;

use arkor_engine::generate::SamplingParams;
use arkor_engine::tiny::TINY_MODEL_ID;
use arkor_protocol::inference::{
    AdapterRef, AssistantMessage, ChatCompletion, ChatCompletionChunk, ChatCompletionRequest,
    ChatMessage, Choice, ChunkChoice, Delta, InferenceChatRequest, ModelInfo, ModelList, Usage,
};
use arkor_protocol::job::{Job, JobStatus, parse_model_id};
use axum::Json;
use axum::extract::State;
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::constraint;
use super::jobs::{checkpoint_steps, scoped_job};
use super::tools;
use super::{ApiError, ApiResult, Caller, JsonBody, Scope};
use crate::AppState;
use crate::inference::{Failure, Finished, Piece, Prompt, Target, ToolMode};

use crate::util::{new_id, now_ms};

/// What a request asks for, after validation.
struct Ask {
    target: Target,
    prompt: Prompt,
    params: SamplingParams,
    stream: bool,
}

/// The shaping fields of a request, as the route spells them.
struct Shape<'a> {
    messages: &'a [ChatMessage],
    response_format: Option<&'a serde_json::Value>,
    structured_outputs: Option<&'a serde_json::Value>,
    tools: Option<&'a serde_json::Value>,
    tool_choice: Option<&'a serde_json::Value>,
    chat_template_kwargs: Option<&'a serde_json::Value>,
}

/// The constraint and the prompt of a request; tools that force a call cannot be combined
/// with a response format.
async fn shape(
    req: Shape<'_>,
    names: constraint::Spelling,
) -> ApiResult<(Option<arkor_engine::constrain::Constraint>, Prompt)> {
    let constraint = constraint::parse(req.response_format, req.structured_outputs, names).await?;
    let tools = tools::parse(req.tools, req.tool_choice, (names.tools, names.tool_choice))?;
    if constraint.is_some() && tools.as_ref().is_some_and(|t| !matches!(t.mode, ToolMode::Auto)) {
        return Err(ApiError::bad_request(format!(
            "invalid {}: a forced tool call cannot be combined with a response format or \
             structured outputs",
            names.tool_choice
        )));
    }
    let template_kwargs = template_kwargs(req.chat_template_kwargs, names.chat_template_kwargs)?;
    Ok((
        constraint,
        Prompt { messages: tools::conversation(req.messages)?, tools, template_kwargs },
    ))
}

/// `chat_template_kwargs`: an object of template variables, none of them one arkor sets.
fn template_kwargs(
    value: Option<&serde_json::Value>,
    field: &str,
) -> ApiResult<serde_json::Map<String, serde_json::Value>> {
    use arkor_engine::tokenizer::TEMPLATE_VARIABLES;
    let map = match value {
        None | Some(serde_json::Value::Null) => return Ok(Default::default()),
        Some(serde_json::Value::Object(map)) => map,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "invalid {field}: expected an object of template variables, got {other}"
            )));
        }
    };
    if let Some(key) = map.keys().find(|k| TEMPLATE_VARIABLES.contains(&k.as_str())) {
        return Err(ApiError::bad_request(format!(
            "invalid {field}.{key}: arkor sets `{key}` itself (the request's own fields set it)"
        )));
    }
    Ok(map.clone())
}

fn sampling(
    temperature: Option<f64>,
    top_p: Option<f64>,
    max_tokens: Option<u64>,
    seed: Option<u64>,
    stop: Vec<String>,
    constraint: Option<arkor_engine::constrain::Constraint>,
) -> ApiResult<SamplingParams> {
    let p = SamplingParams {
        max_tokens: max_tokens.unwrap_or(256) as usize,
        temperature: temperature.unwrap_or(0.7),
        top_p: top_p.unwrap_or(1.0),
        top_k: None,
        repetition_penalty: 1.0,
        seed: seed.unwrap_or_else(|| now_ms() as u64),
        stop,
        constraint,
    };
    if !(p.temperature >= 0.0 && p.temperature <= 5.0) {
        return Err(ApiError::bad_request(format!(
            "invalid temperature {}: expected a number in [0, 5]",
            p.temperature
        )));
    }
    if !(p.top_p > 0.0 && p.top_p <= 1.0) {
        return Err(ApiError::bad_request(format!("invalid topP {}: expected (0, 1]", p.top_p)));
    }
    if !(1..=8192).contains(&p.max_tokens) {
        return Err(ApiError::bad_request(format!(
            "invalid maxTokens {}: expected 1-8192",
            p.max_tokens
        )));
    }
    Ok(p)
}

/// The adapter directory of a job's final adapter or checkpoint, with its base model.
pub(super) async fn adapter_target(
    state: &AppState,
    job: &Job,
    step: Option<u64>,
) -> ApiResult<Target> {
    let dir = super::jobs::job_folder(state, &job.id).await?;
    let adapter_dir = match step {
        None => {
            if job.status != JobStatus::Completed {
                return Err(ApiError::bad_request(format!(
                    "job {} has no final adapter: it is {}; chat with a checkpoint instead",
                    job.id,
                    job.status.as_str()
                )));
            }
            dir.join("final")
        }
        Some(step) => {
            let steps = checkpoint_steps(&dir);
            if !steps.contains(&step) {
                let saved: Vec<String> = steps.iter().map(u64::to_string).collect();
                return Err(ApiError::not_found(format!(
                    "job {} has no checkpoint at step {step}; saved checkpoints: {}",
                    job.id,
                    if saved.is_empty() { "none".to_owned() } else { saved.join(", ") }
                )));
            }
            dir.join(format!("checkpoint-{step}"))
        }
    };
    Ok(Target { base_model: job.config.model.clone(), adapter_dir: Some(adapter_dir) })
}

pub(super) fn base_target(model: &str) -> ApiResult<Target> {
    if !crate::resolve::is_model_reference(model) {
        return Err(ApiError::bad_request(format!(
            "invalid model \"{model}\": expected {TINY_MODEL_ID}, a Hugging Face model id, a local \
             model directory or .gguf file, ollama:NAME[:TAG], or a fine-tune id from GET /v1/models"
        )));
    }
    Ok(Target { base_model: model.to_owned(), adapter_dir: None })
}

pub async fn chat(
    State(state): State<Arc<AppState>>,
    scope: Scope,
    JsonBody(req): JsonBody<InferenceChatRequest>,
) -> ApiResult<Response> {
    let shaping = Shape {
        messages: &req.messages,
        response_format: req.response_format.as_ref(),
        structured_outputs: req.structured_outputs.as_ref(),
        tools: req.tools.as_ref(),
        tool_choice: req.tool_choice.as_ref(),
        chat_template_kwargs: req.chat_template_kwargs.as_ref(),
    };
    let (constraint, prompt) = shape(shaping, constraint::ARKOR).await?;
    let target = match (&req.adapter, &req.base_model) {
        (Some(_), Some(_)) | (None, None) => {
            return Err(ApiError::bad_request("expected exactly one of adapter and baseModel"));
        }
        (Some(AdapterRef::Final { job_id }), None) => {
            let job = scoped_job(&state, &scope, job_id).await?;
            adapter_target(&state, &job, None).await?
        }
        (Some(AdapterRef::Checkpoint { job_id, step }), None) => {
            let job = scoped_job(&state, &scope, job_id).await?;
            adapter_target(&state, &job, Some(*step)).await?
        }
        (None, Some(model)) => base_target(model)?,
    };
    let model_name = match &req.adapter {
        Some(AdapterRef::Final { job_id }) => arkor_protocol::job::final_model_id(job_id),
        Some(AdapterRef::Checkpoint { job_id, step }) => {
            arkor_protocol::job::checkpoint_model_id(job_id, *step)
        }
        None => target.base_model.clone(),
    };
    let ask = Ask {
        target,
        prompt,
        params: sampling(req.temperature, req.top_p, req.max_tokens, req.seed, vec![], constraint)?,
        stream: req.stream.unwrap_or(true),
    };
    respond(&state, ask, model_name, None).await
}

pub async fn completions(
    State(state): State<Arc<AppState>>,
    Caller(user): Caller,
    JsonBody(req): JsonBody<ChatCompletionRequest>,
) -> ApiResult<Response> {
    let target = match parse_model_id(&req.model) {
        Some((job_id, step)) => {
            let job = visible_job(&state, &user.id, job_id).await?;
            adapter_target(&state, &job, step).await
        }
        None => base_target(&req.model),
    };
    let model = req.model.clone();
    complete(&state, req, target, model, None).await
}

/// Answers an OpenAI chat completion request for `target` (already resolved, or why not:
/// reported after the request's own fields are checked), naming `model` in the answer.
/// `on_end` hears how it ended, refusals included (see [`respond`]).
pub(super) async fn complete(
    state: &Arc<AppState>,
    req: ChatCompletionRequest,
    target: ApiResult<Target>,
    model: String,
    mut on_end: Option<OnEnd>,
) -> ApiResult<Response> {
    match completion_ask(req, target).await {
        Ok(ask) => respond(state, ask, model, on_end).await,
        Err(e) => {
            if let Some(f) = on_end.take() {
                f(Ended::failed(&e));
            }
            Err(e)
        }
    }
}

/// A chat completion request, validated into what to generate.
async fn completion_ask(req: ChatCompletionRequest, target: ApiResult<Target>) -> ApiResult<Ask> {
    let guided = constraint::guided_as_structured([
        ("guided_json", req.guided_json.as_ref()),
        ("guided_regex", req.guided_regex.as_ref()),
        ("guided_choice", req.guided_choice.as_ref()),
        ("guided_grammar", req.guided_grammar.as_ref()),
        ("guided_whitespace_pattern", req.guided_whitespace_pattern.as_ref()),
    ]);
    if guided.is_some() && req.structured_outputs.is_some() {
        return Err(ApiError::bad_request(
            "invalid guided_*: send either structured_outputs or the older guided_* fields",
        ));
    }
    let shaping = Shape {
        messages: &req.messages,
        response_format: req.response_format.as_ref(),
        structured_outputs: req.structured_outputs.as_ref().or(guided.as_ref()),
        tools: req.tools.as_ref(),
        tool_choice: req.tool_choice.as_ref(),
        chat_template_kwargs: req.chat_template_kwargs.as_ref(),
    };
    let (constraint, prompt) = shape(shaping, constraint::OPENAI).await?;
    let target = target?;
    let stop = match &req.stop {
        None | Some(serde_json::Value::Null) => vec![],
        Some(serde_json::Value::String(s)) => vec![s.clone()],
        Some(v) => serde_json::from_value::<Vec<String>>(v.clone()).map_err(|_| {
            ApiError::bad_request("invalid stop: expected a string or an array of strings")
        })?,
    };
    Ok(Ask {
        target,
        prompt,
        params: sampling(
            req.temperature,
            req.top_p,
            req.max_completion_tokens.or(req.max_tokens),
            req.seed,
            stop,
            constraint,
        )?,
        stream: req.stream.unwrap_or(false),
    })
}

async fn visible_job(state: &AppState, user_id: &str, job_id: &str) -> ApiResult<Job> {
    let (u, j) = (user_id.to_owned(), job_id.to_owned());
    let orgs: Vec<String> = state.store.orgs_of(&u).await?.into_iter().map(|o| o.id).collect();
    let found = state.store.job(&j).await?.filter(|job| orgs.contains(&job.org_id));
    found.ok_or_else(|| ApiError::not_found(format!("model for job {job_id} not found")))
}

/// How an answer ended: its status (499 when the client went away mid-stream), tokens, and
/// what was sent (the completion's JSON, or a stream's text and tool calls).
pub(super) struct Ended {
    pub status: u16,
    pub prompt_tokens: Option<u64>,
    pub completion_tokens: Option<u64>,
    pub response: Option<String>,
}

impl Ended {
    /// A refusal: its status and message, no tokens.
    pub fn failed(e: &ApiError) -> Ended {
        Ended {
            status: e.status.as_u16(),
            prompt_tokens: None,
            completion_tokens: None,
            response: Some(e.message.clone()),
        }
    }
}

/// Called once when an answer has been sent whole or refused (endpoints log their requests
/// with it).
pub(super) type OnEnd = Box<dyn FnOnce(Ended) + Send>;

/// Runs the generation and answers as one completion or as a stream of chunks. Errors
/// before the first piece of text (a model that fails to load) are HTTP errors; `on_end`
/// hears about every answer, those errors included.
async fn respond(
    state: &Arc<AppState>,
    ask: Ask,
    model: String,
    mut on_end: Option<OnEnd>,
) -> ApiResult<Response> {
    let mut rx = state.inference.start(ask.target, ask.prompt, ask.params);
    let first = rx.recv().await.unwrap_or(Piece::Done(Err(Failure::stopped())));
    if let Piece::Done(Err(e)) = &first {
        let code = e.code.unwrap_or(arkor_protocol::error::ErrorCode::Unavailable);
        let e = ApiError::new(code, e.message.clone());
        if let Some(f) = on_end.take() {
            f(Ended::failed(&e));
        }
        return Err(e);
    }
    let mut end = move |ended: Ended| {
        if let Some(f) = on_end.take() {
            f(ended);
        }
    };
    let id = new_id("chatcmpl");
    let created = (now_ms() / 1000) as u64;
    if !ask.stream {
        let mut text = String::new();
        let mut piece = first;
        let done: Finished = loop {
            match piece {
                Piece::Text(t) => text.push_str(&t),
                Piece::Progress => {}
                Piece::Done(Ok(f)) => break f,
                Piece::Done(Err(e)) => return Err(ApiError::internal(e.message)),
            }
            piece = rx.recv().await.unwrap_or(Piece::Done(Err(Failure::stopped())));
        };
        let usage = Usage {
            prompt_tokens: done.prompt_tokens as u64,
            completion_tokens: done.completion_tokens as u64,
            total_tokens: (done.prompt_tokens + done.completion_tokens) as u64,
        };
        let completion = ChatCompletion {
            id,
            object: "chat.completion".to_owned(),
            created,
            model,
            choices: vec![Choice {
                index: 0,
                message: AssistantMessage {
                    role: "assistant".to_owned(),
                    content: if done.tool_calls.is_empty() {
                        Some(done.content.clone().unwrap_or(text))
                    } else {
                        done.content.clone()
                    },
                    tool_calls: (!done.tool_calls.is_empty())
                        .then(|| done.tool_calls.iter().map(tools::openai_call).collect()),
                },
                finish_reason: done.finish_reason.to_owned(),
            }],
            usage,
        };
        let body = serde_json::to_string(&completion).expect("completions serialise");
        end(Ended {
            status: 200,
            prompt_tokens: Some(completion.usage.prompt_tokens),
            completion_tokens: Some(completion.usage.completion_tokens),
            response: Some(body.clone()),
        });
        let json = [(axum::http::header::CONTENT_TYPE, "application/json")];
        return Ok((json, body).into_response());
    }
    let (tx, out) = mpsc::channel::<Result<Event, Infallible>>(64);
    tokio::spawn(async move {
        let chunk = |delta: Delta, finish: Option<String>| ChatCompletionChunk {
            id: id.clone(),
            object: "chat.completion.chunk".to_owned(),
            created,
            model: model.clone(),
            choices: vec![ChunkChoice { index: 0, delta, finish_reason: finish }],
        };
        let frame = |c: &ChatCompletionChunk| {
            Ok(Event::default().data(serde_json::to_string(c).expect("chunks serialise")))
        };
        // What the client got, for `on_end`: the text, then any tool calls.
        let mut sent = String::new();
        let gone = |sent: String| Ended {
            status: 499,
            prompt_tokens: None,
            completion_tokens: None,
            response: Some(sent),
        };
        let role = Delta { role: Some("assistant".to_owned()), ..Delta::default() };
        if tx.send(frame(&chunk(role, None))).await.is_err() {
            return end(gone(sent));
        }
        let mut piece = first;
        loop {
            match piece {
                Piece::Text(t) => {
                    sent.push_str(&t);
                    let delta = Delta { content: Some(t), ..Delta::default() };
                    // A closed channel drops `rx`, which cancels the generation.
                    if tx.send(frame(&chunk(delta, None))).await.is_err() {
                        return end(gone(sent));
                    }
                }
                Piece::Progress => {}
                Piece::Done(Ok(f)) => {
                    // A reply read whole (tools were offered): its text, then its calls.
                    if let Some(content) = f.content.clone().filter(|c| !c.is_empty()) {
                        sent.push_str(&content);
                        let delta = Delta { content: Some(content), ..Delta::default() };
                        if tx.send(frame(&chunk(delta, None))).await.is_err() {
                            return end(gone(sent));
                        }
                    }
                    if !f.tool_calls.is_empty() {
                        let calls: Vec<serde_json::Value> = f
                            .tool_calls
                            .iter()
                            .enumerate()
                            .map(|(i, c)| {
                                let mut v = tools::openai_call(c);
                                v["index"] = i.into();
                                v
                            })
                            .collect();
                        sent.push_str(&serde_json::Value::from(calls.clone()).to_string());
                        let delta = Delta { tool_calls: Some(calls), ..Delta::default() };
                        if tx.send(frame(&chunk(delta, None))).await.is_err() {
                            return end(gone(sent));
                        }
                    }
                    let _ = tx
                        .send(frame(&chunk(Delta::default(), Some(f.finish_reason.to_owned()))))
                        .await;
                    end(Ended {
                        status: 200,
                        prompt_tokens: Some(f.prompt_tokens as u64),
                        completion_tokens: Some(f.completion_tokens as u64),
                        response: Some(sent),
                    });
                    break;
                }
                Piece::Done(Err(e)) => {
                    let body = serde_json::json!({ "error": e.message });
                    let _ =
                        tx.send(Ok(Event::default().event("error").data(body.to_string()))).await;
                    end(Ended {
                        status: 500,
                        prompt_tokens: None,
                        completion_tokens: None,
                        response: Some(format!("{sent}\n[error] {}", e.message)),
                    });
                    break;
                }
            }
            piece = match rx.recv().await {
                Some(p) => p,
                None => {
                    end(Ended {
                        status: 500,
                        prompt_tokens: None,
                        completion_tokens: None,
                        response: Some(format!("{sent}\n[error] the generation ended early")),
                    });
                    break;
                }
            };
        }
        let _ = tx.send(Ok(Event::default().data("[DONE]"))).await;
    });
    Ok(Sse::new(ReceiverStream::new(out)).into_response())
}

pub async fn models(
    State(state): State<Arc<AppState>>,
    Caller(user): Caller,
) -> ApiResult<Json<ModelList>> {
    let uid = user.id.clone();
    let orgs: Vec<String> = state.store.orgs_of(&uid).await?.into_iter().map(|o| o.id).collect();
    let jobs = state.store.jobs_of_orgs(&orgs).await?;
    for job in &jobs {
        super::jobs::job_folder(&state, &job.id).await?;
    }
    let st = state.clone();
    let data = tokio::task::spawn_blocking(move || {
        let mut bases: Vec<String> =
            arkor_protocol::SUPPORTED_MODELS.iter().map(|s| (*s).to_owned()).collect();
        for job in &jobs {
            if !bases.contains(&job.config.model) {
                bases.push(job.config.model.clone());
            }
        }
        let mut data: Vec<ModelInfo> = bases
            .iter()
            .map(|b| ModelInfo {
                id: b.clone(),
                object: "model".to_owned(),
                created: 0,
                owned_by: "arkor".to_owned(),
                kind: "base".to_owned(),
                base_model: None,
                available_offline: Some(st.inference.available_offline(b)),
                job_id: None,
                step: None,
            })
            .collect();
        for job in &jobs {
            let created = humantime::parse_rfc3339(&job.created_at)
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_secs());
            let dir = st.runner.job_dir(&job.id);
            for set in super::jobs::artifact_sets(&job.id, &dir, job.progress.step) {
                let kind = match set.kind {
                    arkor_protocol::job::ArtifactKind::Final => "final",
                    arkor_protocol::job::ArtifactKind::Checkpoint => "checkpoint",
                };
                data.push(ModelInfo {
                    id: set.model_id,
                    object: "model".to_owned(),
                    created,
                    owned_by: job.org_id.clone(),
                    kind: kind.to_owned(),
                    base_model: Some(job.config.model.clone()),
                    available_offline: None,
                    job_id: Some(job.id.clone()),
                    step: Some(set.step),
                });
            }
        }
        data
    })
    .await
    .map_err(ApiError::internal)?;
    Ok(Json(ModelList { object: "list".to_owned(), data }))
}
