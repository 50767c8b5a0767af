// The one way the UI talks to `arkor dev`: every request carries the per-launch token
// that the server injected into the page as <meta name="arkor-studio-token">.

export type JobStatus = "queued" | "running" | "completed" | "failed" | "cancelled";
export const JOB_STATUSES: JobStatus[] = ["running", "completed", "queued", "failed", "cancelled"];

export type DatasetSource =
  | { type: "huggingface"; name: string; subset?: string | null; split?: string | null }
  | { type: "jsonl"; path?: string; url?: string; [k: string]: unknown };

/** The job's config as the backend resolved it (camelCase, as on the wire). */
export interface JobConfig {
  model: string;
  datasetSource?: DatasetSource | null;
  loraR?: number | null;
  loraAlpha?: number | null;
  loraDropout?: number | null;
  loraTargetModules?: string[] | null;
  loraUseRslora?: boolean | null;
  maxLength?: number | null;
  maxSteps?: number | null;
  numTrainEpochs?: number | null;
  learningRate?: number | null;
  batchSize?: number | null;
  gradientAccumulationSteps?: number | null;
  weightDecay?: number | null;
  optim?: string | null;
  lrSchedulerType?: string | null;
  warmupSteps?: number | null;
  loggingSteps?: number | null;
  saveSteps?: number | null;
  evalSteps?: number | null;
  evalSplit?: number | null;
  trainOnResponsesOnly?: boolean | null;
  seed?: number | null;
  [k: string]: unknown;
}

export interface Job {
  id: string;
  orgId: string;
  projectId: string;
  name: string;
  status: JobStatus | string;
  config: JobConfig;
  error?: string | null;
  createdAt: string;
  startedAt?: string | null;
  completedAt?: string | null;
  progress?: { step: number; totalSteps: number; loss?: number | null };
  /** While queued: its place in the backend's queue, 1 starts next. */
  queuePosition?: number | null;
  /** The remote worker (`arkor worker`) that leased it last; absent when the backend runs it. */
  worker?: string | null;
  /** Leases it has had: 2 or more after a lost worker's job was requeued. */
  attempt?: number | null;
}

export interface JobList {
  jobs: Job[];
  nextCursor?: string | null;
  total?: number;
}

export interface ArtifactFile {
  pathname: string;
  size: number;
  sha256: string;
}

export interface ArtifactSet {
  kind: "final" | "checkpoint";
  step: number;
  modelId: string;
  files: ArtifactFile[];
}

/** `POST /api/jobs/:id/export` body. */
export interface ExportRequest {
  format: "hf" | "gguf" | "gguf-lora" | "ollama";
  /** GGUF precision (the backend's default is f16). */
  quant?: "f32" | "f16" | "bf16" | "q8_0" | "q4_k_m";
  /** A checkpoint instead of the final adapter. */
  checkpointStep?: number;
  /** For the Ollama Modelfile. */
  systemPrompt?: string;
}

/** One export of a job's adapter. */
export interface ExportInfo {
  id: string;
  format: string;
  quant: string;
  /** `final` or `checkpoint-<step>`. */
  source: string;
  status: "running" | "completed" | "failed";
  createdAt: string;
  finishedAt?: string | null;
  error?: string | null;
  /** Downloadable with `downloadArtifact`. */
  files: ArtifactFile[];
  /** For `ollama`: the command that installs the downloaded folder. */
  ollamaCreate?: string | null;
}

/** `POST /api/jobs/:id/eval` body. */
export interface EvalRequest {
  /** Held-out rows (JSONL): an absolute path on a local backend. */
  datasetPath: string;
  /** A checkpoint instead of the final adapter. */
  checkpointStep?: number;
  /** Most tokens per reply (the backend's default is 256). */
  maxTokens?: number;
  /** Replaces each row's own system prompt. */
  systemPrompt?: string;
}

/** The totals of an evaluation. */
export interface EvalScores {
  rows: number;
  /** Replies equal to the reference (after trimming). */
  exactMatch: number;
  /** Rows whose reference is a JSON object. */
  jsonRows: number;
  /** Of those, replies that are valid JSON. */
  jsonValid: number;
  perKey: Record<string, { correct: number; total: number }>;
  /** JSON rows with a valid reply and every key right. */
  allKeysCorrect: number;
  elapsedSecs: number;
  tokensGenerated: number;
}

/** One evaluation of a job's adapter. */
export interface EvalInfo {
  id: string;
  /** `final` or `checkpoint-<step>`. */
  source: string;
  /** The training step of that adapter. */
  step: number;
  /** The rows' file name. */
  dataset: string;
  status: "running" | "completed" | "failed";
  createdAt: string;
  finishedAt?: string | null;
  error?: string | null;
  scores?: EvalScores | null;
  /** Every row, reply and score; downloadable with `downloadArtifact`. */
  reportPathname?: string | null;
}

export interface Credentials {
  token: string;
  mode: "anon" | "oauth" | string;
  baseUrl: string;
  orgSlug: string | null;
  projectSlug: string | null;
}

export interface Manifest {
  trainer: { name: string } | null;
  trainers?: { name: string; model?: string; dataset?: unknown; config?: JobConfig }[];
}

/** `{ baseModel }`, or an adapter: a job's final one or one of its checkpoints. */
export type ModelSource =
  | { kind: "base"; model: string }
  | { kind: "final"; jobId: string }
  | { kind: "checkpoint"; jobId: string; step: number };

/** A tool call as OpenAI writes it; `arguments` is JSON text. */
export interface ToolCall {
  id: string;
  type: "function";
  function: { name: string; arguments: string };
}

/** A message in the wire format (snake_case tool keys, as the backend and OpenAI spell them). */
export interface ChatMessage {
  role: "system" | "user" | "assistant" | "tool";
  content: string | null;
  tool_calls?: ToolCall[];
  tool_call_id?: string;
}

/** A function the model may call: `parameters` is a JSON Schema object. */
export interface ToolDefinition {
  type: "function";
  function: { name: string; description?: string; parameters?: Record<string, unknown> };
}

export type ToolChoice = "auto" | "none" | "required" | { type: "function"; function: { name: string } };

export interface ChatOptions {
  temperature?: number;
  topP?: number;
  maxTokens?: number;
  /** `{type: "json_object"}` or `{type: "json_schema", json_schema: {name, schema, strict}}`. */
  responseFormat?: Record<string, unknown>;
  /** vLLM's extension: exactly one of `regex`, `choice`, `grammar`, `json`, `json_object`. */
  structuredOutputs?: Record<string, unknown>;
  tools?: ToolDefinition[];
  toolChoice?: ToolChoice;
}

/** One piece of a streamed reply: text, whole tool calls, or why it ended (`stop`, `length`, `tool_calls`). */
export type ChatPiece = string | { toolCalls: ToolCall[] } | { finish: string };

/** A non-2xx answer: the HTTP status and the server's `error` message. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = "ApiError";
  }
}

let cachedToken: string | null = null;

/** The per-launch token from the page (read once). */
export function studioToken(): string {
  if (cachedToken === null) {
    const meta = typeof document === "undefined" ? null : document.querySelector('meta[name="arkor-studio-token"]');
    cachedToken = meta?.getAttribute("content") ?? "";
  }
  return cachedToken;
}

/** For tests. */
export function setStudioToken(token: string | null): void {
  cachedToken = token;
}

/** `fetch` with the token header. */
export function apiFetch(path: string, init: RequestInit = {}): Promise<Response> {
  const headers = new Headers(init.headers);
  headers.set("X-Arkor-Studio-Token", studioToken());
  return fetch(path, { ...init, headers });
}

/** Reads `{ error }` from a failed response, else `<status> <statusText>`. */
export async function errorOf(res: Response): Promise<ApiError> {
  let message = `${res.status} ${res.statusText}`.trim();
  try {
    const text = await res.text();
    if (text) {
      try {
        const body = JSON.parse(text) as { error?: unknown };
        if (typeof body.error === "string" && body.error) message = body.error;
      } catch {
        message = text.slice(0, 500);
      }
    }
  } catch {
    // Keep the status line.
  }
  return new ApiError(res.status, message);
}

export async function getJSON<T>(path: string, init?: RequestInit): Promise<T> {
  const res = await apiFetch(path, init);
  if (!res.ok) throw await errorOf(res);
  return (await res.json()) as T;
}

export function fetchCredentials(): Promise<Credentials> {
  return getJSON<Credentials>("/api/credentials");
}

/** The manifest, or `{ error }` when the project does not build (400). */
export async function fetchManifest(signal?: AbortSignal): Promise<Manifest | { error: string }> {
  const res = await apiFetch("/api/manifest", { signal });
  if (res.status === 400) return { error: (await errorOf(res)).message };
  if (!res.ok) throw await errorOf(res);
  return (await res.json()) as Manifest;
}

export interface JobQuery {
  limit?: number;
  cursor?: string | null;
  status?: string | null;
  q?: string | null;
}

export function jobsPath(query: JobQuery = {}): string {
  const p = new URLSearchParams();
  if (query.limit) p.set("limit", String(query.limit));
  if (query.cursor) p.set("cursor", query.cursor);
  if (query.status) p.set("status", query.status);
  if (query.q && query.q.trim()) p.set("q", query.q.trim());
  const s = p.toString();
  return s ? `/api/jobs?${s}` : "/api/jobs";
}

export function fetchJobs(query: JobQuery = {}, signal?: AbortSignal): Promise<JobList> {
  return getJSON<JobList>(jobsPath(query), { signal });
}

export async function fetchJob(id: string, signal?: AbortSignal): Promise<Job> {
  const body = await getJSON<{ job: Job }>(`/api/jobs/${encodeURIComponent(id)}`, { signal });
  return body.job;
}

export async function cancelJob(id: string): Promise<Job | null> {
  const res = await apiFetch(`/api/jobs/${encodeURIComponent(id)}/cancel`, { method: "POST" });
  if (!res.ok) throw await errorOf(res);
  const body = (await res.json().catch(() => null)) as { job?: Job } | null;
  return body?.job ?? null;
}

/** Moves a queued job to the front of the queue; a 409 (not queued any more) is thrown as an `ApiError`. */
export async function moveJobToFront(id: string): Promise<Job> {
  const body = await getJSON<{ job: Job }>(`/api/jobs/${encodeURIComponent(id)}/move-to-front`, { method: "POST" });
  return body.job;
}

export async function fetchArtifacts(id: string, signal?: AbortSignal): Promise<ArtifactSet[]> {
  const body = await getJSON<{ artifacts: ArtifactSet[] }>(`/api/jobs/${encodeURIComponent(id)}/artifacts`, {
    signal,
  });
  return body.artifacts;
}

/** Starts an export; the backend's 400 (naming the field) is thrown as an `ApiError`. */
export async function startExport(jobId: string, body: ExportRequest): Promise<ExportInfo> {
  return getJSON<ExportInfo>(`/api/jobs/${encodeURIComponent(jobId)}/export`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
}

/** The job's exports, newest first. */
export async function fetchExports(jobId: string, signal?: AbortSignal): Promise<ExportInfo[]> {
  const body = await getJSON<{ exports: ExportInfo[] }>(`/api/jobs/${encodeURIComponent(jobId)}/exports`, { signal });
  return body.exports;
}

/** Starts an evaluation; the backend's 400 (naming the field) is thrown as an `ApiError`. */
export async function startEval(jobId: string, body: EvalRequest): Promise<EvalInfo> {
  return getJSON<EvalInfo>(`/api/jobs/${encodeURIComponent(jobId)}/eval`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
}

/** The job's evaluations, newest first. */
export async function fetchEvals(jobId: string, signal?: AbortSignal): Promise<EvalInfo[]> {
  const body = await getJSON<{ evals: EvalInfo[] }>(`/api/jobs/${encodeURIComponent(jobId)}/evals`, { signal });
  return body.evals;
}

/** The project Studio runs in: its folder (absolute) and its reply schema (`data/reply.schema.json`). */
export interface ProjectInfo {
  dir: string;
  replySchema?: Record<string, unknown>;
  /** The schema file exists but is not a JSON object: what is wrong, with its path. */
  replySchemaError?: string;
}

export async function fetchProject(signal?: AbortSignal): Promise<ProjectInfo> {
  return getJSON<ProjectInfo>("/api/project", { signal });
}

/** The project directory Studio runs in (absolute). */
export async function fetchProjectDir(signal?: AbortSignal): Promise<string> {
  return (await fetchProject(signal)).dir;
}

export function artifactPath(jobId: string, pathname: string): string {
  return `/api/jobs/${encodeURIComponent(jobId)}/artifacts/${pathname.split("/").map(encodeURIComponent).join("/")}`;
}

/** Downloads one artifact file (a plain link cannot carry the token header). */
export async function downloadArtifact(jobId: string, pathname: string): Promise<void> {
  const res = await apiFetch(artifactPath(jobId, pathname));
  if (!res.ok) throw await errorOf(res);
  saveBlob(await res.blob(), pathname.split("/").pop() || "artifact");
}

export function saveBlob(blob: Blob, filename: string): void {
  const url = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = url;
  a.download = filename;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

/** The job's event stream for `EventSource` (which cannot send headers). */
export function eventsUrl(jobId: string): string {
  return `/api/jobs/${encodeURIComponent(jobId)}/events?studioToken=${encodeURIComponent(studioToken())}`;
}

/**
 * Runs `arkor start` through Studio and hands its output to `onChunk` as it comes.
 * The server appends `---` and `exit=<code>` when the process ends.
 */
export async function streamTraining(
  body: { trainer?: string },
  onChunk: (text: string) => void,
  signal?: AbortSignal,
): Promise<void> {
  const res = await apiFetch("/api/train", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
    signal,
  });
  if (!res.ok) throw await errorOf(res);
  if (!res.body) throw new Error("Training response has no body");
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  const onAbort = () => void reader.cancel().catch(() => {});
  signal?.addEventListener("abort", onAbort);
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      const text = decoder.decode(value, { stream: true });
      if (text) onChunk(text);
    }
    const rest = decoder.decode();
    if (rest) onChunk(rest);
  } finally {
    signal?.removeEventListener("abort", onAbort);
  }
}

/** The chat body for a model source (the backend's `/v1/inference/chat` shape). */
export function chatBody(source: ModelSource, messages: ChatMessage[], options: ChatOptions = {}): Record<string, unknown> {
  const body: Record<string, unknown> = { messages, stream: true };
  if (source.kind === "base") body.baseModel = source.model;
  else if (source.kind === "final") body.adapter = { kind: "final", jobId: source.jobId };
  else body.adapter = { kind: "checkpoint", jobId: source.jobId, step: source.step };
  if (options.temperature !== undefined) body.temperature = options.temperature;
  if (options.topP !== undefined) body.topP = options.topP;
  if (options.maxTokens !== undefined) body.maxTokens = options.maxTokens;
  if (options.responseFormat) body.responseFormat = options.responseFormat;
  if (options.structuredOutputs) body.structuredOutputs = options.structuredOutputs;
  if (options.tools?.length) {
    body.tools = options.tools;
    if (options.toolChoice) body.toolChoice = options.toolChoice;
  }
  return body;
}

/** Parses SSE text into frames; returns the frames and the unfinished tail. */
export function parseSseFrames(buffer: string): { frames: { event: string; data: string; id?: string }[]; rest: string } {
  const frames: { event: string; data: string; id?: string }[] = [];
  const text = buffer.replace(/\r\n?/g, "\n");
  let start = 0;
  for (;;) {
    const end = text.indexOf("\n\n", start);
    if (end < 0) break;
    const block = text.slice(start, end);
    start = end + 2;
    let event = "message";
    let id: string | undefined;
    const data: string[] = [];
    for (const line of block.split("\n")) {
      if (!line || line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "event") event = value;
      else if (field === "data") data.push(value);
      else if (field === "id") id = value;
    }
    if (data.length > 0 || event !== "message") frames.push({ event, data: data.join("\n"), id });
  }
  return { frames, rest: text.slice(start) };
}

/**
 * Streams a chat reply: yields text fragments as they arrive, and tool calls (each whole) as
 * `{toolCalls}`. Stops on `[DONE]` or `end`; an `error` frame throws with its message.
 */
export async function* streamChat(
  source: ModelSource,
  messages: ChatMessage[],
  options: ChatOptions = {},
  signal?: AbortSignal,
): AsyncGenerator<ChatPiece> {
  const res = await apiFetch("/api/inference/chat", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(chatBody(source, messages, options)),
    signal,
  });
  if (!res.ok) throw await errorOf(res);
  if (!res.body) throw new Error("Inference response has no body");
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  try {
    for (;;) {
      const { done, value } = await reader.read();
      buffer += done ? decoder.decode() : decoder.decode(value, { stream: true });
      const { frames, rest } = parseSseFrames(done ? buffer + "\n\n" : buffer);
      buffer = rest;
      for (const f of frames) {
        if (f.event === "ping") continue;
        if (f.event === "end" || f.data === "[DONE]") return;
        if (f.event === "error") {
          let msg = f.data;
          try {
            const e = JSON.parse(f.data) as { error?: string | { message?: string } };
            msg = typeof e.error === "string" ? e.error : (e.error?.message ?? msg);
          } catch {
            // Plain text.
          }
          throw new Error(msg || "inference failed");
        }
        const delta = textOf(f.data);
        if (delta) yield delta;
        const calls = toolCallsOf(f.data);
        if (calls.length) yield { toolCalls: calls };
        const finish = finishOf(f.data);
        if (finish) yield { finish };
      }
      if (done) return;
    }
  } finally {
    reader.cancel().catch(() => {});
  }
}

/** The text of one streamed chunk (OpenAI's `choices[0].delta.content`). */
export function textOf(data: string): string {
  try {
    const v = JSON.parse(data) as { choices?: { delta?: { content?: string | null } }[] };
    return v.choices?.[0]?.delta?.content ?? "";
  } catch {
    return "";
  }
}

/** The finish reason of one streamed chunk (`choices[0].finish_reason`), if any. */
export function finishOf(data: string): string | null {
  try {
    const v = JSON.parse(data) as { choices?: { finish_reason?: string | null }[] };
    return v.choices?.[0]?.finish_reason ?? null;
  } catch {
    return null;
  }
}

/** The tool calls of one streamed chunk (`choices[0].delta.tool_calls`), well-formed ones only. */
export function toolCallsOf(data: string): ToolCall[] {
  let calls: unknown;
  try {
    calls = (JSON.parse(data) as { choices?: { delta?: { tool_calls?: unknown } }[] }).choices?.[0]?.delta?.tool_calls;
  } catch {
    return [];
  }
  if (!Array.isArray(calls)) return [];
  const out: ToolCall[] = [];
  for (const c of calls as { id?: unknown; function?: { name?: unknown; arguments?: unknown } }[]) {
    const name = c?.function?.name;
    if (typeof name !== "string") continue;
    const args = c.function?.arguments;
    out.push({
      id: typeof c.id === "string" ? c.id : `call_${out.length}`,
      type: "function",
      function: { name, arguments: typeof args === "string" ? args : JSON.stringify(args ?? {}) },
    });
  }
  return out;
}

/** One entry of the backend's model list (`GET /v1/models`). */
export interface ModelInfo {
  id: string;
  /** `base`, `final` or `checkpoint`. */
  kind: string;
  base_model?: string;
  /** For base models: loadable without a download. */
  available_offline?: boolean;
  job_id?: string;
  step?: number;
  owned_by?: string;
  created?: number;
}

export async function fetchModels(signal?: AbortSignal): Promise<ModelInfo[]> {
  const body = await getJSON<{ data: ModelInfo[] }>("/api/models", { signal });
  return body.data;
}
