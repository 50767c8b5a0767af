// The Run training stream lives here, outside any page: moving between Overview, Jobs
// and a job's page keeps `arkor start` (and the trainer's callbacks) running. Only
// "Stop training" or closing the tab ends it.
import { useSyncExternalStore } from "react";
import { streamTraining } from "./api";
import { errorMessage } from "./format";

/** The retained output is capped (the newest characters are kept). */
export const OUTPUT_CAP = 100_000;

export function appendOutput(prev: string, chunk: string, cap = OUTPUT_CAP): string {
  const next = prev + chunk;
  return next.length > cap ? next.slice(next.length - cap) : next;
}

/** `exit=<code>` from the tail Studio appends when `arkor start` ends. */
export function exitCodeOf(output: string): string | null {
  const m = /\n---\nexit=([^\n]+)\n?$/.exec(output);
  return m ? m[1] : null;
}

/** The job id `arkor start` printed (`Started job <id>`). */
export function startedJobOf(output: string): string | null {
  const m = /Started job (\S+)/.exec(output);
  return m ? m[1] : null;
}

export interface RunState {
  running: boolean;
  /** null before the first run. */
  output: string | null;
  trainer: string | null;
}

let state: RunState = { running: false, output: null, trainer: null };
let controller: AbortController | null = null;
const listeners = new Set<() => void>();

function set(next: Partial<RunState>) {
  state = { ...state, ...next };
  for (const l of listeners) l();
}

export function subscribe(l: () => void): () => void {
  listeners.add(l);
  return () => listeners.delete(l);
}

export function getRun(): RunState {
  return state;
}

export function useTrainingRun(): RunState {
  return useSyncExternalStore(subscribe, getRun);
}

/** Starts `arkor start` for `trainer` (the only one when null). */
export async function startRun(trainer: string | null, many: boolean): Promise<void> {
  if (state.running) return;
  const c = new AbortController();
  controller = c;
  set({ running: true, output: "", trainer });
  try {
    await streamTraining(trainer && many ? { trainer } : {}, (t) => set({ output: appendOutput(state.output ?? "", t) }), c.signal);
  } catch (e) {
    const line = c.signal.aborted
      ? "\n[stopped] Studio stopped arkor start (the job itself goes on; cancel it on its page)\n"
      : `\n[error] ${errorMessage(e)}\n`;
    set({ output: appendOutput(state.output ?? "", line) });
  } finally {
    if (controller === c) controller = null;
    set({ running: false });
  }
}

export function stopRun(): void {
  controller?.abort();
}
