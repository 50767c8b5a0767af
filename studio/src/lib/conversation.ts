// Playground logic that needs no DOM: the conversation state and its streaming transitions,
// the messages sent to the model, the export file, and the model source <-> URL params.

import type { ChatMessage, ChatOptions, ChatPiece, ModelSource, ToolCall } from "./api";
import { type OutputSettings, setOutputParams, setToolParams, type ToolSettings } from "./shaping";

// ---------------------------------------------------------------------------------------------
// Conversation state

export interface Bubble {
  id: number;
  role: "user" | "assistant" | "tool";
  content: string;
  /** Assistant: the functions the model called (each whole). */
  toolCalls?: ToolCall[];
  /** Tool: the call this result answers, and its function's name. */
  toolCallId?: string;
  toolName?: string;
  /** The assistant reply is still arriving. */
  streaming?: boolean;
  /** The request failed: `content` is `[error] <message>`; never sent back to the model. */
  error?: boolean;
  /** The user stopped the reply: `content` is what had arrived. */
  stopped?: boolean;
  /** Why the model stopped, when the server said (`length`: cut at max tokens). */
  finish?: string;
}

export interface Conversation {
  bubbles: Bubble[];
  /** Ids stay unique across clears, so a late fragment of an aborted reply finds nothing. */
  nextId: number;
}

export function emptyConversation(): Conversation {
  return { bubbles: [], nextId: 1 };
}

/** Empties the conversation; ids are not reused. */
export function clearConversation(conv: Conversation): Conversation {
  return { bubbles: [], nextId: conv.nextId };
}

/** Appends the user's message and an empty streaming assistant bubble; returns that bubble's id. */
export function startTurn(conv: Conversation, text: string): { conv: Conversation; assistantId: number } {
  const userId = conv.nextId;
  const assistantId = conv.nextId + 1;
  return {
    assistantId,
    conv: {
      nextId: conv.nextId + 2,
      bubbles: [
        ...conv.bubbles,
        { id: userId, role: "user", content: text },
        { id: assistantId, role: "assistant", content: "", streaming: true },
      ],
    },
  };
}

function updateStreaming(conv: Conversation, id: number, f: (b: Bubble) => Bubble): Conversation {
  const i = conv.bubbles.findIndex((b) => b.id === id);
  if (i < 0 || !conv.bubbles[i].streaming) return conv;
  const bubbles = conv.bubbles.slice();
  bubbles[i] = f(bubbles[i]);
  return { ...conv, bubbles };
}

/** Adds a streamed fragment to a reply that is still streaming (else nothing changes). */
export function appendFragment(conv: Conversation, id: number, fragment: string): Conversation {
  if (!fragment) return conv;
  return updateStreaming(conv, id, (b) => ({ ...b, content: b.content + fragment }));
}

/** Adds tool calls to a reply that is still streaming. */
export function appendToolCalls(conv: Conversation, id: number, calls: ToolCall[]): Conversation {
  if (calls.length === 0) return conv;
  return updateStreaming(conv, id, (b) => ({ ...b, toolCalls: [...(b.toolCalls ?? []), ...calls] }));
}

/** Adds a streamed piece (text or tool calls) to a reply that is still streaming. */
export function appendPiece(conv: Conversation, id: number, piece: ChatPiece): Conversation {
  if (typeof piece === "string") return appendFragment(conv, id, piece);
  if ("toolCalls" in piece) return appendToolCalls(conv, id, piece.toolCalls);
  return updateStreaming(conv, id, (b) => ({ ...b, finish: piece.finish }));
}

/** A reply that continues after tool results: an empty streaming assistant bubble, no user message. */
export function startContinuation(conv: Conversation): { conv: Conversation; assistantId: number } {
  const assistantId = conv.nextId;
  return {
    assistantId,
    conv: { nextId: conv.nextId + 1, bubbles: [...conv.bubbles, { id: assistantId, role: "assistant", content: "", streaming: true }] },
  };
}

/**
 * The calls of the last reply still waiting for a result: those of the last assistant bubble
 * when only tool results follow it (a new user message leaves them unanswered for good).
 */
export function pendingToolCalls(conv: Conversation): ToolCall[] {
  let i = conv.bubbles.length - 1;
  while (i >= 0 && conv.bubbles[i].role === "tool") i--;
  const last = conv.bubbles[i];
  if (!last || last.role !== "assistant" || last.streaming || last.error || !last.toolCalls?.length) return [];
  const answered = new Set(conv.bubbles.slice(i + 1).map((b) => b.toolCallId));
  return last.toolCalls.filter((c) => !answered.has(c.id));
}

/** The user's result for a pending call (anything else changes nothing). */
export function answerToolCall(conv: Conversation, callId: string, content: string): Conversation {
  const call = pendingToolCalls(conv).find((c) => c.id === callId);
  if (!call) return conv;
  return {
    nextId: conv.nextId + 1,
    bubbles: [...conv.bubbles, { id: conv.nextId, role: "tool", content, toolCallId: call.id, toolName: call.function.name }],
  };
}

/** The reply ended normally. */
export function finishTurn(conv: Conversation, id: number): Conversation {
  return updateStreaming(conv, id, ({ streaming: _s, ...b }) => b);
}

/** The user stopped the reply: keep what arrived. */
export function stopTurn(conv: Conversation, id: number): Conversation {
  return updateStreaming(conv, id, ({ streaming: _s, ...b }) => ({ ...b, stopped: true }));
}

/** The request failed: the bubble shows `[error] <message>` and is marked as an error. */
export function failTurn(conv: Conversation, id: number, message: string): Conversation {
  return updateStreaming(conv, id, ({ streaming: _s, ...b }) => ({
    ...b,
    content: `[error] ${message || "request failed"}`,
    error: true,
  }));
}

export function isStreaming(conv: Conversation): boolean {
  return conv.bubbles.some((b) => b.streaming);
}


// ---------------------------------------------------------------------------------------------
// What is sent

/**
 * The messages for the next request: the system prompt (when not blank), then the earlier
 * exchanges, then the new user message (none when the reply continues after tool results).
 * An exchange whose reply failed, is still streaming, or is empty (stopped before any text, or
 * only tool calls nobody answered) is left out together with the user message it answered, so
 * roles keep alternating and no `[error]` text reaches the model. A reply keeps only the tool
 * calls that got a result, each followed by its `tool` message.
 */
export function messagesToSend(history: Bubble[], systemPrompt: string, userText: string | null): ChatMessage[] {
  const answered = new Set(history.filter((b) => b.role === "tool").map((b) => b.toolCallId));
  const out: ChatMessage[] = [];
  if (systemPrompt.trim()) out.push({ role: "system", content: systemPrompt });
  const sent = new Set<string>();
  for (let i = 0; i < history.length; i++) {
    const b = history[i];
    if (b.role === "user") {
      const reply = history[i + 1];
      if (reply && reply.role === "assistant" && !usable(reply, answered)) {
        i++; // Skip the failed exchange.
        continue;
      }
      out.push({ role: "user", content: b.content });
    } else if (b.role === "tool") {
      if (b.toolCallId && sent.has(b.toolCallId)) out.push({ role: "tool", content: b.content, tool_call_id: b.toolCallId });
    } else if (usable(b, answered)) {
      const calls = (b.toolCalls ?? []).filter((c) => answered.has(c.id));
      if (calls.length === 0) {
        out.push({ role: "assistant", content: b.content });
        continue;
      }
      for (const c of calls) sent.add(c.id);
      out.push({ role: "assistant", content: b.content || null, tool_calls: calls });
    }
  }
  if (userText !== null) out.push({ role: "user", content: userText });
  return out;
}

function usable(b: Bubble, answered: Set<string | undefined>): boolean {
  if (b.error || b.streaming) return false;
  return b.content !== "" || (b.toolCalls ?? []).some((c) => answered.has(c.id));
}

// ---------------------------------------------------------------------------------------------
// Generation settings

export interface ChatSettings {
  systemPrompt: string;
  temperature: number;
  topP: number;
  maxTokens: number;
}

export const DEFAULT_SETTINGS: ChatSettings = { systemPrompt: "", temperature: 0.7, topP: 1, maxTokens: 256 };

export const SETTING_LIMITS = {
  temperature: { min: 0, max: 2, step: 0.05 },
  topP: { min: 0, max: 1, step: 0.05 },
  maxTokens: { min: 1, max: 4096, step: 1 },
} as const;

/** A typed value clamped into range; blank or not a number gives the default. */
export function clampSetting(key: keyof typeof SETTING_LIMITS, raw: string | number): number {
  const { min, max } = SETTING_LIMITS[key];
  const n = typeof raw === "number" ? raw : raw.trim() === "" ? NaN : Number(raw);
  if (!Number.isFinite(n)) return DEFAULT_SETTINGS[key];
  const v = Math.min(max, Math.max(min, n));
  return key === "maxTokens" ? Math.round(v) : v;
}

export function chatOptions(s: ChatSettings): ChatOptions {
  return { temperature: s.temperature, topP: s.topP, maxTokens: s.maxTokens };
}

// ---------------------------------------------------------------------------------------------
// Export

export interface ExportedSource {
  kind: ModelSource["kind"];
  model?: string;
  jobId?: string;
  step?: number;
  /** What the page showed, e.g. `Adapter: my-run (abcd…wxyz)`. */
  label?: string;
}

export interface ExportedMessage {
  role: "user" | "assistant" | "tool";
  content: string;
  tool_calls?: ToolCall[];
  tool_call_id?: string;
  error?: true;
  stopped?: true;
  /** The reply was cut at the max tokens limit. */
  truncated?: true;
}

/** The reply shaping of a request, as sent (`responseFormat`, `structuredOutputs`, `tools`, `toolChoice`). */
export type ReplyShaping = { [K in "responseFormat" | "structuredOutputs" | "tools" | "toolChoice"]?: ChatOptions[K] };

export interface ConversationExport {
  exportedAt: string;
  source: ExportedSource | null;
  settings: ChatSettings & ReplyShaping;
  messages: ExportedMessage[];
  /** Side by side only: the second column. */
  compare?: { source: ExportedSource | null; messages: ExportedMessage[] };
}

export function exportedSource(source: ModelSource | null, label?: string): ExportedSource | null {
  if (!source) return null;
  const out: ExportedSource = { ...source };
  if (label) out.label = label;
  return out;
}

function exportedMessages(conv: Conversation): ExportedMessage[] {
  return conv.bubbles.map((b) => {
    const m: ExportedMessage = { role: b.role, content: b.content };
    if (b.toolCalls?.length) m.tool_calls = b.toolCalls;
    if (b.toolCallId) m.tool_call_id = b.toolCallId;
    if (b.error) m.error = true;
    if (b.stopped) m.stopped = true;
    if (b.finish === "length") m.truncated = true;
    return m;
  });
}

export function buildExport(args: {
  now: Date;
  settings: ChatSettings & ReplyShaping;
  a: { source: ModelSource | null; label?: string; conv: Conversation };
  b?: { source: ModelSource | null; label?: string; conv: Conversation } | null;
}): ConversationExport {
  const out: ConversationExport = {
    exportedAt: args.now.toISOString(),
    source: exportedSource(args.a.source, args.a.label),
    settings: { ...args.settings },
    messages: exportedMessages(args.a.conv),
  };
  if (args.b) out.compare = { source: exportedSource(args.b.source, args.b.label), messages: exportedMessages(args.b.conv) };
  return out;
}

/** `arkor-playground-2025-01-02T03-04-05Z.json` (UTC; no characters that file systems reject). */
export function exportFilename(now: Date): string {
  const stamp = now.toISOString().replace(/\.\d+Z$/, "Z").replace(/:/g, "-");
  return `arkor-playground-${stamp}.json`;
}

// ---------------------------------------------------------------------------------------------
// Model source <-> URL params
//
// A: `adapter=<jobId>` (final adapter), `adapter=<jobId>&step=<n>` (checkpoint), `base=<model>`.
// Side by side adds `compare=1` and the second source with a `b_` prefix.

/** A non-negative integer step, else null. */
export function parseStep(raw: string | null | undefined): number | null {
  if (raw === null || raw === undefined) return null;
  const s = raw.trim();
  if (!/^\d+$/.test(s)) return null;
  const n = Number(s);
  return Number.isSafeInteger(n) ? n : null;
}

/** The source named by the params (with `prefix` for the second one), or null. */
export function sourceFromParams(params: URLSearchParams, prefix = ""): ModelSource | null {
  const adapter = params.get(`${prefix}adapter`)?.trim();
  if (adapter) {
    const step = parseStep(params.get(`${prefix}step`));
    return step === null ? { kind: "final", jobId: adapter } : { kind: "checkpoint", jobId: adapter, step };
  }
  const base = params.get(`${prefix}base`)?.trim();
  if (base) return { kind: "base", model: base };
  return null;
}

export function setSourceParams(params: URLSearchParams, source: ModelSource | null, prefix = ""): void {
  if (!source) return;
  if (source.kind === "base") params.set(`${prefix}base`, source.model);
  else {
    params.set(`${prefix}adapter`, source.jobId);
    if (source.kind === "checkpoint") params.set(`${prefix}step`, String(source.step));
  }
}

export interface PlaygroundUrlState {
  a: ModelSource | null;
  /** Side by side is on (even before B resolves). */
  compare: boolean;
  b: ModelSource | null;
  /** The response format, written when it differs from `outputDefault` (see shaping.ts). */
  output?: OutputSettings;
  outputDefault?: OutputSettings;
  tools?: ToolSettings;
}

export function urlStateFromParams(params: URLSearchParams): PlaygroundUrlState {
  const compare = ["1", "true", "yes"].includes((params.get("compare") ?? "").trim().toLowerCase());
  return { a: sourceFromParams(params), compare, b: compare ? sourceFromParams(params, "b_") : null };
}

export function paramsFromUrlState(state: PlaygroundUrlState): URLSearchParams {
  const p = new URLSearchParams();
  setSourceParams(p, state.a);
  if (state.compare) {
    p.set("compare", "1");
    setSourceParams(p, state.b, "b_");
  }
  if (state.output && state.outputDefault) setOutputParams(p, state.output, state.outputDefault);
  if (state.tools) setToolParams(p, state.tools);
  return p;
}

export function playgroundHash(state: PlaygroundUrlState): string {
  const q = paramsFromUrlState(state).toString();
  return q ? `#/playground?${q}` : "#/playground";
}

/** A stable key for a source (equal keys = same model). */
export function sourceKey(source: ModelSource | null): string {
  if (!source) return "";
  if (source.kind === "base") return `base:${source.model}`;
  if (source.kind === "final") return `final:${source.jobId}`;
  return `checkpoint:${source.jobId}:${source.step}`;
}

// ---------------------------------------------------------------------------------------------
// Picker selection

export type SourceMode = ModelSource["kind"];

/** One picker's choices; each mode remembers its own selection. */
export interface Pick {
  mode: SourceMode;
  base: string;
  /** "Other…" is chosen: `base` is typed, not picked from the list. */
  customBase?: boolean;
  adapterJob: string;
  ckptJob: string;
  ckptStep: number | null;
}

export interface PickData {
  /** Base model ids, in list order. */
  baseModels: string[];
  /** Completed jobs (Adapter mode), in list order. */
  completed: { id: string; config?: { model?: string } }[];
  /** Running and completed jobs (Checkpoint mode), in list order. */
  ckptJobs: { id: string; config?: { model?: string } }[];
}

export const DEFAULT_BASE_MODEL = "arkor/tiny";

export function defaultBaseModel(baseModels: string[]): string {
  return baseModels.includes(DEFAULT_BASE_MODEL) ? DEFAULT_BASE_MODEL : (baseModels[0] ?? DEFAULT_BASE_MODEL);
}

/**
 * The picker state for a wanted source (from the URL, or null) given the loaded lists: unknown
 * job ids fall back to the first job of that list; with no job at all the mode stays (the page
 * says "No completed jobs yet") and nothing is selected. A checkpoint step stays as asked until
 * the job's steps are known (see `settleStep`).
 */
export function resolvePick(want: ModelSource | null, data: PickData): Pick {
  const base0 = defaultBaseModel(data.baseModels);
  const pick: Pick = {
    mode: "base",
    base: base0,
    adapterJob: data.completed[0]?.id ?? "",
    ckptJob: data.ckptJobs[0]?.id ?? "",
    ckptStep: null,
  };
  if (!want) return pick;
  if (want.kind === "base") {
    pick.base = want.model;
    if (!data.baseModels.includes(want.model)) pick.customBase = true;
    return pick;
  }
  if (want.kind === "final") {
    pick.mode = "final";
    if (data.completed.some((j) => j.id === want.jobId)) pick.adapterJob = want.jobId;
    return pick;
  }
  pick.mode = "checkpoint";
  if (data.ckptJobs.some((j) => j.id === want.jobId)) {
    pick.ckptJob = want.jobId;
    pick.ckptStep = want.step;
  }
  return pick;
}

/** After the job lists changed: a selected job that is gone falls back to the first one. */
export function normalizePick(pick: Pick, data: PickData): Pick {
  let next = pick;
  if (!data.completed.some((j) => j.id === pick.adapterJob)) {
    const first = data.completed[0]?.id ?? "";
    if (first !== pick.adapterJob) next = { ...next, adapterJob: first };
  }
  if (!data.ckptJobs.some((j) => j.id === pick.ckptJob)) {
    const first = data.ckptJobs[0]?.id ?? "";
    if (first !== pick.ckptJob) next = { ...next, ckptJob: first, ckptStep: null };
  }
  return next;
}

/** The step to show once a job's checkpoint steps are known: the chosen one if listed, else the latest. */
export function settleStep(current: number | null, steps: number[]): number | null {
  if (steps.length === 0) return current;
  if (current !== null && steps.includes(current)) return current;
  return Math.max(...steps);
}

/** The source a picker names, or null while it cannot be used yet. */
export function pickSource(pick: Pick): ModelSource | null {
  if (pick.mode === "base") return pick.base.trim() ? { kind: "base", model: pick.base.trim() } : null;
  if (pick.mode === "final") return pick.adapterJob ? { kind: "final", jobId: pick.adapterJob } : null;
  return pick.ckptJob && pick.ckptStep !== null ? { kind: "checkpoint", jobId: pick.ckptJob, step: pick.ckptStep } : null;
}

/**
 * The second picker's default: the base model of A's job when A is an adapter or checkpoint;
 * when A is a base model, the first completed adapter trained on it (else any), else the same base.
 */
export function defaultComparePick(a: Pick, data: PickData): Pick {
  const jobs = [...data.completed, ...data.ckptJobs];
  const b: Pick = { ...a, mode: "base" };
  if (a.mode !== "base") {
    const jobId = a.mode === "final" ? a.adapterJob : a.ckptJob;
    const model = jobs.find((j) => j.id === jobId)?.config?.model;
    if (model) b.base = model;
    return b;
  }
  const match = data.completed.find((j) => j.config?.model === a.base) ?? data.completed[0];
  if (match) return { ...b, mode: "final", adapterJob: match.id };
  return b;
}

// ---------------------------------------------------------------------------------------------
// Base models beyond the list: "Other…" and a typed reference

/** The base model select's value for "Other…". */
export const OTHER_BASE = "__other__";

/** What the base model select shows: a listed model, or "Other…" for a typed one. */
export function baseChoice(pick: Pick, baseModels: readonly string[]): string {
  return pick.customBase || !baseModels.includes(pick.base) ? OTHER_BASE : pick.base;
}

/** The pick after choosing `value` in the base model select ("Other…" keeps a typed model). */
export function chooseBase(pick: Pick, value: string, baseModels: readonly string[]): Pick {
  if (value !== OTHER_BASE) return { ...pick, base: value, customBase: false };
  return { ...pick, base: baseModels.includes(pick.base) ? "" : pick.base, customBase: true };
}

/**
 * What a typed model reference is, as the backend reads it: a `.gguf` file or a model
 * directory (absolute paths on the backend's machine), `ollama:NAME[:TAG]`, or a Hugging Face
 * id. `warn` when the backend will refuse it.
 */
export function describeModelRef(raw: string): { text: string; warn: boolean } {
  const ref = raw.trim();
  const absolute = /^(\/|[A-Za-z]:[\\/]|\\\\)/.test(ref);
  if (!ref) return { text: "A .gguf file or model directory (absolute path), ollama:NAME[:TAG], or a Hugging Face id", warn: false };
  if (ref === DEFAULT_BASE_MODEL) return { text: "arkor's built-in tiny test model", warn: false };
  if (/^ollama:./i.test(ref)) return { text: "An Ollama model from its local store", warn: false };
  if (/\.gguf$/i.test(ref)) return absolute ? { text: "A GGUF file", warn: false } : { text: "Use the .gguf file's absolute path", warn: true };
  if (absolute) return { text: "A model directory (with config.json)", warn: false };
  if (/^[\w.-]+\/[\w.-]+$/.test(ref)) return { text: "A Hugging Face model id", warn: false };
  return { text: "Expected an absolute path, ollama:NAME[:TAG] or owner/name", warn: true };
}
