// Pure logic of the job page's Export card: the formats and precisions, what can be
// exported, the request body, and the status shown for each export (unit-tested).

import type { ArtifactSet, ExportInfo, ExportRequest } from "./api";
import { formatDuration } from "./format";

export type ExportFormat = "hf" | "gguf" | "gguf-lora" | "ollama";
export type ExportQuant = "f32" | "f16" | "bf16" | "q8_0" | "q4_k_m";

export const EXPORT_FORMATS: { value: ExportFormat; label: string; description: string }[] = [
  { value: "hf", label: "Transformers", description: "Transformers (merged)" },
  { value: "gguf", label: "GGUF", description: "GGUF for llama.cpp / LM Studio (merged)" },
  { value: "gguf-lora", label: "GGUF LoRA", description: "LoRA GGUF adapter" },
  { value: "ollama", label: "Ollama", description: "Ollama (GGUF + Modelfile)" },
];

export const EXPORT_QUANTS: { value: ExportQuant; label: string }[] = [
  { value: "f32", label: "f32 (full precision)" },
  { value: "f16", label: "f16" },
  { value: "bf16", label: "bf16" },
  { value: "q8_0", label: "q8_0 (8-bit)" },
  { value: "q4_k_m", label: "q4_k_m (4-bit)" },
];

/** The backend's default precision. */
export const DEFAULT_QUANT: ExportQuant = "f16";

/** The precisions a format takes: the merged GGUF ones only (hf is f32, a LoRA GGUF f32). */
export function quantOptions(format: string): ExportQuant[] {
  return format === "gguf" || format === "ollama" ? EXPORT_QUANTS.map((q) => q.value) : [];
}

export function formatLabel(format: string): string {
  return EXPORT_FORMATS.find((f) => f.value === format)?.label ?? format;
}

/** What can be exported: `final` once there is a final adapter, then each checkpoint. */
export type ExportSource = "final" | number;

export function exportSources(sets: readonly ArtifactSet[] | undefined, status?: string): ExportSource[] {
  const all = sets ?? [];
  const steps = [...new Set(all.filter((s) => s.kind === "checkpoint").map((s) => s.step))].sort((a, b) => a - b);
  const final = status === "completed" || all.some((s) => s.kind === "final");
  return [...(final ? (["final"] as const) : []), ...steps];
}

/** `final` -> "Final adapter", `checkpoint-20` (or 20) -> "Checkpoint · step 20". */
export function sourceLabel(source: string | ExportSource): string {
  if (source === "final") return "Final adapter";
  const step = typeof source === "number" ? source : /^checkpoint-(\d+)$/.exec(source)?.[1];
  return step === undefined ? String(source) : `Checkpoint · step ${step}`;
}

export interface ExportForm {
  format: ExportFormat;
  quant: ExportQuant;
  source: ExportSource;
  systemPrompt: string;
}

/** The `POST /api/jobs/:id/export` body: only the fields the format uses. */
export function exportRequest(form: ExportForm): ExportRequest {
  const body: ExportRequest = { format: form.format };
  if (quantOptions(form.format).includes(form.quant)) body.quant = form.quant;
  if (form.source !== "final") body.checkpointStep = form.source;
  const system = form.systemPrompt.trim();
  if (form.format === "ollama" && system) body.systemPrompt = system;
  return body;
}

/** "GGUF · q8_0 · Final adapter"; no precision for the formats that take none. */
export function exportSummary(e: Pick<ExportInfo, "format" | "quant" | "source">): string {
  const parts = [formatLabel(e.format)];
  if (quantOptions(e.format).length > 0 && e.quant) parts.push(e.quant);
  parts.push(sourceLabel(e.source));
  return parts.join(" · ");
}

/** "Exporting… 12s" while running (from `createdAt`), else "Completed" / "Failed". */
export function exportStatusText(e: Pick<ExportInfo, "status" | "createdAt" | "finishedAt">, now: number): string {
  if (e.status === "running") {
    const start = Date.parse(e.createdAt);
    return Number.isNaN(start) ? "Exporting…" : `Exporting… ${formatDuration(Math.max(0, now - start))}`;
  }
  if (e.status === "completed") {
    const took = Date.parse(e.finishedAt ?? "") - Date.parse(e.createdAt);
    return Number.isNaN(took) ? "Completed" : `Completed in ${formatDuration(Math.max(0, took))}`;
  }
  if (e.status === "failed") return "Failed";
  return e.status;
}

export function anyExportRunning(exports: readonly Pick<ExportInfo, "status">[] | undefined): boolean {
  return !!exports?.some((e) => e.status === "running");
}

/** A file's path inside its export (`exports/<id>/` dropped). */
export function exportFileName(pathname: string): string {
  return pathname.replace(/^exports\/[^/]+\//, "");
}

/** The folder an Ollama export's files go in (`ollama create` reads `<folder>/Modelfile`). */
export function ollamaFolder(files: readonly { pathname: string }[]): string | null {
  const inside = files.map((f) => exportFileName(f.pathname).split("/"));
  return inside.length > 0 && inside[0].length > 1 ? inside[0][0] : null;
}

/** Puts a just-started export in the list (newest first) until the next poll has it. */
export function withExport(list: readonly ExportInfo[] | undefined, e: ExportInfo): ExportInfo[] {
  return [e, ...(list ?? []).filter((x) => x.id !== e.id)];
}
