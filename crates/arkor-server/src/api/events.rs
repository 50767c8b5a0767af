//! `GET /v1/jobs/:id/events/stream`: the persisted event log as server-sent events.
//!
//! The subscriber first subscribes to the live broadcast, then replays the log after
//! `Last-Event-ID`, then follows the broadcast, skipping ids it already sent. Because
//! every event is persisted before it is broadcast, this has no gap and no duplicate; a
//! subscriber that falls behind the broadcast re-reads the log. After a terminal event
//! the stream sends `end` (data `{"type":"end","jobId":...}`) and closes.

use std::convert::Infallible;
use std::sync::Arc;

use arkor_protocol::event::{END, PING, StoredEvent};
use axum::extract::{Path as UrlPath, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;

use super::jobs::scoped_job;
use super::{ApiError, ApiResult, Scope};
use crate::AppState;

type Frames = Sse<axum::response::sse::KeepAliveStream<ReceiverStream<Result<Event, Infallible>>>>;

pub async fn stream(
    State(state): State<Arc<AppState>>,
    scope: Scope,
    UrlPath(id): UrlPath<String>,
    headers: HeaderMap,
) -> ApiResult<Frames> {
    scoped_job(&state, &scope, &id).await?;
    let after = match headers.get("last-event-id").map(|v| v.to_str().unwrap_or("")) {
        None | Some("") => 0,
        Some(v) => v.trim().parse::<u64>().map_err(|_| {
            ApiError::bad_request(format!("invalid Last-Event-ID \"{v}\": expected an event id"))
        })?,
    };
    let (tx, rx) = mpsc::channel(64);
    let live = state.runner.subscribe(&id);
    let st = state.clone();
    tokio::spawn(async move {
        if let Err(e) = follow(&st, &id, after, live, &tx).await {
            // Mostly a client that went away.
            if !tx.is_closed() {
                eprintln!("arkor server: event stream of {id}: {e}");
            }
        }
        st.runner.release(&id);
    });
    let ping = KeepAlive::new().interval(state.keepalive).event(Event::default().event(PING));
    Ok(Sse::new(ReceiverStream::new(rx)).keep_alive(ping))
}

/// Sends frames until a terminal event (then `end`) or until the client goes away.
async fn follow(
    state: &AppState,
    job_id: &str,
    mut last: u64,
    mut live: broadcast::Receiver<StoredEvent>,
    tx: &mpsc::Sender<Result<Event, Infallible>>,
) -> anyhow::Result<()> {
    // Replay, then follow; any lag or close falls back to the log.
    loop {
        loop {
            let id = job_id.to_owned();
            let page = state.store.events_after(&id, last, 500).await?;
            let n = page.len();
            for ev in page {
                last = ev.id;
                if send(tx, &ev).await? {
                    return Ok(());
                }
            }
            if n < 500 {
                break;
            }
        }
        loop {
            match live.recv().await {
                Ok(ev) if ev.id <= last => {}
                Ok(ev) => {
                    last = ev.id;
                    if send(tx, &ev).await? {
                        return Ok(());
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => break,
                Err(broadcast::error::RecvError::Closed) => {
                    // The job ended; whatever is left is in the log.
                    live = state.runner.subscribe(job_id);
                    break;
                }
            }
        }
    }
}

/// Sends one event; `Ok(true)` after a terminal event and the `end` frame.
async fn send(
    tx: &mpsc::Sender<Result<Event, Infallible>>,
    ev: &StoredEvent,
) -> anyhow::Result<bool> {
    let data = serde_json::to_string(&ev.event)?;
    let frame = Event::default().id(ev.id.to_string()).event(ev.event.kind.name()).data(data);
    tx.send(Ok(frame)).await?;
    if ev.event.kind.is_terminal() {
        // A data line, so that spec-following parsers dispatch the frame at all.
        let data = serde_json::json!({ "type": END, "jobId": ev.event.job_id });
        tx.send(Ok(Event::default().event(END).data(data.to_string()))).await?;
        return Ok(true);
    }
    Ok(false)
}
