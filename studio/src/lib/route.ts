// Hash routes: `#/`, `#/jobs`, `#/jobs/<id>`, `#/compare?jobs=<id>,<id>`,
// `#/playground?adapter=<id>&step=<n>`, `#/endpoints`, `#/endpoints/<id>`,
// `#/data?trainer=<name>&page=<n>&row=<i>` (or `path=<file>&model=<id>`).

import { parseSelection } from "./compare";

export type Route =
  | { page: "overview" }
  | { page: "jobs" }
  | { page: "job"; id: string }
  | { page: "compare"; ids: string[] }
  | { page: "playground"; params: URLSearchParams }
  | { page: "endpoints" }
  | { page: "endpoint"; id: string }
  | { page: "data"; params: URLSearchParams };

export function parseRoute(hash: string): Route {
  const raw = hash.replace(/^#/, "").replace(/^\/+/, "");
  const q = raw.indexOf("?");
  const path = (q < 0 ? raw : raw.slice(0, q)).replace(/\/+$/, "");
  const params = new URLSearchParams(q < 0 ? "" : raw.slice(q + 1));
  const parts = path.split("/");
  if (parts[0] === "jobs" && parts.length === 1) return { page: "jobs" };
  if (parts[0] === "jobs" && parts.length === 2 && parts[1]) {
    try {
      return { page: "job", id: decodeURIComponent(parts[1]) };
    } catch {
      return { page: "overview" };
    }
  }
  if (parts[0] === "compare" && parts.length === 1) return { page: "compare", ids: parseSelection(params.get("jobs")) };
  if (parts[0] === "playground" && parts.length === 1) return { page: "playground", params };
  if (parts[0] === "endpoints" && parts.length === 1) return { page: "endpoints" };
  if (parts[0] === "data" && parts.length === 1) return { page: "data", params };
  if (parts[0] === "endpoints" && parts.length === 2 && parts[1]) {
    try {
      return { page: "endpoint", id: decodeURIComponent(parts[1]) };
    } catch {
      return { page: "overview" };
    }
  }
  return { page: "overview" };
}

export function jobHref(id: string): string {
  return `#/jobs/${encodeURIComponent(id)}`;
}

/** Playground link preselecting a job's final adapter, or one of its checkpoints. */
export function playgroundHref(jobId?: string, step?: number): string {
  if (!jobId) return "#/playground";
  const p = new URLSearchParams({ adapter: jobId });
  if (step !== undefined) p.set("step", String(step));
  return `#/playground?${p.toString()}`;
}

/** Replaces the hash without a history entry, and tells listeners. */
export function replaceHash(hash: string): void {
  if (window.location.hash === hash) return;
  history.replaceState(history.state, "", hash);
  window.dispatchEvent(new HashChangeEvent("hashchange"));
}
