// A job's live event stream: EventSource with de-duplication by event id, a closed
// stream reopened with backoff (replayed frames are dropped), and `end` closing it.

export const JOB_EVENT_TYPES = [
  "training.started",
  "training.log",
  "checkpoint.saved",
  "training.completed",
  "training.failed",
  "training.cancelled",
] as const;

export type JobEventType = (typeof JOB_EVENT_TYPES)[number];

/** One event as the backend sent it (`data` is the JobEvent JSON). */
export interface JobEventFrame {
  id: number | null;
  type: JobEventType;
  timestamp: string;
  data: Record<string, unknown>;
}

/** What the subscription needs from `EventSource` (a fake one in tests). */
export interface EventSourceLike {
  readonly readyState: number;
  addEventListener(type: string, listener: (ev: MessageEvent) => void): void;
  close(): void;
  onerror: ((ev: Event) => void) | null;
  onopen: ((ev: Event) => void) | null;
}

export interface JobEventHandlers {
  onEvent(frame: JobEventFrame): void;
  /** The backend said the stream is over (the job is terminal). */
  onEnd?(): void;
  /** Connection state for a banner: true while interrupted. */
  onInterrupted?(interrupted: boolean): void;
}

export interface SubscribeOptions {
  create?: (url: string) => EventSourceLike;
  /** Delay before reopening a stream the browser gave up on (ms), doubled per attempt. */
  retryBaseMs?: number;
  retryMaxMs?: number;
  setTimeout?: (fn: () => void, ms: number) => unknown;
  clearTimeout?: (handle: unknown) => void;
}

const CLOSED = 2;

/** Subscribes; returns the function that unsubscribes. */
export function subscribeJobEvents(url: string, handlers: JobEventHandlers, options: SubscribeOptions = {}): () => void {
  const create = options.create ?? ((u: string) => new EventSource(u) as unknown as EventSourceLike);
  const base = options.retryBaseMs ?? 1000;
  const max = options.retryMaxMs ?? 15000;
  const setT = options.setTimeout ?? ((fn, ms) => setTimeout(fn, ms));
  const clearT = options.clearTimeout ?? ((h) => clearTimeout(h as ReturnType<typeof setTimeout>));
  let lastId = -1;
  let source: EventSourceLike | null = null;
  let timer: unknown = null;
  let attempts = 0;
  let stopped = false;
  let interrupted = false;

  const setInterrupted = (v: boolean) => {
    if (interrupted !== v) {
      interrupted = v;
      handlers.onInterrupted?.(v);
    }
  };

  const stop = () => {
    stopped = true;
    if (timer !== null) clearT(timer);
    timer = null;
    source?.close();
    source = null;
  };

  const open = () => {
    timer = null;
    if (stopped) return;
    const es = create(url);
    source = es;
    es.onopen = () => {
      attempts = 0;
      setInterrupted(false);
    };
    es.onerror = () => {
      if (stopped || source !== es) return;
      setInterrupted(true);
      // The browser retries by itself (sending Last-Event-ID) unless it closed the stream
      // (an HTTP error answer); then reopen it ourselves, dropping replayed frames by id.
      if (es.readyState === CLOSED) {
        es.close();
        source = null;
        const delay = Math.min(max, base * 2 ** attempts);
        attempts++;
        timer = setT(open, delay);
      }
    };
    for (const type of JOB_EVENT_TYPES) {
      es.addEventListener(type, (ev) => {
        if (source !== es || stopped) return;
        const id = ev.lastEventId ? Number(ev.lastEventId) : NaN;
        if (Number.isFinite(id)) {
          if (id <= lastId) return;
          lastId = id;
        }
        setInterrupted(false);
        let data: Record<string, unknown> = {};
        try {
          data = JSON.parse(ev.data) as Record<string, unknown>;
        } catch {
          data = { raw: ev.data };
        }
        handlers.onEvent({
          id: Number.isFinite(id) ? id : null,
          type,
          timestamp: typeof data.timestamp === "string" ? data.timestamp : new Date().toISOString(),
          data,
        });
      });
    }
    es.addEventListener("end", () => {
      if (source !== es || stopped) return;
      setInterrupted(false);
      stop();
      handlers.onEnd?.();
    });
  };

  open();
  return stop;
}
