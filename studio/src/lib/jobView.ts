// Pure logic of the job detail page: the state built from the event stream, the status shown,
// event-log messages, checkpoints and the metadata rows (unit-tested).

import type { ArtifactFile, ArtifactSet, DatasetSource, JobConfig } from "./api";
import { type ChartPoint, formatLr, mergePoints, MAX_POINTS } from "./chart";
import type { JobEventFrame } from "./jobEvents";

export const MAX_LOG_ENTRIES = 500;

export type TerminalStatus = "completed" | "failed" | "cancelled";
const TERMINAL = new Set<string>(["completed", "failed", "cancelled"]);

export function isTerminalStatus(status: string | null | undefined): status is TerminalStatus {
  return !!status && TERMINAL.has(status);
}

/** The terminal status an event type announces, or null. */
export function terminalStatusOf(type: string): TerminalStatus | null {
  if (type === "training.completed") return "completed";
  if (type === "training.failed") return "failed";
  if (type === "training.cancelled") return "cancelled";
  return null;
}

/**
 * The status to show, in precedence: a terminal event seen this session > a polled terminal
 * status > `running` derived from events > the polled status > `queued`.
 */
export function resolveStatus(
  polled: string | null | undefined,
  events: { terminal: { status: TerminalStatus } | null; running: boolean },
): string {
  if (events.terminal) return events.terminal.status;
  if (isTerminalStatus(polled)) return polled;
  if (events.running) return "running";
  if (polled) return polled;
  return "queued";
}

// ---------------------------------------------------------------- event messages

const num = (v: unknown): number | undefined => (typeof v === "number" && Number.isFinite(v) ? v : undefined);
const str = (v: unknown): string | undefined => (typeof v === "string" && v ? v : undefined);
const obj = (v: unknown): Record<string, unknown> | undefined =>
  v && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;

/** 1234567 -> `1,234,567`. */
export function groupDigits(n: number): string {
  return Math.round(n).toLocaleString("en-US");
}

export interface TrainingMetadata {
  totalSteps?: number;
  startStep?: number;
  trainRows?: number;
  evalRows?: number;
  trainableParameters?: number;
  dataset?: unknown;
  /** The arkor version that ran the job (newer backends only). */
  arkorVersion?: string;
  /** SHA-256 of the training data as read (newer backends only). */
  datasetSha256?: string;
}

export function metadataOf(data: Record<string, unknown>): TrainingMetadata | null {
  const m = obj(data.metadata);
  if (!m) return null;
  return {
    totalSteps: num(m.totalSteps),
    startStep: num(m.startStep),
    trainRows: num(m.trainRows),
    evalRows: num(m.evalRows),
    trainableParameters: num(m.trainableParameters),
    dataset: m.dataset,
    arkorVersion: str(m.arkorVersion),
    datasetSha256: str(m.datasetSha256),
  };
}

function artifactsOf(data: Record<string, unknown>): ArtifactFile[] {
  if (!Array.isArray(data.artifacts)) return [];
  return data.artifacts
    .map((a): ArtifactFile | null => {
      const o = obj(a);
      const pathname = o && str(o.pathname);
      if (!o || !pathname) return null;
      return { pathname, size: num(o.size) ?? NaN, sha256: str(o.sha256) ?? "" };
    })
    .filter((a): a is ArtifactFile => a !== null);
}

/** The log line's message for one event. */
export function eventMessage(type: string, data: Record<string, unknown>): string {
  switch (type) {
    case "training.started": {
      const m = metadataOf(data);
      const parts: string[] = [];
      if (m?.totalSteps !== undefined) parts.push(`${groupDigits(m.totalSteps)} steps`);
      if (m?.trainRows !== undefined) parts.push(`${groupDigits(m.trainRows)} rows`);
      if (m?.trainableParameters !== undefined) parts.push(`${groupDigits(m.trainableParameters)} trainable parameters`);
      return parts.length ? parts.join(", ") : "started";
    }
    case "training.log": {
      const step = num(data.step);
      let s = `step=${step ?? "-"}`;
      const loss = num(data.loss);
      const evalLoss = num(data.evalLoss);
      const lr = num(data.learningRate);
      if (loss !== undefined) s += ` loss=${loss.toFixed(4)}`;
      if (evalLoss !== undefined) s += ` evalLoss=${evalLoss.toFixed(4)}`;
      if (lr !== undefined) s += ` lr=${formatLr(lr)}`;
      return s;
    }
    case "checkpoint.saved":
      return `step=${num(data.step) ?? "-"}`;
    case "training.completed": {
      const n = Array.isArray(data.artifacts) ? data.artifacts.length : 0;
      return `${n} ${n === 1 ? "artifact" : "artifacts"}`;
    }
    case "training.failed":
      return str(data.error) ?? "failed";
    case "training.cancelled": {
      const step = num(data.step);
      return step === undefined ? "cancelled" : `step=${step}`;
    }
    default:
      return "";
  }
}

export interface EventLogEntry {
  key: number;
  time: string;
  type: string;
  message: string;
}

/** Appends, keeping only the last `cap` entries (a new array). */
export function appendCapped<T>(list: readonly T[], item: T, cap = MAX_LOG_ENTRIES): T[] {
  const out = list.length >= cap ? list.slice(list.length - cap + 1) : list.slice();
  out.push(item);
  return out;
}

/** The chart point a `training.log` event carries, or null. */
export function pointOf(frame: { type: string; data: Record<string, unknown> }): Partial<ChartPoint> | null {
  if (frame.type !== "training.log") return null;
  const step = num(frame.data.step);
  if (step === undefined) return null;
  return {
    step,
    loss: num(frame.data.loss),
    evalLoss: num(frame.data.evalLoss),
    learningRate: num(frame.data.learningRate),
    tokensSeen: num(frame.data.tokensSeen),
  };
}

// ---------------------------------------------------------------- the session's event state

export interface EventCheckpoint {
  step: number;
  files: ArtifactFile[];
}

export interface JobEventState {
  /** Highest event id applied (frames at or below it are replays and ignored). */
  lastId: number;
  seq: number;
  log: EventLogEntry[];
  points: ChartPoint[];
  running: boolean;
  startedAt: string | null;
  metadata: TrainingMetadata | null;
  lastStep: number | null;
  totalSteps: number | null;
  checkpoints: EventCheckpoint[];
  terminal: {
    status: TerminalStatus;
    at: string;
    error?: string;
    step?: number;
    artifactCount?: number;
    trainLoss?: number;
  } | null;
}

export const initialEventState: JobEventState = {
  lastId: -1,
  seq: 0,
  log: [],
  points: [],
  running: false,
  startedAt: null,
  metadata: null,
  lastStep: null,
  totalSteps: null,
  checkpoints: [],
  terminal: null,
};

/** Folds one frame into the state (returns the same state for a replayed id). */
export function applyEvent(
  state: JobEventState,
  frame: JobEventFrame | { id: number | null; type: string; timestamp: string; data: Record<string, unknown> },
  caps: { log?: number; points?: number } = {},
): JobEventState {
  if (frame.id !== null && frame.id <= state.lastId) return state;
  const data = frame.data ?? {};
  const s: JobEventState = {
    ...state,
    lastId: frame.id !== null ? frame.id : state.lastId,
    seq: state.seq + 1,
    log: appendCapped(
      state.log,
      { key: state.seq, time: frame.timestamp, type: frame.type, message: eventMessage(frame.type, data) },
      caps.log ?? MAX_LOG_ENTRIES,
    ),
  };
  const step = num(data.step);
  const bumpStep = (v: number | undefined) => {
    if (v !== undefined && (s.lastStep === null || v > s.lastStep)) s.lastStep = v;
  };
  switch (frame.type) {
    case "training.started": {
      s.running = true;
      s.startedAt = s.startedAt ?? frame.timestamp;
      s.metadata = metadataOf(data) ?? s.metadata;
      if (s.metadata?.totalSteps !== undefined) s.totalSteps = s.metadata.totalSteps;
      break;
    }
    case "training.log": {
      s.running = true;
      const p = pointOf(frame);
      if (p) s.points = mergePoints(s.points, [p], caps.points ?? MAX_POINTS);
      bumpStep(step);
      const total = num(data.totalSteps);
      if (total !== undefined) s.totalSteps = total;
      break;
    }
    case "checkpoint.saved": {
      s.running = true;
      if (step !== undefined) {
        const rest = s.checkpoints.filter((c) => c.step !== step);
        s.checkpoints = [...rest, { step, files: artifactsOf(data) }].sort((a, b) => a.step - b.step);
      }
      bumpStep(step);
      break;
    }
    case "training.completed":
    case "training.failed":
    case "training.cancelled": {
      const status = terminalStatusOf(frame.type)!;
      const metrics = obj(data.metrics);
      const endStep = step ?? (metrics ? num(metrics.step) : undefined);
      bumpStep(endStep);
      s.running = false;
      s.terminal = {
        status,
        at: frame.timestamp,
        error: status === "failed" ? (str(data.error) ?? undefined) : undefined,
        step: endStep,
        artifactCount: status === "completed" && Array.isArray(data.artifacts) ? data.artifacts.length : undefined,
        trainLoss: metrics ? num(metrics.trainLoss) : undefined,
      };
      break;
    }
    default:
      break;
  }
  return s;
}

/** Whether this frame should make the page re-read the artifact list. */
export function affectsArtifacts(type: string): boolean {
  return type === "checkpoint.saved" || terminalStatusOf(type) !== null;
}

// ---------------------------------------------------------------- checkpoints and artifacts

export interface CheckpointRow {
  step: number;
  /** Sum of the file sizes, or null when unknown. */
  size: number | null;
  fileCount: number;
}

function totalSize(files: readonly ArtifactFile[]): number | null {
  if (files.length === 0) return null;
  let t = 0;
  for (const f of files) {
    if (!Number.isFinite(f.size)) return null;
    t += f.size;
  }
  return t;
}

/** Checkpoints from the artifact list, completed by those only announced by events; by step. */
export function checkpointRows(sets: readonly ArtifactSet[] | undefined, fromEvents: readonly EventCheckpoint[]): CheckpointRow[] {
  const byStep = new Map<number, CheckpointRow>();
  for (const c of fromEvents) byStep.set(c.step, { step: c.step, size: totalSize(c.files), fileCount: c.files.length });
  for (const s of sets ?? []) {
    if (s.kind !== "checkpoint") continue;
    byStep.set(s.step, { step: s.step, size: totalSize(s.files), fileCount: s.files.length });
  }
  return [...byStep.values()].sort((a, b) => a.step - b.step);
}

/** Final set(s) first, then checkpoints by step. */
export function sortArtifactSets(sets: readonly ArtifactSet[]): ArtifactSet[] {
  return [...sets].sort((a, b) => {
    if (a.kind !== b.kind) return a.kind === "final" ? -1 : 1;
    return a.step - b.step;
  });
}

// ---------------------------------------------------------------- metadata rows

/** `name (subset/split)` for Hugging Face, the path or URL for JSONL. */
export function datasetLabel(ds: DatasetSource | null | undefined): string | null {
  if (!ds) return null;
  if (ds.type === "huggingface") {
    const extra = [ds.subset, ds.split].filter((v): v is string => typeof v === "string" && v !== "").join("/");
    return extra ? `${ds.name} (${extra})` : ds.name;
  }
  if (ds.type === "jsonl") {
    const rec = ds as Record<string, unknown>;
    return str(rec.path) ?? str(rec.url) ?? str(rec.uri) ?? "JSONL";
  }
  const rec = ds as Record<string, unknown>;
  return str(rec.name) ?? str(rec.url) ?? str(rec.path) ?? str(rec.type) ?? null;
}

export interface MetaRow {
  label: string;
  value: string;
}

const present = (v: unknown) => v !== null && v !== undefined && v !== "";

/** LoRA settings present in the config. */
export function loraRows(c: JobConfig): MetaRow[] {
  const rows: MetaRow[] = [];
  if (present(c.loraR)) rows.push({ label: "Rank (r)", value: String(c.loraR) });
  if (present(c.loraAlpha)) rows.push({ label: "Alpha", value: String(c.loraAlpha) });
  if (present(c.loraDropout)) rows.push({ label: "Dropout", value: String(c.loraDropout) });
  if (Array.isArray(c.loraTargetModules) && c.loraTargetModules.length)
    rows.push({ label: "Target modules", value: c.loraTargetModules.join(", ") });
  if (typeof c.loraUseRslora === "boolean") rows.push({ label: "rsLoRA", value: c.loraUseRslora ? "yes" : "no" });
  return rows;
}

/** The resolved hyperparameters present in the config. */
export function hyperparameterRows(c: JobConfig): MetaRow[] {
  const rows: MetaRow[] = [];
  const add = (label: string, v: unknown, fmt: (v: never) => string = (x) => String(x)) => {
    if (present(v)) rows.push({ label, value: fmt(v as never) });
  };
  add("Learning rate", c.learningRate, (v: number) => formatLr(v));
  add("Max steps", c.maxSteps);
  add("Epochs", c.numTrainEpochs);
  add("Batch size", c.batchSize);
  add("Grad accumulation", c.gradientAccumulationSteps);
  add("Scheduler", c.lrSchedulerType);
  add("Warmup steps", c.warmupSteps);
  add("Weight decay", c.weightDecay);
  add("Optimizer", c.optim);
  add("Max length", c.maxLength);
  add("Seed", c.seed);
  return rows;
}

/** Run facts from `training.started` metadata. */
export function runRows(m: TrainingMetadata | null): MetaRow[] {
  if (!m) return [];
  const rows: MetaRow[] = [];
  if (m.trainableParameters !== undefined) rows.push({ label: "Trainable parameters", value: groupDigits(m.trainableParameters) });
  if (m.trainRows !== undefined) rows.push({ label: "Train rows", value: groupDigits(m.trainRows) });
  if (m.evalRows !== undefined) rows.push({ label: "Eval rows", value: groupDigits(m.evalRows) });
  return rows;
}

/** Step and total steps for the progress bar (events and the polled job combined). */
export function progressOf(
  events: Pick<JobEventState, "lastStep" | "totalSteps" | "terminal">,
  polled: { step: number; totalSteps: number } | undefined,
  maxSteps: number | null | undefined,
): { step: number; totalSteps: number | null } | null {
  const steps = [events.lastStep, polled?.step].filter((v): v is number => typeof v === "number" && Number.isFinite(v));
  const total =
    [events.totalSteps, polled?.totalSteps, maxSteps].find(
      (v): v is number => typeof v === "number" && Number.isFinite(v) && v > 0,
    ) ?? null;
  if (steps.length === 0 && total === null) return null;
  let step = steps.length ? Math.max(...steps) : 0;
  if (events.terminal?.status === "completed" && total !== null) step = Math.max(step, total);
  return { step, totalSteps: total };
}
