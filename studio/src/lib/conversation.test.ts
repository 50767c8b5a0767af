import { describe, expect, it } from "vitest";
import {
  answerToolCall,
  appendFragment,
  appendPiece,
  pendingToolCalls,
  startContinuation,
  baseChoice,
  buildExport,
  chooseBase,
  describeModelRef,
  OTHER_BASE,
  clampSetting,
  clearConversation,
  DEFAULT_SETTINGS,
  defaultComparePick,
  emptyConversation,
  exportFilename,
  failTurn,
  finishTurn,
  isStreaming,
  messagesToSend,
  normalizePick,
  paramsFromUrlState,
  parseStep,
  pickSource,
  playgroundHash,
  resolvePick,
  settleStep,
  sourceFromParams,
  sourceKey,
  startTurn,
  stopTurn,
  urlStateFromParams,
  type Bubble,
  type PickData,
} from "./conversation";
import { playgroundHref } from "./route";

const qs = (s: string) => new URLSearchParams(s);

describe("streaming state", () => {
  it("startTurn appends the user bubble and an empty streaming assistant bubble", () => {
    const { conv, assistantId } = startTurn(emptyConversation(), "hi");
    expect(conv.bubbles).toEqual([
      { id: 1, role: "user", content: "hi" },
      { id: 2, role: "assistant", content: "", streaming: true },
    ]);
    expect(assistantId).toBe(2);
    expect(isStreaming(conv)).toBe(true);
  });

  it("appends fragments in order and finishes", () => {
    let { conv, assistantId: id } = startTurn(emptyConversation(), "hi");
    conv = appendFragment(conv, id, "Hello");
    conv = appendFragment(conv, id, " from");
    conv = appendFragment(conv, id, " e2e");
    expect(conv.bubbles[1].content).toBe("Hello from e2e");
    conv = finishTurn(conv, id);
    expect(conv.bubbles[1]).toEqual({ id, role: "assistant", content: "Hello from e2e" });
    expect(isStreaming(conv)).toBe(false);
    // A late fragment after the end changes nothing.
    expect(appendFragment(conv, id, "!")).toBe(conv);
  });

  it("an error replaces the text and marks the bubble", () => {
    let { conv, assistantId: id } = startTurn(emptyConversation(), "hi");
    conv = appendFragment(conv, id, "partial");
    conv = failTurn(conv, id, "model not found");
    expect(conv.bubbles[1]).toEqual({ id, role: "assistant", content: "[error] model not found", error: true });
    expect(isStreaming(conv)).toBe(false);
  });

  it("stop keeps the partial text", () => {
    let { conv, assistantId: id } = startTurn(emptyConversation(), "hi");
    conv = appendFragment(conv, id, "Once upon");
    conv = stopTurn(conv, id);
    expect(conv.bubbles[1]).toEqual({ id, role: "assistant", content: "Once upon", stopped: true });
    // Neither a late error nor a late fragment rewrites a stopped reply.
    expect(failTurn(conv, id, "aborted")).toBe(conv);
    expect(appendFragment(conv, id, " a time")).toBe(conv);
  });

  it("ids are not reused after a clear, so a stale stream cannot write into a new reply", () => {
    const first = startTurn(emptyConversation(), "one");
    const cleared = clearConversation(first.conv);
    expect(cleared.bubbles).toEqual([]);
    const second = startTurn(cleared, "two");
    expect(second.assistantId).not.toBe(first.assistantId);
    const after = appendFragment(second.conv, first.assistantId, "stale");
    expect(after.bubbles.map((b) => b.content)).toEqual(["two", ""]);
  });

  it("only touches the bubble it is given", () => {
    let { conv, assistantId: a } = startTurn(emptyConversation(), "q1");
    conv = finishTurn(appendFragment(conv, a, "r1"), a);
    const t = startTurn(conv, "q2");
    conv = appendFragment(t.conv, t.assistantId, "r2");
    expect(conv.bubbles.map((b) => b.content)).toEqual(["q1", "r1", "q2", "r2"]);
  });
});

describe("messagesToSend", () => {
  const history: Bubble[] = [
    { id: 1, role: "user", content: "q1" },
    { id: 2, role: "assistant", content: "a1" },
    { id: 3, role: "user", content: "q2" },
    { id: 4, role: "assistant", content: "[error] boom", error: true },
    { id: 5, role: "user", content: "q3" },
    { id: 6, role: "assistant", content: "a3 partial", stopped: true },
  ];

  it("puts a non-empty system prompt first", () => {
    const m = messagesToSend([], "Be brief.", "hello");
    expect(m).toEqual([
      { role: "system", content: "Be brief." },
      { role: "user", content: "hello" },
    ]);
  });

  it("omits a blank system prompt", () => {
    expect(messagesToSend([], "   \n", "hello")).toEqual([{ role: "user", content: "hello" }]);
  });

  it("leaves out error replies (with the question they answered) and sends only role and content", () => {
    const m = messagesToSend(history, "", "q4");
    expect(m).toEqual([
      { role: "user", content: "q1" },
      { role: "assistant", content: "a1" },
      { role: "user", content: "q3" },
      { role: "assistant", content: "a3 partial" },
      { role: "user", content: "q4" },
    ]);
    for (const msg of m) expect(Object.keys(msg).sort()).toEqual(["content", "role"]);
    expect(m.some((x) => x.content?.startsWith("[error]"))).toBe(false);
  });

  it("leaves out an empty stopped reply and a reply still streaming", () => {
    const h: Bubble[] = [
      { id: 1, role: "user", content: "q1" },
      { id: 2, role: "assistant", content: "", stopped: true },
      { id: 3, role: "user", content: "q2" },
      { id: 4, role: "assistant", content: "half", streaming: true },
    ];
    expect(messagesToSend(h, "sys", "q3")).toEqual([
      { role: "system", content: "sys" },
      { role: "user", content: "q3" },
    ]);
  });
});

describe("settings", () => {
  it("clamps into range and falls back to the default", () => {
    expect(clampSetting("temperature", "3")).toBe(2);
    expect(clampSetting("temperature", "-1")).toBe(0);
    expect(clampSetting("temperature", "")).toBe(0.7);
    expect(clampSetting("temperature", "abc")).toBe(0.7);
    expect(clampSetting("topP", "0.9")).toBe(0.9);
    expect(clampSetting("topP", "1.5")).toBe(1);
    expect(clampSetting("maxTokens", "0")).toBe(1);
    expect(clampSetting("maxTokens", "99999")).toBe(4096);
    expect(clampSetting("maxTokens", "12.6")).toBe(13);
    expect(DEFAULT_SETTINGS).toEqual({ systemPrompt: "", temperature: 0.7, topP: 1, maxTokens: 256 });
  });
});

describe("export", () => {
  const now = new Date("2025-01-02T03:04:05.678Z");
  let { conv, assistantId } = startTurn(emptyConversation(), "hi");
  conv = finishTurn(appendFragment(conv, assistantId, "hello"), assistantId);
  const t = startTurn(conv, "again");
  const withError = failTurn(t.conv, t.assistantId, "boom");
  const settings = { systemPrompt: "Be brief.", temperature: 0.5, topP: 0.9, maxTokens: 64 };

  it("has the documented shape", () => {
    const out = buildExport({ now, settings, a: { source: { kind: "final", jobId: "job-1" }, label: "Adapter: run", conv: withError } });
    expect(JSON.parse(JSON.stringify(out))).toEqual({
      exportedAt: "2025-01-02T03:04:05.678Z",
      source: { kind: "final", jobId: "job-1", label: "Adapter: run" },
      settings: { systemPrompt: "Be brief.", temperature: 0.5, topP: 0.9, maxTokens: 64 },
      messages: [
        { role: "user", content: "hi" },
        { role: "assistant", content: "hello" },
        { role: "user", content: "again" },
        { role: "assistant", content: "[error] boom", error: true },
      ],
    });
    expect(out.compare).toBeUndefined();
  });

  it("adds the second column side by side", () => {
    const out = buildExport({
      now,
      settings,
      a: { source: { kind: "checkpoint", jobId: "job-1", step: 20 }, conv },
      b: { source: { kind: "base", model: "arkor/tiny" }, conv: emptyConversation() },
    });
    expect(out.source).toEqual({ kind: "checkpoint", jobId: "job-1", step: 20 });
    expect(out.messages).toHaveLength(2);
    expect(out.compare).toEqual({ source: { kind: "base", model: "arkor/tiny" }, messages: [] });
  });

  it("names the file with a timestamp safe for file systems", () => {
    expect(exportFilename(now)).toBe("arkor-playground-2025-01-02T03-04-05Z.json");
  });
});

describe("source <-> URL params", () => {
  it("reads adapter, adapter+step and base", () => {
    expect(sourceFromParams(qs("adapter=job-1"))).toEqual({ kind: "final", jobId: "job-1" });
    expect(sourceFromParams(qs("adapter=job-1&step=40"))).toEqual({ kind: "checkpoint", jobId: "job-1", step: 40 });
    expect(sourceFromParams(qs("base=arkor%2Ftiny"))).toEqual({ kind: "base", model: "arkor/tiny" });
    expect(sourceFromParams(qs(""))).toBeNull();
    expect(sourceFromParams(qs("adapter=%20%20"))).toBeNull();
  });

  it("ignores an invalid step (the final adapter is meant)", () => {
    for (const step of ["abc", "-1", "1.5", "", "1e3"]) {
      expect(sourceFromParams(qs(`adapter=job-1&step=${encodeURIComponent(step)}`))).toEqual({ kind: "final", jobId: "job-1" });
    }
    expect(parseStep("0")).toBe(0);
    expect(parseStep(" 7 ")).toBe(7);
    expect(parseStep(null)).toBeNull();
  });

  it("round-trips every kind, with and without the second source", () => {
    const cases = [
      { a: { kind: "final" as const, jobId: "job 1/é" }, compare: false, b: null },
      { a: { kind: "checkpoint" as const, jobId: "job-1", step: 0 }, compare: false, b: null },
      { a: { kind: "base" as const, model: "arkor/tiny" }, compare: false, b: null },
      { a: { kind: "checkpoint" as const, jobId: "job-1", step: 30 }, compare: true, b: { kind: "base" as const, model: "org/m" } },
      { a: { kind: "base" as const, model: "org/m" }, compare: true, b: { kind: "checkpoint" as const, jobId: "j2", step: 5 } },
    ];
    for (const state of cases) {
      expect(urlStateFromParams(paramsFromUrlState(state))).toEqual(state);
    }
  });

  it("matches the links other pages build", () => {
    expect(urlStateFromParams(qs(playgroundHref("job-1").split("?")[1])).a).toEqual({ kind: "final", jobId: "job-1" });
    expect(urlStateFromParams(qs(playgroundHref("job-1", 10).split("?")[1])).a).toEqual({ kind: "checkpoint", jobId: "job-1", step: 10 });
    expect(playgroundHash({ a: { kind: "checkpoint", jobId: "job-1", step: 10 }, compare: false, b: null })).toBe(playgroundHref("job-1", 10));
    expect(playgroundHash({ a: null, compare: false, b: null })).toBe("#/playground");
  });

  it("reads the second source only when side by side is on", () => {
    expect(urlStateFromParams(qs("adapter=j&b_base=m"))).toEqual({ a: { kind: "final", jobId: "j" }, compare: false, b: null });
    expect(urlStateFromParams(qs("adapter=j&compare=1&b_base=m")).b).toEqual({ kind: "base", model: "m" });
  });

  it("sourceKey tells sources apart", () => {
    expect(sourceKey({ kind: "checkpoint", jobId: "j", step: 1 })).not.toBe(sourceKey({ kind: "checkpoint", jobId: "j", step: 2 }));
    expect(sourceKey({ kind: "final", jobId: "j" })).not.toBe(sourceKey({ kind: "base", model: "j" }));
    expect(sourceKey(null)).toBe("");
  });
});

describe("picker resolution", () => {
  const data: PickData = {
    baseModels: ["org/big", "arkor/tiny"],
    completed: [
      { id: "c1", config: { model: "org/big" } },
      { id: "c2", config: { model: "arkor/tiny" } },
    ],
    ckptJobs: [
      { id: "r1", config: { model: "org/big" } },
      { id: "c1", config: { model: "org/big" } },
      { id: "c2", config: { model: "arkor/tiny" } },
    ],
  };

  it("defaults to the arkor/tiny base model", () => {
    const p = resolvePick(null, data);
    expect(pickSource(p)).toEqual({ kind: "base", model: "arkor/tiny" });
    expect(pickSource(resolvePick(null, { ...data, baseModels: ["x/y"] }))).toEqual({ kind: "base", model: "x/y" });
  });

  it("preselects an adapter, falling back to the first completed job for an unknown id", () => {
    expect(pickSource(resolvePick({ kind: "final", jobId: "c2" }, data))).toEqual({ kind: "final", jobId: "c2" });
    expect(pickSource(resolvePick({ kind: "final", jobId: "gone" }, data))).toEqual({ kind: "final", jobId: "c1" });
    // A running job has no final adapter.
    expect(pickSource(resolvePick({ kind: "final", jobId: "r1" }, data))).toEqual({ kind: "final", jobId: "c1" });
  });

  it("stays in Adapter mode with nothing selected when there is no completed job", () => {
    const p = resolvePick({ kind: "final", jobId: "c1" }, { ...data, completed: [], ckptJobs: [] });
    expect(p.mode).toBe("final");
    expect(pickSource(p)).toBeNull();
    expect(pickSource(resolvePick({ kind: "checkpoint", jobId: "c1", step: 1 }, { ...data, ckptJobs: [] }))).toBeNull();
  });

  it("a base model from the URL is kept even if not listed", () => {
    expect(pickSource(resolvePick({ kind: "base", model: "org/other" }, data))).toEqual({ kind: "base", model: "org/other" });
  });

  it("normalizePick replaces jobs that are gone and keeps the rest", () => {
    const p = resolvePick({ kind: "checkpoint", jobId: "c2", step: 10 }, data);
    expect(normalizePick(p, data)).toBe(p);
    const after = normalizePick(p, { ...data, ckptJobs: [{ id: "r1" }] });
    expect(after).toMatchObject({ ckptJob: "r1", ckptStep: null, adapterJob: "c1" });
    expect(normalizePick(p, { ...data, completed: [], ckptJobs: [] })).toMatchObject({ adapterJob: "", ckptJob: "" });
  });

  it("preselects a checkpoint (also of a running job); an unknown job falls back to the first", () => {
    expect(pickSource(resolvePick({ kind: "checkpoint", jobId: "r1", step: 20 }, data))).toEqual({ kind: "checkpoint", jobId: "r1", step: 20 });
    const p = resolvePick({ kind: "checkpoint", jobId: "gone", step: 20 }, data);
    expect(p.mode).toBe("checkpoint");
    expect(p.ckptJob).toBe("r1");
    expect(p.ckptStep).toBeNull(); // Waits for the job's steps.
    expect(pickSource(p)).toBeNull();
  });

  it("settles the step once the steps are known", () => {
    expect(settleStep(20, [10, 20, 30])).toBe(20);
    expect(settleStep(25, [10, 20, 30])).toBe(30);
    expect(settleStep(null, [30, 10, 20])).toBe(30);
    expect(settleStep(20, [])).toBe(20);
    expect(settleStep(null, [])).toBeNull();
  });

  it("compares an adapter with its own base model, and a base model with an adapter trained on it", () => {
    const a = resolvePick({ kind: "final", jobId: "c1" }, data);
    expect(pickSource(defaultComparePick(a, data))).toEqual({ kind: "base", model: "org/big" });
    const base = resolvePick({ kind: "base", model: "arkor/tiny" }, data);
    expect(pickSource(defaultComparePick(base, data))).toEqual({ kind: "final", jobId: "c2" });
    const lonely = resolvePick(null, { ...data, completed: [], ckptJobs: [] });
    expect(pickSource(defaultComparePick(lonely, data))).toEqual({ kind: "final", jobId: "c2" });
    expect(pickSource(defaultComparePick(lonely, { ...data, completed: [] }))).toEqual({ kind: "base", model: "arkor/tiny" });
  });
});

describe("a typed base model (Other…)", () => {
  const listed = ["arkor/tiny", "org/big"];
  const data: PickData = { baseModels: listed, completed: [], ckptJobs: [] };

  it("shows Other… for a model that is not listed, and keeps a typed value", () => {
    const p = resolvePick(null, data);
    expect(baseChoice(p, listed)).toBe("arkor/tiny");
    const other = chooseBase(p, OTHER_BASE, listed);
    expect(other).toMatchObject({ base: "", customBase: true });
    expect(baseChoice(other, listed)).toBe(OTHER_BASE);
    expect(pickSource(other)).toBeNull(); // Nothing typed yet: nothing to send.
    // Typing a listed id keeps the text box (Other… stays chosen).
    expect(baseChoice({ ...other, base: "org/big" }, listed)).toBe(OTHER_BASE);
    const typed = { ...other, base: " /models/q.gguf " };
    expect(pickSource(typed)).toEqual({ kind: "base", model: "/models/q.gguf" });
    // Back to the list, then to Other… again: a typed (unlisted) model is kept.
    expect(chooseBase(typed, "org/big", listed)).toMatchObject({ base: "org/big", customBase: false });
    expect(chooseBase({ ...typed, customBase: false }, OTHER_BASE, listed).base).toBe(" /models/q.gguf ");
  });

  it("comes back from the URL as Other… with the reference typed", () => {
    for (const model of ["/models/smollm2-q4_1.gguf", "ollama:llama3.2:1b", "/srv/models/qwen2"]) {
      const state = { a: { kind: "base" as const, model }, compare: false, b: null };
      const back = urlStateFromParams(new URLSearchParams(playgroundHash(state).split("?")[1]));
      expect(back).toEqual(state);
      const p = resolvePick(back.a, data);
      expect(baseChoice(p, listed)).toBe(OTHER_BASE);
      expect(p.customBase).toBe(true);
      expect(pickSource(p)).toEqual({ kind: "base", model });
    }
    expect(resolvePick({ kind: "base", model: "org/big" }, data).customBase).toBeUndefined();
  });

  it("says what a reference is, and warns about ones the backend refuses", () => {
    expect(describeModelRef("")).toMatchObject({ warn: false });
    expect(describeModelRef("/models/a.GGUF")).toEqual({ text: "A GGUF file", warn: false });
    expect(describeModelRef("models/a.gguf")).toMatchObject({ warn: true });
    expect(describeModelRef("ollama:llama3.2:1b")).toMatchObject({ text: "An Ollama model from its local store", warn: false });
    expect(describeModelRef("/srv/models/qwen2")).toMatchObject({ text: "A model directory (with config.json)", warn: false });
    expect(describeModelRef("C:\\models\\qwen2")).toMatchObject({ warn: false });
    expect(describeModelRef("Qwen/Qwen2.5-0.5B-Instruct")).toMatchObject({ text: "A Hugging Face model id", warn: false });
    expect(describeModelRef("arkor/tiny").warn).toBe(false);
    expect(describeModelRef("llama3")).toMatchObject({ warn: true });
  });
});

describe("tool calls in a conversation", () => {
  const call = (id: string, name = "get_weather") => ({ id, type: "function" as const, function: { name, arguments: '{"city":"Oslo"}' } });

  it("a reply with calls waits for a result per call, then continues without a user message", () => {
    let { conv, assistantId } = startTurn(emptyConversation(), "Weather in Oslo and Rome?");
    conv = appendPiece(conv, assistantId, { toolCalls: [call("c1"), call("c2")] });
    conv = finishTurn(conv, assistantId);
    expect(pendingToolCalls(conv).map((c) => c.id)).toEqual(["c1", "c2"]);
    // Not a pending call: nothing changes.
    expect(answerToolCall(conv, "nope", "x")).toBe(conv);
    conv = answerToolCall(conv, "c1", '{"t": 3}');
    expect(pendingToolCalls(conv).map((c) => c.id)).toEqual(["c2"]);
    expect(answerToolCall(conv, "c1", "again")).toBe(conv);
    conv = answerToolCall(conv, "c2", '{"t": 19}');
    expect(pendingToolCalls(conv)).toEqual([]);
    expect(messagesToSend(conv.bubbles, "sys", null)).toEqual([
      { role: "system", content: "sys" },
      { role: "user", content: "Weather in Oslo and Rome?" },
      { role: "assistant", content: null, tool_calls: [call("c1"), call("c2")] },
      { role: "tool", content: '{"t": 3}', tool_call_id: "c1" },
      { role: "tool", content: '{"t": 19}', tool_call_id: "c2" },
    ]);
    const next = startContinuation(conv);
    expect(next.conv.bubbles.at(-1)).toMatchObject({ role: "assistant", streaming: true });
    expect(next.conv.bubbles).toHaveLength(conv.bubbles.length + 1);
  });

  it("calls nobody answered are dropped, with the question when nothing else is left", () => {
    let { conv, assistantId } = startTurn(emptyConversation(), "q1");
    conv = finishTurn(appendPiece(conv, assistantId, { toolCalls: [call("c1")] }), assistantId);
    // The user asks something else instead: the unanswered call is no longer pending.
    const t2 = startTurn(conv, "q2");
    conv = finishTurn(appendPiece(t2.conv, t2.assistantId, "plain answer"), t2.assistantId);
    expect(pendingToolCalls(conv)).toEqual([]);
    expect(messagesToSend(conv.bubbles, "", "q3")).toEqual([
      { role: "user", content: "q2" },
      { role: "assistant", content: "plain answer" },
      { role: "user", content: "q3" },
    ]);
  });

  it("a reply cut at max tokens says so, in the page and the export", () => {
    let { conv, assistantId } = startTurn(emptyConversation(), "q");
    conv = appendPiece(conv, assistantId, '{"a": "xxx');
    conv = finishTurn(appendPiece(conv, assistantId, { finish: "length" }), assistantId);
    expect(conv.bubbles[1]).toMatchObject({ content: '{"a": "xxx', finish: "length" });
    const out = buildExport({ now: new Date(0), settings: DEFAULT_SETTINGS, a: { source: null, conv } });
    expect(out.messages[1]).toEqual({ role: "assistant", content: '{"a": "xxx', truncated: true });
  });

  it("exports tool calls and results in the wire format", () => {
    let { conv, assistantId } = startTurn(emptyConversation(), "q");
    conv = finishTurn(appendPiece(conv, assistantId, { toolCalls: [call("c1")] }), assistantId);
    conv = answerToolCall(conv, "c1", "sunny");
    const out = buildExport({
      now: new Date("2026-01-02T03:04:05Z"),
      settings: { ...DEFAULT_SETTINGS, toolChoice: "required", tools: [{ type: "function", function: { name: "get_weather" } }] },
      a: { source: { kind: "base", model: "arkor/tiny" }, conv },
    });
    expect(out.settings.toolChoice).toBe("required");
    expect(out.messages).toEqual([
      { role: "user", content: "q" },
      { role: "assistant", content: "", tool_calls: [call("c1")] },
      { role: "tool", content: "sunny", tool_call_id: "c1" },
    ]);
  });
});
