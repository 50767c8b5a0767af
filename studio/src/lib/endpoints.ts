// Endpoints: the `/api/deployments` calls, and the logic of the Endpoints pages that needs no
// DOM (slug checks, target labels, quick-start snippets).

import { apiFetch, errorOf, getJSON } from "./api";

export type DeploymentTarget =
  | { kind: "adapter"; adapter: { kind: "final"; jobId: string } | { kind: "checkpoint"; jobId: string; step: number } }
  | { kind: "base_model"; baseModel: string };

export type AuthMode = "none" | "fixed_api_key";
export type RetentionMode = "unlimited" | "disabled" | "days";

export interface DeploymentStats {
  requests: number;
  errors: number;
  p50LatencyMs?: number | null;
  p95LatencyMs?: number | null;
  promptTokens: number;
  completionTokens: number;
  lastUsedAt?: string | null;
}

export interface Deployment {
  id: string;
  slug: string;
  target: DeploymentTarget;
  authMode: AuthMode;
  enabled: boolean;
  runRetentionMode: RetentionMode;
  runRetentionDays?: number;
  createdAt: string;
  updatedAt: string;
  /** The OpenAI base URL (ends in `/v1`). */
  url?: string;
  stats: DeploymentStats;
}

export interface DeploymentKey {
  id: string;
  label: string;
  prefix: string;
  enabled: boolean;
  createdAt: string;
  lastUsedAt: string | null;
}

export interface IssuedKey {
  id: string;
  label: string;
  plaintext: string;
  prefix: string;
  createdAt: string;
}

export interface EndpointRequest {
  id: number;
  createdAt: string;
  status: number;
  latencyMs: number;
  promptTokens?: number | null;
  completionTokens?: number | null;
  keyId?: string | null;
}

const base = "/api/deployments";
const one = (id: string) => `${base}/${encodeURIComponent(id)}`;

async function send<T>(method: string, path: string, body?: unknown): Promise<T> {
  const res = await apiFetch(path, {
    method,
    headers: body === undefined ? undefined : { "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!res.ok) throw await errorOf(res);
  return (res.status === 204 ? undefined : await res.json()) as T;
}

export async function fetchDeployments(signal?: AbortSignal): Promise<{ deployments: Deployment[]; scopeMissing: boolean }> {
  const body = await getJSON<{ deployments: Deployment[]; scopeMissing?: boolean }>(base, { signal });
  return { deployments: body.deployments, scopeMissing: !!body.scopeMissing };
}

export async function fetchDeployment(id: string, signal?: AbortSignal): Promise<Deployment> {
  return (await getJSON<{ deployment: Deployment }>(one(id), { signal })).deployment;
}

export async function createDeployment(input: {
  slug: string;
  target: DeploymentTarget;
  authMode: AuthMode;
}): Promise<Deployment> {
  return (await send<{ deployment: Deployment }>("POST", base, input)).deployment;
}

export async function updateDeployment(
  id: string,
  input: Partial<{ target: DeploymentTarget; authMode: AuthMode; enabled: boolean; runRetentionMode: RetentionMode; runRetentionDays: number }>,
): Promise<Deployment> {
  return (await send<{ deployment: Deployment }>("PATCH", one(id), input)).deployment;
}

export async function deleteDeployment(id: string): Promise<void> {
  await send<void>("DELETE", one(id));
}

export async function fetchKeys(id: string, signal?: AbortSignal): Promise<DeploymentKey[]> {
  return (await getJSON<{ keys: DeploymentKey[] }>(`${one(id)}/keys`, { signal })).keys;
}

export async function issueKey(id: string, label: string): Promise<IssuedKey> {
  return (await send<{ key: IssuedKey }>("POST", `${one(id)}/keys`, { label })).key;
}

export async function revokeKey(id: string, keyId: string): Promise<void> {
  await send<void>("DELETE", `${one(id)}/keys/${encodeURIComponent(keyId)}`);
}

export async function fetchRequests(id: string, signal?: AbortSignal): Promise<EndpointRequest[]> {
  return (await getJSON<{ requests: EndpointRequest[] }>(`${one(id)}/requests?limit=50`, { signal })).requests;
}

// ---------------------------------------------------------------------------------------------
// Pure helpers

/** What the backend will say about a slug, checked as it is typed (null: fine). */
export function slugProblem(slug: string): string | null {
  if (slug.length < 2 || slug.length > 50) return "2-50 characters";
  if (!/^[a-z0-9][a-z0-9-]*[a-z0-9]$/.test(slug)) return "a-z, 0-9 and -, starting and ending with a letter or digit";
  return null;
}

/** A slug for a job's endpoint: its name made slug-safe, plus the end of its id. */
export function slugForJob(name: string, jobId: string): string {
  const stem = name
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "-")
    .replace(/^-+|-+$/g, "")
    .slice(0, 36)
    .replace(/-+$/, "");
  const tail = jobId.replace(/[^a-z0-9]/gi, "").toLowerCase().slice(-6);
  return [stem || "job", tail].filter(Boolean).join("-");
}

export function describeTarget(t: DeploymentTarget): string {
  if (t.kind === "base_model") return `Base model: ${t.baseModel}`;
  const job = t.adapter.jobId.slice(0, 12);
  return t.adapter.kind === "final" ? `Final adapter (job ${job})` : `Checkpoint step ${t.adapter.step} (job ${job})`;
}

export type SnippetLanguage = "curl" | "python" | "javascript";

/** A copyable request for an endpoint (`baseUrl` ends in `/v1`). */
export function quickStart(lang: SnippetLanguage, baseUrl: string, auth: AuthMode): string {
  const key = auth === "fixed_api_key" ? "YOUR_API_KEY" : "not-required";
  if (lang === "curl") {
    const authLine = auth === "fixed_api_key" ? `  -H "Authorization: Bearer YOUR_API_KEY" \\\n` : "";
    return (
      `curl ${baseUrl}/chat/completions \\\n` +
      `  -H "Content-Type: application/json" \\\n` +
      authLine +
      `  -d '{"model": "ignored", "messages": [{"role": "user", "content": "Hello!"}]}'`
    );
  }
  const note = auth === "none" ? "  # this endpoint needs no key\n" : "";
  if (lang === "python") {
    return (
      `from openai import OpenAI\n\n` +
      `client = OpenAI(\n  base_url="${baseUrl}",\n  api_key="${key}",\n${note})\n` +
      `reply = client.chat.completions.create(\n  model="ignored",\n  messages=[{"role": "user", "content": "Hello!"}],\n)\n` +
      `print(reply.choices[0].message.content)\n`
    );
  }
  return (
    `// ESM (save as .mjs); npm install openai\n` +
    `import OpenAI from "openai";\n\n` +
    `const client = new OpenAI({ baseURL: "${baseUrl}", apiKey: "${key}" });${auth === "none" ? " // this endpoint needs no key" : ""}\n\n` +
    `async function main() {\n` +
    `  const reply = await client.chat.completions.create({\n    model: "ignored",\n    messages: [{ role: "user", content: "Hello!" }],\n  });\n` +
    `  console.log(reply.choices[0].message.content);\n}\n\nmain();\n`
  );
}
