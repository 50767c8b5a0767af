import { describe, expect, it } from "vitest";
import { paramsFromUrlState } from "./conversation";
import {
  choiceList,
  defaultOutput,
  newTool,
  outputFromParams,
  outputOptions,
  parseJsonObject,
  settleToolChoice,
  TEXT_OUTPUT,
  toolOptions,
  toolsFromParams,
} from "./shaping";

describe("response format", () => {
  it("maps each kind to the backend's fields", () => {
    expect(outputOptions(TEXT_OUTPUT)).toEqual({ ok: true, value: {} });
    expect(outputOptions({ ...TEXT_OUTPUT, kind: "json_object" })).toEqual({ ok: true, value: { responseFormat: { type: "json_object" } } });
    const schema = { type: "object", properties: { a: { type: "string" } } };
    expect(outputOptions({ ...TEXT_OUTPUT, kind: "json_schema", schema: JSON.stringify(schema), strict: false })).toEqual({
      ok: true,
      value: { responseFormat: { type: "json_schema", json_schema: { name: "playground", schema, strict: false } } },
    });
    expect(outputOptions({ ...TEXT_OUTPUT, kind: "regex", regex: "\\d{3}" })).toEqual({ ok: true, value: { structuredOutputs: { regex: "\\d{3}" } } });
    expect(outputOptions({ ...TEXT_OUTPUT, kind: "choice", choices: " yes \n\nno\n" })).toEqual({
      ok: true,
      value: { structuredOutputs: { choice: ["yes", "no"] } },
    });
    expect(outputOptions({ ...TEXT_OUTPUT, kind: "grammar", grammar: 'start: "a"' })).toEqual({
      ok: true,
      value: { structuredOutputs: { grammar: 'start: "a"' } },
    });
  });

  it("says what is wrong, and where in a schema", () => {
    const bad = outputOptions({ ...TEXT_OUTPUT, kind: "json_schema", schema: '{\n  "type": "object",\n  "properties": }' });
    expect(bad.ok).toBe(false);
    expect(!bad.ok && bad.error).toMatch(/^JSON schema: line 3, column 17: /);
    expect(outputOptions({ ...TEXT_OUTPUT, kind: "json_schema", schema: "[1]" })).toEqual({ ok: false, error: "JSON schema: expected a JSON object, got an array" });
    expect(outputOptions({ ...TEXT_OUTPUT, kind: "json_schema", schema: " " }).ok).toBe(false);
    expect(outputOptions({ ...TEXT_OUTPUT, kind: "choice", choices: "\n \n" })).toEqual({ ok: false, error: "Choice: write at least one choice (one per line)" });
    expect(outputOptions({ ...TEXT_OUTPUT, kind: "regex" }).ok).toBe(false);
    expect(outputOptions({ ...TEXT_OUTPUT, kind: "grammar", grammar: "  " }).ok).toBe(false);
    expect(parseJsonObject("42", "x")).toEqual({ ok: false, error: "x: expected a JSON object, got 42" });
    expect(choiceList("a\n b \n")).toEqual(["a", "b"]);
  });

  it("defaults to the project's reply schema, and the URL records only what differs", () => {
    const def = defaultOutput({ type: "object", required: ["a"] });
    expect(def.kind).toBe("json_schema");
    expect(JSON.parse(def.schema)).toEqual({ type: "object", required: ["a"] });
    expect(defaultOutput(undefined)).toEqual(TEXT_OUTPUT);
    const a = { kind: "base" as const, model: "arkor/tiny" };
    const url = (output: typeof def) => paramsFromUrlState({ a, compare: false, b: null, output, outputDefault: def });
    expect(url(def).toString()).toBe("base=arkor%2Ftiny");
    const text = url(TEXT_OUTPUT);
    expect(text.get("format")).toBe("text");
    expect(outputFromParams(text, def)).toEqual(TEXT_OUTPUT);
    const edited = { ...def, schema: '{"type": "object"}', strict: false };
    expect(outputFromParams(url(edited), def)).toEqual(edited);
    const regex = { ...TEXT_OUTPUT, kind: "regex" as const, regex: "a|b" };
    expect(outputFromParams(url(regex), def)).toEqual(regex);
    // No format in the URL: the default; an unknown one too.
    expect(outputFromParams(new URLSearchParams("base=x"), def)).toEqual(def);
    expect(outputFromParams(new URLSearchParams("format=yaml"), def)).toEqual(def);
  });
});

describe("tools", () => {
  it("maps functions and the choice to the backend's fields", () => {
    const t = newTool([]);
    expect(newTool([t]).name).toBe("get_weather_2");
    const got = toolOptions({ tools: [t, { name: "ping", description: " ", parameters: "" }], choice: "function:ping" });
    expect(got).toEqual({
      ok: true,
      value: {
        tools: [
          { type: "function", function: { name: "get_weather", description: t.description, parameters: JSON.parse(t.parameters) } },
          { type: "function", function: { name: "ping", parameters: { type: "object", properties: {} } } },
        ],
        toolChoice: { type: "function", function: { name: "ping" } },
      },
    });
    expect(toolOptions({ tools: [], choice: "required" })).toEqual({ ok: true, value: {} });
  });

  it("names the function and the field that is wrong", () => {
    const t = newTool([]);
    expect(toolOptions({ tools: [{ ...t, name: "has space" }], choice: "auto" })).toEqual({
      ok: false,
      error: 'Tool 1: a name is 1-64 letters, digits, _ or - (got "has space")',
    });
    expect(toolOptions({ tools: [t, t], choice: "auto" })).toEqual({ ok: false, error: "Tool 2: get_weather is defined twice" });
    const bad = toolOptions({ tools: [{ ...t, parameters: '{"type": }' }], choice: "auto" });
    expect(!bad.ok && bad.error).toMatch(/^get_weather parameters: line 1, column 10: /);
    expect(toolOptions({ tools: [t], choice: "function:gone" })).toEqual({ ok: false, error: "Tool choice: no function named gone" });
  });

  it("round-trips through the URL; a choice naming a removed function falls back to auto", () => {
    const t = newTool([]);
    const state = { tools: [t], choice: "function:get_weather" };
    const p = paramsFromUrlState({ a: null, compare: false, b: null, tools: state });
    expect(toolsFromParams(p)).toEqual(state);
    expect(toolsFromParams(new URLSearchParams("tools=not-json"))).toEqual({ tools: [], choice: "auto" });
    expect(settleToolChoice({ tools: [], choice: "function:get_weather" }).choice).toBe("auto");
    expect(settleToolChoice({ tools: [], choice: "required" }).choice).toBe("required");
  });
});
