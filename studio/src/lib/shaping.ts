// The Playground's reply shaping, without the DOM: the response format (text, JSON object,
// JSON schema, regex, choice, grammar) and the tools the model may call, as the page edits
// them, as the backend's chat body wants them, and as URL params.

import { type ParseError, type ParseErrorCode, parse, printParseErrorCode } from "jsonc-parser";
import type { ChatOptions, ToolChoice, ToolDefinition } from "./api";

// ---------------------------------------------------------------------------------------------
// Response format

export type OutputKind = "text" | "json_object" | "json_schema" | "regex" | "choice" | "grammar";

export const OUTPUT_KINDS: { value: OutputKind; label: string }[] = [
  { value: "text", label: "Text" },
  { value: "json_object", label: "JSON object" },
  { value: "json_schema", label: "JSON schema" },
  { value: "regex", label: "Regex" },
  { value: "choice", label: "Choice" },
  { value: "grammar", label: "Grammar (Lark)" },
];

/** What the page edits: each kind keeps its own text, so switching kinds loses nothing. */
export interface OutputSettings {
  kind: OutputKind;
  /** JSON schema text. */
  schema: string;
  /** Every object must close `additionalProperties` (the backend checks it). */
  strict: boolean;
  regex: string;
  /** One choice per line. */
  choices: string;
  grammar: string;
}

export const TEXT_OUTPUT: OutputSettings = { kind: "text", schema: "", strict: true, regex: "", choices: "", grammar: "" };

/** The page's default: the project's reply schema when it has one (the templates do), else text. */
export function defaultOutput(replySchema?: Record<string, unknown> | null): OutputSettings {
  if (!replySchema) return TEXT_OUTPUT;
  return { ...TEXT_OUTPUT, kind: "json_schema", schema: JSON.stringify(replySchema, null, 2) };
}

export type Checked<T> = { ok: true; value: T } | { ok: false; error: string };

/**
 * Parses JSON text that must be an object; the error says what and where
 * (`Tool get_weather parameters: line 3, column 5: ...`).
 */
export function parseJsonObject(text: string, what: string): Checked<Record<string, unknown>> {
  const errors: ParseError[] = [];
  const value: unknown = parse(text, errors, { allowTrailingComma: false, disallowComments: true, allowEmptyContent: false });
  if (errors.length > 0 || value === undefined) {
    const e = errors[0];
    if (!e) return { ok: false, error: `${what}: not JSON` };
    const before = text.slice(0, e.offset);
    const line = before.split("\n").length;
    const column = before.length - before.lastIndexOf("\n");
    return { ok: false, error: `${what}: line ${line}, column ${column}: ${describeError(e.error)}` };
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return { ok: false, error: `${what}: expected a JSON object, got ${Array.isArray(value) ? "an array" : JSON.stringify(value)}` };
  }
  return { ok: true, value: value as Record<string, unknown> };
}

function describeError(code: ParseErrorCode): string {
  const name = printParseErrorCode(code); // e.g. "ValueExpected"
  return name.replace(/([a-z])([A-Z])/g, "$1 $2").toLowerCase();
}

/** The choice list: one per line, blank lines ignored. */
export function choiceList(text: string): string[] {
  return text
    .split("\n")
    .map((c) => c.trim())
    .filter((c) => c !== "");
}

type OutputFields = Pick<ChatOptions, "responseFormat" | "structuredOutputs">;

/** The chat body fields for a response format, or what is wrong with it. */
export function outputOptions(o: OutputSettings): Checked<OutputFields> {
  switch (o.kind) {
    case "text":
      return { ok: true, value: {} };
    case "json_object":
      return { ok: true, value: { responseFormat: { type: "json_object" } } };
    case "json_schema": {
      if (!o.schema.trim()) return { ok: false, error: "JSON schema: write a schema first" };
      const schema = parseJsonObject(o.schema, "JSON schema");
      if (!schema.ok) return schema;
      return {
        ok: true,
        value: { responseFormat: { type: "json_schema", json_schema: { name: "playground", schema: schema.value, strict: o.strict } } },
      };
    }
    case "regex":
      if (!o.regex) return { ok: false, error: "Regex: write a pattern first" };
      return { ok: true, value: { structuredOutputs: { regex: o.regex } } };
    case "choice": {
      const choice = choiceList(o.choices);
      if (choice.length === 0) return { ok: false, error: "Choice: write at least one choice (one per line)" };
      return { ok: true, value: { structuredOutputs: { choice } } };
    }
    case "grammar":
      if (!o.grammar.trim()) return { ok: false, error: "Grammar: write a grammar first" };
      return { ok: true, value: { structuredOutputs: { grammar: o.grammar } } };
  }
}

/** Replies are JSON (so the page can say whether each one parses). */
export function expectsJson(o: OutputSettings): boolean {
  return o.kind === "json_object" || o.kind === "json_schema";
}

// ---------------------------------------------------------------------------------------------
// Tools

export interface ToolSpec {
  name: string;
  description: string;
  /** JSON schema text of the arguments; blank = no arguments. */
  parameters: string;
}

/** `auto`, `required`, `none`, or `function:<name>` (that function, always). */
export type ToolChoiceValue = string;

export interface ToolSettings {
  tools: ToolSpec[];
  choice: ToolChoiceValue;
}

export const NO_TOOLS: ToolSettings = { tools: [], choice: "auto" };

const NAME = /^[A-Za-z0-9_-]{1,64}$/;

/** A new function to edit: a name not taken yet, and an example schema. */
export function newTool(existing: ToolSpec[]): ToolSpec {
  const taken = new Set(existing.map((t) => t.name));
  let name = "get_weather";
  for (let i = 2; taken.has(name); i++) name = `get_weather_${i}`;
  return {
    name,
    description: "Current weather in a city",
    parameters: JSON.stringify(
      { type: "object", properties: { city: { type: "string" } }, required: ["city"], additionalProperties: false },
      null,
      2,
    ),
  };
}

type ToolFields = Pick<ChatOptions, "tools" | "toolChoice">;

/** The chat body fields for the tools, or what is wrong with them (which function, which field). */
export function toolOptions(t: ToolSettings): Checked<ToolFields> {
  if (t.tools.length === 0) return { ok: true, value: {} };
  const tools: ToolDefinition[] = [];
  const seen = new Set<string>();
  for (const [i, spec] of t.tools.entries()) {
    const label = `Tool ${i + 1}`;
    const name = spec.name.trim();
    if (!NAME.test(name)) return { ok: false, error: `${label}: a name is 1-64 letters, digits, _ or - (got ${JSON.stringify(spec.name)})` };
    if (seen.has(name)) return { ok: false, error: `${label}: ${name} is defined twice` };
    seen.add(name);
    const fn: ToolDefinition["function"] = { name };
    if (spec.description.trim()) fn.description = spec.description.trim();
    if (spec.parameters.trim()) {
      const params = parseJsonObject(spec.parameters, `${name} parameters`);
      if (!params.ok) return params;
      fn.parameters = params.value;
    } else {
      fn.parameters = { type: "object", properties: {} };
    }
    tools.push({ type: "function", function: fn });
  }
  let toolChoice: ToolChoice;
  if (t.choice.startsWith("function:")) {
    const name = t.choice.slice("function:".length);
    if (!seen.has(name)) return { ok: false, error: `Tool choice: no function named ${name}` };
    toolChoice = { type: "function", function: { name } };
  } else if (t.choice === "auto" || t.choice === "required" || t.choice === "none") {
    toolChoice = t.choice;
  } else {
    return { ok: false, error: `Tool choice: expected auto, required, none or a function, got ${t.choice}` };
  }
  return { ok: true, value: { tools, toolChoice } };
}

/** A tool choice that names a function the list no longer has falls back to auto. */
export function settleToolChoice(t: ToolSettings): ToolSettings {
  if (!t.choice.startsWith("function:")) return t;
  const name = t.choice.slice("function:".length);
  return t.tools.some((x) => x.name.trim() === name) ? t : { ...t, choice: "auto" };
}

/** Tool call arguments as the card shows them: pretty JSON, or the text as it came. */
export function prettyArguments(args: string): string {
  try {
    return JSON.stringify(JSON.parse(args), null, 2);
  } catch {
    return args;
  }
}

// ---------------------------------------------------------------------------------------------
// URL params
//
// The response format is written only when it differs from the page's default (`format=<kind>`
// plus `schema`, `strict=0`, `regex`, `choices` or `grammar`); tools as `tools=<JSON>` and
// `toolChoice` when not auto.

export function outputFromParams(params: URLSearchParams, fallback: OutputSettings): OutputSettings {
  const kind = params.get("format") as OutputKind | null;
  if (!kind || !OUTPUT_KINDS.some((k) => k.value === kind)) return fallback;
  return {
    ...TEXT_OUTPUT,
    kind,
    schema: params.get("schema") ?? (kind === "json_schema" ? fallback.schema : ""),
    strict: params.get("strict") !== "0",
    regex: params.get("regex") ?? "",
    choices: params.get("choices") ?? "",
    grammar: params.get("grammar") ?? "",
  };
}

function sameOutput(a: OutputSettings, b: OutputSettings): boolean {
  if (a.kind !== b.kind) return false;
  switch (a.kind) {
    case "json_schema":
      return a.schema === b.schema && a.strict === b.strict;
    case "regex":
      return a.regex === b.regex;
    case "choice":
      return a.choices === b.choices;
    case "grammar":
      return a.grammar === b.grammar;
    default:
      return true;
  }
}

export function setOutputParams(params: URLSearchParams, o: OutputSettings, fallback: OutputSettings): void {
  if (sameOutput(o, fallback)) return;
  params.set("format", o.kind);
  if (o.kind === "json_schema") {
    params.set("schema", o.schema);
    if (!o.strict) params.set("strict", "0");
  } else if (o.kind === "regex") params.set("regex", o.regex);
  else if (o.kind === "choice") params.set("choices", o.choices);
  else if (o.kind === "grammar") params.set("grammar", o.grammar);
}

export function toolsFromParams(params: URLSearchParams): ToolSettings {
  const raw = params.get("tools");
  let tools: ToolSpec[] = [];
  if (raw) {
    try {
      const list = JSON.parse(raw) as unknown;
      if (Array.isArray(list)) {
        tools = list
          .filter((x): x is Record<string, unknown> => typeof x === "object" && x !== null)
          .map((x) => ({
            name: typeof x.name === "string" ? x.name : "",
            description: typeof x.description === "string" ? x.description : "",
            parameters: typeof x.parameters === "string" ? x.parameters : "",
          }));
      }
    } catch {
      // A hand-edited link: no tools.
    }
  }
  return settleToolChoice({ tools, choice: params.get("toolChoice") || "auto" });
}

export function setToolParams(params: URLSearchParams, t: ToolSettings): void {
  if (t.tools.length === 0) return;
  params.set("tools", JSON.stringify(t.tools));
  if (t.choice !== "auto") params.set("toolChoice", t.choice);
}
