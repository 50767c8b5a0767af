import { afterEach, describe, expect, it, vi } from "vitest";
import {
  ApiError,
  artifactPath,
  type ChatPiece,
  chatBody,
  errorOf,
  fetchEvals,
  fetchExports,
  fetchManifest,
  fetchProjectDir,
  jobsPath,
  parseSseFrames,
  setStudioToken,
  startEval,
  startExport,
  streamChat,
  textOf,
} from "./api";

afterEach(() => {
  vi.unstubAllGlobals();
  setStudioToken(null);
});

function sseResponse(chunks: string[], status = 200): Response {
  const enc = new TextEncoder();
  const body = new ReadableStream<Uint8Array>({
    start(c) {
      for (const ch of chunks) c.enqueue(enc.encode(ch));
      c.close();
    },
  });
  return new Response(body, { status, headers: { "content-type": "text/event-stream" } });
}

describe("parseSseFrames", () => {
  it("splits frames, joins multi-line data, keeps the unfinished tail", () => {
    const { frames, rest } = parseSseFrames('id: 7\nevent: training.log\ndata: {"a":\ndata: 1}\n\n: comment\n\nevent: ping\n\ndata: par');
    expect(frames).toEqual([
      { event: "training.log", data: '{"a":\n1}', id: "7" },
      { event: "ping", data: "", id: undefined },
    ]);
    expect(rest).toBe("data: par");
  });

  it("accepts CRLF line endings", () => {
    const { frames } = parseSseFrames("data: x\r\n\r\n");
    expect(frames).toEqual([{ event: "message", data: "x", id: undefined }]);
  });
});

describe("textOf", () => {
  it("reads OpenAI deltas and tolerates other shapes", () => {
    expect(textOf('{"choices":[{"delta":{"content":"hi"}}]}')).toBe("hi");
    expect(textOf('{"choices":[{"delta":{"role":"assistant"}}]}')).toBe("");
    expect(textOf("not json")).toBe("");
  });
});

describe("chatBody", () => {
  const msgs = [{ role: "user" as const, content: "hi" }];
  it("names the source the backend's way", () => {
    expect(chatBody({ kind: "base", model: "arkor/tiny" }, msgs)).toEqual({ messages: msgs, stream: true, baseModel: "arkor/tiny" });
    expect(chatBody({ kind: "final", jobId: "j1" }, msgs).adapter).toEqual({ kind: "final", jobId: "j1" });
    // Reply shaping goes as the backend spells it; tool choice only with tools.
    const shaped = chatBody({ kind: "base", model: "m" }, msgs, {
      responseFormat: { type: "json_object" },
      structuredOutputs: { regex: "a+" },
      toolChoice: "required",
    });
    expect(shaped.responseFormat).toEqual({ type: "json_object" });
    expect(shaped.structuredOutputs).toEqual({ regex: "a+" });
    expect("toolChoice" in shaped || "tools" in shaped).toBe(false);
    const tools = [{ type: "function" as const, function: { name: "f" } }];
    expect(chatBody({ kind: "base", model: "m" }, msgs, { tools, toolChoice: "required" })).toMatchObject({ tools, toolChoice: "required" });
    expect(chatBody({ kind: "checkpoint", jobId: "j1", step: 20 }, msgs, { temperature: 0, topP: 0.9, maxTokens: 5 })).toMatchObject({
      adapter: { kind: "checkpoint", jobId: "j1", step: 20 },
      temperature: 0,
      topP: 0.9,
      maxTokens: 5,
    });
  });
});

describe("jobsPath", () => {
  it("passes paging, status and a trimmed search", () => {
    expect(jobsPath()).toBe("/api/jobs");
    expect(jobsPath({ limit: 20, cursor: "c1", status: "running", q: "  tri age " })).toBe("/api/jobs?limit=20&cursor=c1&status=running&q=tri+age");
    expect(jobsPath({ q: "   " })).toBe("/api/jobs");
  });
});

describe("errors", () => {
  it("prefers the server's error message, else the status line", async () => {
    expect((await errorOf(new Response('{"error":"job not found","code":"not_found"}', { status: 404 }))).message).toBe("job not found");
    const e = await errorOf(new Response("", { status: 502, statusText: "Bad Gateway" }));
    expect(e).toBeInstanceOf(ApiError);
    expect(e.status).toBe(502);
    expect(e.message).toBe("502 Bad Gateway");
  });

  it("returns the manifest's build error instead of throwing on 400", async () => {
    const fetchMock = vi.fn(async () => new Response('{"error":"error[E0425]: cannot find value"}', { status: 400 }));
    vi.stubGlobal("fetch", fetchMock);
    setStudioToken("tok");
    expect(await fetchManifest()).toEqual({ error: "error[E0425]: cannot find value" });
    const headers = (fetchMock.mock.calls[0] as unknown as [string, RequestInit])[1].headers as Headers;
    expect(headers.get("X-Arkor-Studio-Token")).toBe("tok");
  });
});

describe("streamChat", () => {
  it("yields deltas split across chunks, skips pings, stops at [DONE]", async () => {
    vi.stubGlobal("fetch", async () =>
      sseResponse([
        'data: {"choices":[{"delta":{"role":"assistant"}}]}\n\n',
        "event: ping\ndata: \n\n",
        'data: {"choices":[{"delta":{"content":"Hel',
        'lo"}}]}\n\ndata: {"choices":[{"delta":{"content":" world"}}]}\n\n',
        "data: [DONE]\n\n",
        'data: {"choices":[{"delta":{"content":"ignored"}}]}\n\n',
      ]),
    );
    const parts: ChatPiece[] = [];
    for await (const t of streamChat({ kind: "base", model: "arkor/tiny" }, [{ role: "user", content: "hi" }])) parts.push(t);
    expect(parts).toEqual(["Hello", " world"]);
  });

  it("yields tool calls whole, with their ids and JSON arguments", async () => {
    const call = { index: 0, id: "call_1", type: "function", function: { name: "get_weather", arguments: '{"city":"Oslo"}' } };
    vi.stubGlobal("fetch", async () =>
      sseResponse([
        'data: {"choices":[{"delta":{"role":"assistant"}}]}\n\n',
        `data: ${JSON.stringify({ choices: [{ delta: { tool_calls: [call, { index: 1, function: {} }] } }] })}\n\n`,
        'data: {"choices":[{"delta":{},"finish_reason":"tool_calls"}]}\n\n',
        "data: [DONE]\n\n",
      ]),
    );
    const parts: ChatPiece[] = [];
    for await (const t of streamChat({ kind: "base", model: "arkor/tiny" }, [])) parts.push(t);
    expect(parts).toEqual([
      { toolCalls: [{ id: "call_1", type: "function", function: { name: "get_weather", arguments: '{"city":"Oslo"}' } }] },
      { finish: "tool_calls" },
    ]);
  });

  it("throws the server's message on an error frame and on a non-2xx answer", async () => {
    vi.stubGlobal("fetch", async () => sseResponse(['data: {"choices":[{"delta":{"content":"a"}}]}\n\n', 'event: error\ndata: {"error":"model exploded"}\n\n']));
    const got: ChatPiece[] = [];
    await expect(async () => {
      for await (const t of streamChat({ kind: "final", jobId: "j" }, [])) got.push(t);
    }).rejects.toThrow("model exploded");
    expect(got).toEqual(["a"]);

    vi.stubGlobal("fetch", async () => new Response('{"error":"job j has no final adapter"}', { status: 404 }));
    await expect(async () => {
      for await (const _ of streamChat({ kind: "final", jobId: "j" }, [])) void _;
    }).rejects.toThrow("job j has no final adapter");
  });
});

describe("exports", () => {
  const running = {
    id: "exp_1",
    format: "gguf",
    quant: "q8_0",
    source: "final",
    status: "running",
    createdAt: "2026-01-01T00:00:00Z",
    files: [],
  };

  it("posts the export body with the token and returns the started export", async () => {
    const fetchMock = vi.fn(async () => new Response(JSON.stringify(running), { status: 202 }));
    vi.stubGlobal("fetch", fetchMock);
    setStudioToken("tok");
    expect(await startExport("job/1", { format: "gguf", quant: "q8_0" })).toEqual(running);
    const [url, init] = fetchMock.mock.calls[0] as unknown as [string, RequestInit];
    expect(url).toBe("/api/jobs/job%2F1/export");
    expect(init.method).toBe("POST");
    expect(JSON.parse(init.body as string)).toEqual({ format: "gguf", quant: "q8_0" });
    const headers = init.headers as Headers;
    expect(headers.get("X-Arkor-Studio-Token")).toBe("tok");
    expect(headers.get("Content-Type")).toBe("application/json");
  });

  it("throws the backend's 400 naming the field", async () => {
    vi.stubGlobal(
      "fetch",
      async () => new Response('{"error":"invalid checkpointStep: the job has no checkpoint at step 7"}', { status: 400 }),
    );
    const err = await startExport("j", { format: "hf", checkpointStep: 7 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect((err as ApiError).status).toBe(400);
    expect((err as ApiError).message).toBe("invalid checkpointStep: the job has no checkpoint at step 7");
  });

  it("lists a job's exports", async () => {
    const fetchMock = vi.fn(async () => new Response(JSON.stringify({ exports: [running] })));
    vi.stubGlobal("fetch", fetchMock);
    expect(await fetchExports("j1")).toEqual([running]);
    expect((fetchMock.mock.calls[0] as unknown as [string])[0]).toBe("/api/jobs/j1/exports");
  });

  it("downloads export files by their nested path, each segment encoded", () => {
    expect(artifactPath("j1", "exports/exp_1/run-hf/model.safetensors")).toBe("/api/jobs/j1/artifacts/exports/exp_1/run-hf/model.safetensors");
    expect(artifactPath("j1", "exports/exp_1/a b/c#d")).toBe("/api/jobs/j1/artifacts/exports/exp_1/a%20b/c%23d");
  });
});

describe("evaluations", () => {
  const running = {
    id: "eval_1",
    source: "checkpoint-20",
    step: 20,
    dataset: "heldout.jsonl",
    status: "running",
    createdAt: "2026-01-01T00:00:00Z",
  };

  it("posts the eval body with the token and returns the started evaluation", async () => {
    const fetchMock = vi.fn(async () => new Response(JSON.stringify(running), { status: 202 }));
    vi.stubGlobal("fetch", fetchMock);
    setStudioToken("tok");
    const body = { datasetPath: "/p/data/heldout.jsonl", checkpointStep: 20, maxTokens: 16 };
    expect(await startEval("job/1", body)).toEqual(running);
    const [url, init] = fetchMock.mock.calls[0] as unknown as [string, RequestInit];
    expect(url).toBe("/api/jobs/job%2F1/eval");
    expect(init.method).toBe("POST");
    expect(JSON.parse(init.body as string)).toEqual(body);
    const headers = init.headers as Headers;
    expect(headers.get("X-Arkor-Studio-Token")).toBe("tok");
    expect(headers.get("Content-Type")).toBe("application/json");
  });

  it("throws the backend's 400 naming the field", async () => {
    vi.stubGlobal("fetch", async () => new Response('{"error":"invalid maxTokens: expected 1-4096, got 0"}', { status: 400 }));
    const err = await startEval("j", { datasetPath: "/x", maxTokens: 0 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect((err as ApiError).status).toBe(400);
    expect((err as ApiError).message).toBe("invalid maxTokens: expected 1-4096, got 0");
  });

  it("lists a job's evaluations and reads the project directory", async () => {
    const fetchMock = vi.fn(async (url: string) =>
      new Response(url === "/api/project" ? '{"dir":"/home/me/proj"}' : JSON.stringify({ evals: [running] })),
    );
    vi.stubGlobal("fetch", fetchMock);
    expect(await fetchEvals("j1")).toEqual([running]);
    expect((fetchMock.mock.calls[0] as unknown as [string])[0]).toBe("/api/jobs/j1/evals");
    expect(await fetchProjectDir()).toBe("/home/me/proj");
  });

  it("downloads the report through the artifacts route", () => {
    expect(artifactPath("j1", "evals/eval_1/report.json")).toBe("/api/jobs/j1/artifacts/evals/eval_1/report.json");
  });
});
