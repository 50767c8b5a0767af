import { useCallback, useEffect, useId, useLayoutEffect, useMemo, useRef, useState } from "react";
import {
  type ArtifactSet,
  fetchArtifacts,
  fetchJobs,
  fetchModels,
  fetchProject,
  type Job,
  type ModelInfo,
  type ModelSource,
  saveBlob,
  streamChat,
  type ToolCall,
} from "../lib/api";
import {
  answerToolCall,
  appendPiece,
  baseChoice,
  buildExport,
  chooseBase,
  type ChatSettings,
  chatOptions,
  clampSetting,
  clearConversation,
  type Conversation,
  DEFAULT_SETTINGS,
  defaultComparePick,
  describeModelRef,
  emptyConversation,
  exportFilename,
  failTurn,
  finishTurn,
  isStreaming,
  messagesToSend,
  normalizePick,
  OTHER_BASE,
  paramsFromUrlState,
  pendingToolCalls,
  type Pick,
  type PickData,
  type ReplyShaping,
  pickSource,
  playgroundHash,
  resolvePick,
  SETTING_LIMITS,
  settleStep,
  type SourceMode,
  sourceKey,
  startContinuation,
  startTurn,
  stopTurn,
  urlStateFromParams,
} from "../lib/conversation";
import { errorMessage, truncateMiddle } from "../lib/format";
import { replaceHash } from "../lib/route";
import {
  type Checked,
  defaultOutput,
  newTool,
  OUTPUT_KINDS,
  type OutputKind,
  type OutputSettings,
  outputFromParams,
  outputOptions,
  prettyArguments,
  settleToolChoice,
  TEXT_OUTPUT,
  toolOptions,
  type ToolSettings,
  type ToolSpec,
  toolsFromParams,
} from "../lib/shaping";
import "./playground.css";

interface JobsState {
  loading: boolean;
  error: string | null;
  /** Completed jobs, in backend order (Adapter mode). */
  completed: Job[];
  /** Running and completed jobs, newest first (Checkpoint mode). */
  ckptJobs: Job[];
}

interface ModelsState {
  loading: boolean;
  error: string | null;
  base: ModelInfo[];
}

interface StepsEntry {
  steps: number[];
  loaded: boolean;
  loading: boolean;
  error: string | null;
}

const MODES: { value: SourceMode; label: string }[] = [
  { value: "base", label: "Base model" },
  { value: "final", label: "Adapter" },
  { value: "checkpoint", label: "Checkpoint" },
];

const STEPS_POLL_MS = 5000;
const JOBS_POLL_MS = 15000;

async function loadJobLists(signal?: AbortSignal): Promise<{ completed: Job[]; ckptJobs: Job[] }> {
  const [c, r] = await Promise.all([
    fetchJobs({ status: "completed", limit: 100 }, signal),
    fetchJobs({ status: "running", limit: 100 }, signal),
  ]);
  const completed = c.jobs.filter((j) => j.status === "completed");
  const running = r.jobs.filter((j) => j.status === "running");
  const seen = new Set<string>();
  const ckptJobs: Job[] = [];
  for (const j of [...running, ...completed]) {
    if (seen.has(j.id)) continue;
    seen.add(j.id);
    ckptJobs.push(j);
  }
  ckptJobs.sort((a, b) => (Date.parse(b.createdAt) || 0) - (Date.parse(a.createdAt) || 0));
  return { completed, ckptJobs };
}

function checkpointSteps(sets: ArtifactSet[]): number[] {
  return [...new Set(sets.filter((s) => s.kind === "checkpoint").map((s) => s.step))].sort((a, b) => a - b);
}

function pickData(jobs: JobsState, models: ModelsState): PickData {
  return { baseModels: models.base.map((m) => m.id), completed: jobs.completed, ckptJobs: jobs.ckptJobs };
}

function jobOptionLabel(job: Job): string {
  return `${job.name || "(unnamed)"} (${truncateMiddle(job.id, 4, 4)})`;
}

function sourceLabel(source: ModelSource | null, jobs: JobsState): string {
  if (!source) return "";
  if (source.kind === "base") return `Base model: ${source.model}`;
  const job = jobs.completed.find((j) => j.id === source.jobId) ?? jobs.ckptJobs.find((j) => j.id === source.jobId);
  const name = job ? jobOptionLabel(job) : truncateMiddle(source.jobId, 4, 4);
  return source.kind === "final" ? `Adapter: ${name}` : `Checkpoint: ${name} · step ${source.step}`;
}

function provisionalPick(want: ModelSource | null): Pick {
  return {
    mode: want?.kind ?? "base",
    base: want?.kind === "base" ? want.model : "",
    adapterJob: "",
    ckptJob: "",
    ckptStep: null,
  };
}

export function Playground({ params }: { params: URLSearchParams }) {
  const paramsKey = params.toString();
  const paramsRef = useRef(params);
  paramsRef.current = params;
  const initialWant = useMemo(() => urlStateFromParams(params), []); // eslint-disable-line react-hooks/exhaustive-deps

  const [jobs, setJobs] = useState<JobsState>({ loading: true, error: null, completed: [], ckptJobs: [] });
  const [models, setModels] = useState<ModelsState>({ loading: true, error: null, base: [] });
  const [ready, setReady] = useState(false);
  const [pickA, setPickA] = useState<Pick>(() => provisionalPick(initialWant.a));
  const [compare, setCompare] = useState(initialWant.compare);
  const [pickB, setPickB] = useState<Pick>(() => provisionalPick(initialWant.b));
  const [steps, setSteps] = useState<Record<string, StepsEntry>>({});

  const [convA, setConvA] = useState<Conversation>(emptyConversation);
  const [convB, setConvB] = useState<Conversation>(emptyConversation);
  const [input, setInput] = useState("");
  const [systemPrompt, setSystemPrompt] = useState(DEFAULT_SETTINGS.systemPrompt);
  const [temperature, setTemperature] = useState(String(DEFAULT_SETTINGS.temperature));
  const [topP, setTopP] = useState(String(DEFAULT_SETTINGS.topP));
  const [maxTokens, setMaxTokens] = useState(String(DEFAULT_SETTINGS.maxTokens));
  // Reply shaping: the project's reply schema is the default response format (when it has one).
  const [outputDefault, setOutputDefault] = useState<OutputSettings>(TEXT_OUTPUT);
  const [output, setOutput] = useState<OutputSettings>(() => outputFromParams(params, TEXT_OUTPUT));
  const [tools, setTools] = useState<ToolSettings>(() => toolsFromParams(params));
  const [schemaFileError, setSchemaFileError] = useState<string | null>(null);
  const outputDefaultRef = useRef(outputDefault);
  outputDefaultRef.current = outputDefault;

  const mountedRef = useRef(true);
  const abortRef = useRef<AbortController | null>(null);
  const busyRef = useRef(false);
  /** The query this page last read or wrote; a different one came from outside. */
  const lastParamsRef = useRef<string | null>(null);
  const stepsLoadedAt = useRef<Record<string, number>>({});
  const jobsLoadedAt = useRef(0);
  const textareaRef = useRef<HTMLTextAreaElement>(null);

  const data = useMemo(() => pickData(jobs, models), [jobs, models]);
  const dataRef = useRef(data);
  dataRef.current = data;
  const jobsOkRef = useRef(true);
  jobsOkRef.current = !jobs.error;

  const streaming = isStreaming(convA) || isStreaming(convB);
  const sourceA = pickSource(pickA);
  const sourceB = compare ? pickSource(pickB) : null;
  const keyA = sourceKey(sourceA);
  const keyB = compare ? sourceKey(sourceB) : "-";
  const settings: ChatSettings = {
    systemPrompt,
    temperature: clampSetting("temperature", temperature),
    topP: clampSetting("topP", topP),
    maxTokens: clampSetting("maxTokens", maxTokens),
  };
  const outputCheck = outputOptions(output);
  const toolCheck = toolOptions(tools);
  const shaping: Checked<ReplyShaping> = !outputCheck.ok
    ? outputCheck
    : !toolCheck.ok
      ? toolCheck
      : { ok: true, value: { ...outputCheck.value, ...toolCheck.value } };

  useEffect(() => {
    mountedRef.current = true;
    return () => {
      mountedRef.current = false;
      abortRef.current?.abort();
    };
  }, []);

  /** Sets both pickers from the URL's wish, given the loaded lists. */
  const seed = useCallback((params: URLSearchParams, d: PickData, jobsOk: boolean) => {
    const want = urlStateFromParams(params);
    const usable = (s: ModelSource | null) => (jobsOk || s?.kind === "base" ? s : null);
    const a = resolvePick(usable(want.a), d);
    setPickA(a);
    setCompare(want.compare);
    const wb = usable(want.b);
    setPickB(wb ? resolvePick(wb, d) : defaultComparePick(a, d));
  }, []);

  // Load the job lists and the model list once.
  useEffect(() => {
    const ctrl = new AbortController();
    void (async () => {
      const [j, m, p] = await Promise.allSettled([loadJobLists(ctrl.signal), fetchModels(ctrl.signal), fetchProject(ctrl.signal)]);
      if (ctrl.signal.aborted) return;
      if (p.status === "fulfilled") {
        const def = defaultOutput(p.value.replySchema);
        setOutputDefault(def);
        outputDefaultRef.current = def;
        setOutput(outputFromParams(paramsRef.current, def));
        setSchemaFileError(p.value.replySchemaError ?? null);
      }
      const jobsState: JobsState =
        j.status === "fulfilled"
          ? { loading: false, error: null, ...j.value }
          : { loading: false, error: errorMessage(j.reason), completed: [], ckptJobs: [] };
      const modelsState: ModelsState =
        m.status === "fulfilled"
          ? { loading: false, error: null, base: m.value.filter((x) => x.kind === "base") }
          : { loading: false, error: errorMessage(m.reason), base: [] };
      jobsLoadedAt.current = Date.now();
      setJobs(jobsState);
      setModels(modelsState);
      lastParamsRef.current = paramsRef.current.toString();
      seed(paramsRef.current, pickData(jobsState, modelsState), !jobsState.error);
      setReady(true);
    })();
    return () => ctrl.abort();
  }, [seed]);

  // A URL change from outside (a link, Back) re-seeds the pickers; never in the middle of a reply.
  useEffect(() => {
    if (!ready || streaming || paramsKey === lastParamsRef.current) return;
    lastParamsRef.current = paramsKey;
    seed(paramsRef.current, dataRef.current, jobsOkRef.current);
    setOutput(outputFromParams(paramsRef.current, outputDefaultRef.current));
    setTools(toolsFromParams(paramsRef.current));
  }, [paramsKey, ready, streaming, seed]);

  // Write the chosen sources and the reply shaping into the URL, so a reload keeps them.
  const shapeKey = JSON.stringify([output, outputDefault, tools]);
  useEffect(() => {
    if (!ready || !sourceA || (compare && !sourceB)) return;
    const state = { a: sourceA, compare, b: sourceB, output, outputDefault, tools };
    lastParamsRef.current = paramsFromUrlState(state).toString();
    replaceHash(playgroundHash(state));
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [ready, keyA, keyB, compare, shapeKey]);

  const stopStreams = useCallback(() => {
    abortRef.current?.abort();
    abortRef.current = null;
  }, []);

  // Another model: a new conversation.
  const convKey = `${keyA}|${keyB}`;
  const prevConvKey = useRef(convKey);
  useEffect(() => {
    if (prevConvKey.current === convKey) return;
    prevConvKey.current = convKey;
    stopStreams();
    setConvA(clearConversation);
    setConvB(clearConversation);
  }, [convKey, stopStreams]);

  // Checkpoint steps, per job.
  const loadSteps = useCallback((jobId: string, force: boolean) => {
    const now = Date.now();
    const last = stepsLoadedAt.current[jobId];
    if (!force && last !== undefined && now - last < 1500) return;
    stepsLoadedAt.current[jobId] = now;
    setSteps((s) => ({
      ...s,
      [jobId]: { ...(s[jobId] ?? { steps: [], loaded: false, error: null }), loading: true },
    }));
    fetchArtifacts(jobId).then(
      (sets) => {
        if (!mountedRef.current) return;
        const list = checkpointSteps(sets);
        setSteps((s) => ({ ...s, [jobId]: { steps: list, loaded: true, loading: false, error: null } }));
      },
      (e: unknown) => {
        if (!mountedRef.current) return;
        setSteps((s) => ({
          ...s,
          [jobId]: { steps: s[jobId]?.steps ?? [], loaded: true, loading: false, error: errorMessage(e) },
        }));
      },
    );
  }, []);

  const neededJobs = [
    pickA.mode === "checkpoint" ? pickA.ckptJob : "",
    compare && pickB.mode === "checkpoint" ? pickB.ckptJob : "",
  ].filter((id, i, all) => id && all.indexOf(id) === i);
  const neededKey = neededJobs.join(",");
  const runningNeededKey = neededJobs
    .filter((id) => jobs.ckptJobs.some((j) => j.id === id && j.status === "running"))
    .join(",");

  useEffect(() => {
    for (const id of neededKey ? neededKey.split(",") : []) {
      if (stepsLoadedAt.current[id] === undefined) loadSteps(id, true);
    }
  }, [neededKey, loadSteps]);

  useEffect(() => {
    if (!runningNeededKey) return;
    const ids = runningNeededKey.split(",");
    const t = setInterval(() => ids.forEach((id) => loadSteps(id, true)), STEPS_POLL_MS);
    return () => clearInterval(t);
  }, [runningNeededKey, loadSteps]);

  // Settle each checkpoint picker's step once its job's steps are known.
  useEffect(() => {
    const settle = (p: Pick): Pick => {
      if (p.mode !== "checkpoint" || !p.ckptJob) return p;
      const entry = steps[p.ckptJob];
      if (!entry?.loaded) return p;
      const step = settleStep(p.ckptStep, entry.steps);
      return step === p.ckptStep ? p : { ...p, ckptStep: step };
    };
    setPickA(settle);
    setPickB(settle);
  }, [steps, pickA.mode, pickA.ckptJob, pickB.mode, pickB.ckptJob]);

  // Refresh the job lists (a focused select, or a poll while a job is running).
  const refreshJobs = useCallback(
    (force: boolean) => {
      if (!ready || jobs.error) return;
      if (!force && Date.now() - jobsLoadedAt.current < 5000) return;
      jobsLoadedAt.current = Date.now();
      loadJobLists().then(
        (v) => {
          if (!mountedRef.current) return;
          setJobs((j) => ({ ...j, ...v }));
          const d = { ...dataRef.current, completed: v.completed, ckptJobs: v.ckptJobs };
          setPickA((p) => normalizePick(p, d));
          setPickB((p) => normalizePick(p, d));
        },
        () => {
          // Keep the lists we have.
        },
      );
    },
    [ready, jobs.error],
  );
  const anyRunning = jobs.ckptJobs.some((j) => j.status === "running");
  useEffect(() => {
    if (!anyRunning) return;
    const t = setInterval(() => refreshJobs(true), JOBS_POLL_MS);
    return () => clearInterval(t);
  }, [anyRunning, refreshJobs]);

  const onToggleCompare = (on: boolean) => {
    if (on) setPickB(defaultComparePick(pickA, data));
    setCompare(on);
  };

  // Sending.
  const canSend = ready && !!sourceA && (!compare || !!sourceB) && shaping.ok;
  const send = async () => {
    const text = input.trim();
    if (!text || busyRef.current || streaming || !sourceA || (compare && !sourceB) || !shaping.ok) return;
    busyRef.current = true;
    const ctrl = new AbortController();
    abortRef.current = ctrl;
    const opts = settings;
    const shape = shaping.value;
    const columns: { source: ModelSource; conv: Conversation; set: typeof setConvA }[] = [
      { source: sourceA, conv: convA, set: setConvA },
    ];
    if (compare && sourceB) columns.push({ source: sourceB, conv: convB, set: setConvB });
    setInput("");
    const runs = columns.map(({ source, conv, set }) => {
      const { conv: next, assistantId } = startTurn(conv, text);
      set(next);
      return runReply(source, messagesToSend(conv.bubbles, opts.systemPrompt, text), opts, shape, ctrl.signal, assistantId, set);
    });
    try {
      await Promise.allSettled(runs);
    } finally {
      if (abortRef.current === ctrl) abortRef.current = null;
      busyRef.current = false;
    }
  };

  const runReply = async (
    source: ModelSource,
    messages: ReturnType<typeof messagesToSend>,
    opts: ChatSettings,
    shape: ReplyShaping,
    signal: AbortSignal,
    id: number,
    set: typeof setConvA,
  ) => {
    try {
      for await (const piece of streamChat(source, messages, { ...chatOptions(opts), ...shape }, signal)) {
        if (!mountedRef.current) return;
        set((c) => appendPiece(c, id, piece));
      }
      if (!mountedRef.current) return;
      set((c) => (signal.aborted ? stopTurn(c, id) : finishTurn(c, id)));
    } catch (e) {
      if (!mountedRef.current) return;
      set((c) => (signal.aborted ? stopTurn(c, id) : failTurn(c, id, errorMessage(e))));
    }
  };

  // A result typed for a tool call; once every call of the reply has one, the model goes on.
  const sendToolResult = async (column: "a" | "b", callId: string, result: string) => {
    const source = column === "a" ? sourceA : sourceB;
    const conv = column === "a" ? convA : convB;
    const set = column === "a" ? setConvA : setConvB;
    if (busyRef.current || streaming || !source || !shaping.ok) return;
    const answered = answerToolCall(conv, callId, result);
    if (answered === conv) return;
    if (pendingToolCalls(answered).length > 0) {
      set(answered);
      return;
    }
    busyRef.current = true;
    const ctrl = new AbortController();
    abortRef.current = ctrl;
    const { conv: next, assistantId } = startContinuation(answered);
    set(next);
    try {
      await runReply(source, messagesToSend(answered.bubbles, settings.systemPrompt, null), settings, shaping.value, ctrl.signal, assistantId, set);
    } finally {
      if (abortRef.current === ctrl) abortRef.current = null;
      busyRef.current = false;
    }
  };

  const clearAll = () => {
    stopStreams();
    setConvA(clearConversation);
    setConvB(clearConversation);
  };

  const labelA = sourceLabel(sourceA, jobs);
  const labelB = sourceLabel(sourceB, jobs);
  const hasMessages = convA.bubbles.length > 0 || (compare && convB.bubbles.length > 0);

  const exportConversation = () => {
    const out = buildExport({
      now: new Date(),
      settings: shaping.ok ? { ...settings, ...shaping.value } : settings,
      a: { source: sourceA, label: labelA, conv: convA },
      b: compare ? { source: sourceB, label: labelB, conv: convB } : null,
    });
    saveBlob(new Blob([JSON.stringify(out, null, 2)], { type: "application/json" }), exportFilename(new Date(out.exportedAt)));
  };

  // Composer.
  useLayoutEffect(() => {
    const el = textareaRef.current;
    if (!el) return;
    el.style.height = "auto";
    el.style.height = `${Math.min(el.scrollHeight, 200)}px`;
    el.style.overflowY = el.scrollHeight > 200 ? "auto" : "hidden";
  }, [input]);

  const onKeyDown = (e: React.KeyboardEvent<HTMLTextAreaElement>) => {
    if (e.key !== "Enter" || e.shiftKey) return;
    if (e.nativeEvent.isComposing || e.keyCode === 229) return;
    e.preventDefault();
    void send();
  };

  const ids = { message: useId(), help: useId(), system: useId(), temp: useId(), topP: useId(), max: useId() };

  // What both source pickers read and how they refresh it.
  const pickerData = {
    jobs,
    models,
    steps,
    onStepsFocus: (id: string) => loadSteps(id, false),
    onJobsFocus: () => refreshJobs(false),
  };
  return (
    <div className="pg">
      <div className="page-title">
        <h1>Playground</h1>
        <p className="subtitle">Chat with a base model, a fine-tuned adapter or one of its checkpoints.</p>
      </div>
      {jobs.error && (
        <div className="notice error" role="alert">
          Failed to load jobs: {jobs.error}
        </div>
      )}
      {models.error && (
        <div className="notice warn" role="alert">
          Failed to load models: {models.error}
        </div>
      )}

      <div className="pg-layout">
        <section className="card pg-model" aria-labelledby="pg-model-title">
          <div className="card-head">
            <h2 id="pg-model-title">Model</h2>
            <span className="spacer" />
            <label className="pg-check">
              <input type="checkbox" checked={compare} onChange={(e) => onToggleCompare(e.target.checked)} />
              Side by side
            </label>
          </div>
          <div className={`card-body pg-pickers${compare ? " two" : ""}`}>
            <SourcePicker suffix="" pick={pickA} onChange={setPickA} showTitle={compare} {...pickerData} />
            {compare && <SourcePicker suffix=" B" pick={pickB} onChange={setPickB} showTitle {...pickerData} />}
          </div>
        </section>

        <div className="pg-side">
        <aside className="card pg-settings" aria-label="Generation settings">
          <details open>
            <summary className="card-head">
              <h2>Settings</h2>
            </summary>
            <div className="card-body pg-settings-body">
              <div className="pg-field pg-system-field">
                <label htmlFor={ids.system}>System prompt</label>
                <textarea
                  id={ids.system}
                  className="textarea pg-system"
                  rows={3}
                  value={systemPrompt}
                  placeholder="You are a helpful assistant."
                  onChange={(e) => setSystemPrompt(e.target.value)}
                />
              </div>
              <NumberSetting id={ids.temp} label="Temperature" k="temperature" value={temperature} onChange={setTemperature} />
              <NumberSetting id={ids.topP} label="Top-p" k="topP" value={topP} onChange={setTopP} />
              <NumberSetting id={ids.max} label="Max tokens" k="maxTokens" value={maxTokens} onChange={setMaxTokens} />
              <button
                type="button"
                className="btn small"
                onClick={() => {
                  setSystemPrompt(DEFAULT_SETTINGS.systemPrompt);
                  setTemperature(String(DEFAULT_SETTINGS.temperature));
                  setTopP(String(DEFAULT_SETTINGS.topP));
                  setMaxTokens(String(DEFAULT_SETTINGS.maxTokens));
                }}
              >
                Reset settings
              </button>
            </div>
          </details>
        </aside>
        <ResponseFormatCard
          output={output}
          fallback={outputDefault}
          check={outputCheck}
          fileError={schemaFileError}
          onChange={setOutput}
        />
        <ToolsCard tools={tools} check={toolCheck} onChange={(t) => setTools(settleToolChoice(t))} />
        </div>

        <section className="card pg-chat" aria-labelledby="pg-chat-title">
          <div className="card-head">
            <h2 id="pg-chat-title">Conversation</h2>
            {!compare && labelA && <span className="muted pg-with">with {labelA}</span>}
            <span className="spacer" />
            <button type="button" className="btn small" onClick={clearAll} disabled={!hasMessages}>
              Clear conversation
            </button>
            <button type="button" className="btn small" onClick={exportConversation} disabled={!hasMessages}>
              Export conversation
            </button>
          </div>
          <div className={`pg-columns${compare ? " two" : ""}`}>
            <ConversationLog
              conv={convA}
              name={compare ? "Conversation A" : "Conversation"}
              heading={compare ? `A · ${labelA || "no model yet"}` : null}
              label={labelA}
              canAnswer={!streaming && shaping.ok}
              onToolResult={(id, text) => void sendToolResult("a", id, text)}
            />
            {compare && (
              <ConversationLog
                conv={convB}
                name="Conversation B"
                heading={`B · ${labelB || "no model yet"}`}
                label={labelB}
                canAnswer={!streaming && shaping.ok}
                onToolResult={(id, text) => void sendToolResult("b", id, text)}
              />
            )}
          </div>
          <form
            className="pg-composer"
            onSubmit={(e) => {
              e.preventDefault();
              void send();
            }}
          >
            <label htmlFor={ids.message} className="sr-only">
              Message
            </label>
            <textarea
              id={ids.message}
              ref={textareaRef}
              className="textarea pg-input"
              rows={1}
              value={input}
              placeholder="Send a message…"
              aria-describedby={ids.help}
              onChange={(e) => setInput(e.target.value)}
              onKeyDown={onKeyDown}
            />
            <div className="pg-composer-actions">
              {streaming && (
                <button type="button" className="btn" onClick={stopStreams}>
                  Stop
                </button>
              )}
              <button
                type="submit"
                className="btn primary"
                disabled={streaming || !input.trim() || !canSend}
                title={!shaping.ok ? shaping.error : !canSend ? "Choose a model first" : undefined}
              >
                Send<span className="sr-only"> message</span>
              </button>
            </div>
            <p id={ids.help} className="pg-help">
              Enter to send, Shift+Enter for a new line
            </p>
            {!shaping.ok && (
              <p className="pg-help pg-hint-error" role="alert">
                Cannot send: {shaping.error}
              </p>
            )}
          </form>
        </section>
      </div>
    </div>
  );
}

function NumberSetting({
  id,
  label,
  k,
  value,
  onChange,
}: {
  id: string;
  label: string;
  k: keyof typeof SETTING_LIMITS;
  value: string;
  onChange: (v: string) => void;
}) {
  const { min, max, step } = SETTING_LIMITS[k];
  const hintId = `${id}-hint`;
  return (
    <div className="pg-field">
      <label htmlFor={id}>{label}</label>
      <input
        id={id}
        className="input"
        type="number"
        inputMode="decimal"
        min={min}
        max={max}
        step={step}
        value={value}
        aria-describedby={hintId}
        onChange={(e) => onChange(e.target.value)}
        onBlur={() => onChange(String(clampSetting(k, value)))}
      />
      <span id={hintId} className="pg-hint">
        {min}–{max}, default {DEFAULT_SETTINGS[k]}
      </span>
    </div>
  );
}

function SourcePicker({
  suffix,
  pick,
  onChange,
  jobs,
  models,
  steps,
  onStepsFocus,
  onJobsFocus,
  showTitle,
}: {
  suffix: "" | " B";
  pick: Pick;
  onChange: (p: Pick) => void;
  jobs: JobsState;
  models: ModelsState;
  steps: Record<string, StepsEntry>;
  onStepsFocus: (jobId: string) => void;
  onJobsFocus: () => void;
  showTitle: boolean;
}) {
  const uid = useId();
  const buttons = useRef<(HTMLButtonElement | null)[]>([]);

  const disabledReason = (m: SourceMode): string | null => {
    if (m === "base") return null;
    if (jobs.error) return "Failed to load jobs";
    if (jobs.loading) return null;
    if (m === "final" && jobs.completed.length === 0) return "No completed jobs yet";
    if (m === "checkpoint" && jobs.ckptJobs.length === 0) return "No running or completed jobs yet";
    return null;
  };

  const choose = (m: SourceMode) => {
    if (disabledReason(m) || m === pick.mode) return;
    onChange({ ...pick, mode: m });
  };

  const onRadioKey = (e: React.KeyboardEvent, i: number) => {
    const delta = e.key === "ArrowRight" || e.key === "ArrowDown" ? 1 : e.key === "ArrowLeft" || e.key === "ArrowUp" ? -1 : 0;
    const edge = e.key === "Home" ? 0 : e.key === "End" ? MODES.length - 1 : -1;
    if (!delta && edge < 0) return;
    e.preventDefault();
    const order = delta
      ? Array.from({ length: MODES.length - 1 }, (_, k) => (i + delta * (k + 1) + MODES.length * 2) % MODES.length)
      : edge === 0
        ? MODES.map((_, k) => k)
        : MODES.map((_, k) => MODES.length - 1 - k);
    const target = order.find((k) => !disabledReason(MODES[k].value));
    if (target === undefined) return;
    choose(MODES[target].value);
    buttons.current[target]?.focus();
  };

  const ckptEntry = pick.ckptJob ? steps[pick.ckptJob] : undefined;
  const stepOptions = [...(ckptEntry?.steps ?? [])];
  if (pick.ckptStep !== null && !stepOptions.includes(pick.ckptStep)) {
    stepOptions.push(pick.ckptStep);
    stepOptions.sort((a, b) => a - b);
  }

  const baseIds = models.base.map((m) => m.id);
  const id = (name: string) => `${uid}-${name}`;

  return (
    <div className="pg-picker">
      {showTitle && <h3 className="pg-picker-title">{suffix ? "Model B" : "Model A"}</h3>}
      <div role="radiogroup" aria-label={`Model source${suffix}`} className="pg-modes">
        {MODES.map((m, i) => {
          const reason = disabledReason(m.value);
          const checked = pick.mode === m.value;
          return (
            <button
              key={m.value}
              ref={(el) => {
                buttons.current[i] = el;
              }}
              type="button"
              role="radio"
              aria-checked={checked}
              aria-disabled={reason ? true : undefined}
              title={reason ?? undefined}
              tabIndex={checked ? 0 : -1}
              onClick={() => choose(m.value)}
              onKeyDown={(e) => onRadioKey(e, i)}
            >
              {m.label}
            </button>
          );
        })}
      </div>

      {pick.mode === "base" && (
        <div className="pg-field">
          <label htmlFor={id("base")}>Base model{suffix}</label>
          {models.loading ? (
            <select id={id("base")} className="select" disabled>
              <option>Loading models…</option>
            </select>
          ) : baseIds.length > 0 ? (
            <select
              id={id("base")}
              className="select"
              value={baseChoice(pick, baseIds)}
              onChange={(e) => onChange(chooseBase(pick, e.target.value, baseIds))}
            >
              {models.base.map((m) => (
                <option key={m.id} value={m.id}>
                  {m.id}
                  {m.available_offline === false ? " (not downloaded)" : ""}
                </option>
              ))}
              <option value={OTHER_BASE}>Other…</option>
            </select>
          ) : (
            <ModelRefInput id={id("base")} label={null} value={pick.base} onChange={(base) => onChange({ ...pick, base })} />
          )}
        </div>
      )}
      {pick.mode === "base" && !models.loading && baseIds.length > 0 && baseChoice(pick, baseIds) === OTHER_BASE && (
        <div className="pg-field">
          <ModelRefInput
            id={id("other")}
            label={`Model reference${suffix}`}
            value={pick.base}
            onChange={(base) => onChange({ ...pick, base, customBase: true })}
          />
        </div>
      )}

      {pick.mode === "final" &&
        (jobs.loading ? (
          <p className="pg-empty">Loading jobs…</p>
        ) : jobs.completed.length === 0 ? (
          <p className="pg-empty">No completed jobs yet</p>
        ) : (
          <div className="pg-field">
            <label htmlFor={id("adapter")}>Adapter{suffix}</label>
            <select
              id={id("adapter")}
              className="select"
              value={pick.adapterJob}
              onFocus={onJobsFocus}
              onChange={(e) => onChange({ ...pick, adapterJob: e.target.value })}
            >
              {jobs.completed.map((j) => (
                <option key={j.id} value={j.id}>
                  {jobOptionLabel(j)}
                </option>
              ))}
            </select>
          </div>
        ))}

      {pick.mode === "checkpoint" &&
        (jobs.loading ? (
          <p className="pg-empty">Loading jobs…</p>
        ) : jobs.ckptJobs.length === 0 ? (
          <p className="pg-empty">No running or completed jobs yet</p>
        ) : (
          <div className="pg-ckpt">
            <div className="pg-field">
              <label htmlFor={id("job")}>Job{suffix}</label>
              <select
                id={id("job")}
                className="select"
                value={pick.ckptJob}
                onFocus={onJobsFocus}
                onChange={(e) => {
                  const jobId = e.target.value;
                  const known = steps[jobId];
                  onChange({ ...pick, ckptJob: jobId, ckptStep: known?.loaded ? settleStep(null, known.steps) : null });
                }}
              >
                {jobs.ckptJobs.map((j) => (
                  <option key={j.id} value={j.id}>
                    {jobOptionLabel(j)}
                    {j.status === "running" ? " · running" : ""}
                  </option>
                ))}
              </select>
            </div>
            <div className="pg-field">
              <label htmlFor={id("step")}>Checkpoint{suffix}</label>
              {stepOptions.length > 0 ? (
                <select
                  id={id("step")}
                  className="select"
                  value={pick.ckptStep === null ? "" : String(pick.ckptStep)}
                  onFocus={() => onStepsFocus(pick.ckptJob)}
                  onChange={(e) => onChange({ ...pick, ckptStep: Number(e.target.value) })}
                >
                  {pick.ckptStep === null && <option value="">Choose a step</option>}
                  {stepOptions.map((s) => (
                    <option key={s} value={String(s)}>
                      Step {s}
                    </option>
                  ))}
                </select>
              ) : (
                <select id={id("step")} className="select" disabled onFocus={() => onStepsFocus(pick.ckptJob)}>
                  <option>{!ckptEntry?.loaded ? "Loading checkpoints…" : "No checkpoints yet"}</option>
                </select>
              )}
              {ckptEntry?.error && <span className="pg-hint pg-hint-error">Failed to load checkpoints: {ckptEntry.error}</span>}
              {ckptEntry?.loaded && !ckptEntry.error && ckptEntry.steps.length === 0 && (
                <span className="pg-hint">
                  {jobs.ckptJobs.find((j) => j.id === pick.ckptJob)?.status === "running"
                    ? "No checkpoint saved yet; this list refreshes every 5 seconds."
                    : "This job saved no checkpoints."}
                </span>
              )}
            </div>
          </div>
        ))}
    </div>
  );
}

/** A typed base model: a .gguf file, a model directory, `ollama:NAME[:TAG]` or a Hub id. */
function ModelRefInput({
  id,
  label,
  value,
  onChange,
}: {
  id: string;
  label: string | null;
  value: string;
  onChange: (v: string) => void;
}) {
  const hint = describeModelRef(value);
  return (
    <>
      {label && <label htmlFor={id}>{label}</label>}
      <input
        id={id}
        className="input mono"
        value={value}
        spellCheck={false}
        autoComplete="off"
        placeholder="/models/model.gguf or ollama:llama3.2:1b"
        aria-describedby={`${id}-hint`}
        onChange={(e) => onChange(e.target.value)}
      />
      <span id={`${id}-hint`} className={`pg-hint${hint.warn ? " pg-hint-error" : ""}`}>
        {hint.text}
      </span>
    </>
  );
}

function ConversationLog({
  conv,
  name,
  heading,
  label,
  canAnswer,
  onToolResult,
}: {
  conv: Conversation;
  name: string;
  heading: string | null;
  label: string;
  /** Tool results can be sent now (nothing is streaming, the settings are valid). */
  canAnswer: boolean;
  onToolResult: (callId: string, result: string) => void;
}) {
  const pending = new Set(pendingToolCalls(conv).map((c) => c.id));
  const ref = useRef<HTMLDivElement>(null);
  const stick = useRef(true);
  const count = useRef(0);

  const onScroll = () => {
    const el = ref.current;
    if (!el) return;
    stick.current = el.scrollHeight - el.scrollTop - el.clientHeight < 24;
  };

  useLayoutEffect(() => {
    const el = ref.current;
    if (!el) return;
    // A new turn always scrolls into view; streamed text only while the user stays at the bottom.
    if (conv.bubbles.length > count.current) stick.current = true;
    count.current = conv.bubbles.length;
    if (stick.current) el.scrollTop = el.scrollHeight;
  }, [conv]);

  return (
    <div className="pg-column">
      {heading && <h3 className="pg-column-title">{heading}</h3>}
      <div ref={ref} className="pg-log" role="log" aria-label={name} onScroll={onScroll}>
        {conv.bubbles.length === 0 ? (
          <div className="empty pg-ready">
            <strong>Ready when you are</strong>
            {label ? `Send a message to chat with ${label}.` : "Choose a model, then send a message."}
          </div>
        ) : (
          conv.bubbles.map((b) => (
            <div
              key={b.id}
              className={`pg-bubble ${b.role}${b.error ? " error" : ""}`}
              data-role={b.role}
              data-error={b.error ? "true" : undefined}
              data-stopped={b.stopped ? "true" : undefined}
              data-finish={b.finish}
              aria-busy={b.role === "assistant" ? (b.streaming ? "true" : "false") : undefined}
            >
              {b.role === "tool" && <span className="pg-tool-label">Result of {b.toolName}</span>}
              {(b.content || !b.toolCalls?.length) && <span className="pg-text">{b.content}</span>}
              {b.toolCalls?.map((call) => (
                <ToolCallCard
                  key={call.id}
                  call={call}
                  waiting={pending.has(call.id)}
                  canAnswer={canAnswer}
                  onResult={(text) => onToolResult(call.id, text)}
                />
              ))}
              {b.streaming && <span className="pg-caret" aria-hidden="true" />}
            </div>
          ))
        )}
      </div>
    </div>
  );
}

/** A tool call the model made: the function and its arguments, and a box for its result. */
function ToolCallCard({
  call,
  waiting,
  canAnswer,
  onResult,
}: {
  call: ToolCall;
  waiting: boolean;
  canAnswer: boolean;
  onResult: (text: string) => void;
}) {
  const [result, setResult] = useState("");
  const id = useId();
  const name = call.function.name;
  return (
    <div className="pg-toolcall" role="group" aria-label={`Tool call ${name}`} data-tool-call={name}>
      <div className="pg-toolcall-head">
        <span className="pg-toolcall-kind">Tool call</span>
        <code>{name}</code>
      </div>
      <pre className="pg-toolcall-args" aria-label={`Arguments of ${name}`}>
        {prettyArguments(call.function.arguments)}
      </pre>
      {waiting && (
        <form
          className="pg-toolcall-result"
          onSubmit={(e) => {
            e.preventDefault();
            if (canAnswer) onResult(result);
          }}
        >
          <label htmlFor={id}>Result of {name}</label>
          <textarea
            id={id}
            className="textarea mono"
            rows={2}
            value={result}
            placeholder='{"temperature": 21}'
            onChange={(e) => setResult(e.target.value)}
          />
          <button type="submit" className="btn small primary" disabled={!canAnswer}>
            Send result
          </button>
        </form>
      )}
    </div>
  );
}

/** Response format: text, JSON object, a JSON schema (edited here), a regex, a choice list or a grammar. */
function ResponseFormatCard({
  output,
  fallback,
  check,
  fileError,
  onChange,
}: {
  output: OutputSettings;
  /** The page's default (the project's reply schema, else text). */
  fallback: OutputSettings;
  check: Checked<unknown>;
  /** The project's reply schema file is broken: what is wrong. */
  fileError: string | null;
  onChange: (o: OutputSettings) => void;
}) {
  const uid = useId();
  const id = (n: string) => `${uid}-${n}`;
  const fromProject = fallback.kind === "json_schema";
  const hint: Record<OutputKind, string> = {
    text: "Free text, as the model writes it.",
    json_object: "Any JSON object.",
    json_schema:
      fromProject && output.schema === fallback.schema
        ? "The project's reply schema (data/reply.schema.json): every reply validates."
        : "Every reply validates against this schema.",
    regex: "The whole reply matches (Rust regex syntax).",
    choice: "The reply is exactly one of these lines.",
    grammar: "A Lark grammar (llguidance's dialect; start rule `start`).",
  };
  return (
    <section className="card pg-settings" aria-labelledby={id("title")}>
      <details open>
        <summary className="card-head">
          <h2 id={id("title")}>Response format</h2>
        </summary>
        <div className="card-body pg-shape-body">
          <div className="pg-field">
            <label htmlFor={id("kind")}>Format</label>
            <select
              id={id("kind")}
              className="select"
              value={output.kind}
              onChange={(e) => {
                const kind = e.target.value as OutputKind;
                const schema = kind === "json_schema" && !output.schema.trim() ? fallback.schema : output.schema;
                onChange({ ...output, kind, schema });
              }}
            >
              {OUTPUT_KINDS.map((k) => (
                <option key={k.value} value={k.value}>
                  {k.label}
                </option>
              ))}
            </select>
          </div>
          {output.kind === "json_schema" && (
            <>
              <div className="pg-field">
                <label htmlFor={id("schema")}>JSON schema</label>
                <textarea
                  id={id("schema")}
                  className="textarea mono pg-code"
                  rows={10}
                  spellCheck={false}
                  value={output.schema}
                  placeholder='{"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"], "additionalProperties": false}'
                  onChange={(e) => onChange({ ...output, schema: e.target.value })}
                />
              </div>
              <label className="pg-check">
                <input type="checkbox" checked={output.strict} onChange={(e) => onChange({ ...output, strict: e.target.checked })} />
                Strict (every object closes additionalProperties)
              </label>
              {fromProject && output.schema !== fallback.schema && (
                <button type="button" className="btn small" onClick={() => onChange({ ...output, schema: fallback.schema })}>
                  Use the project's schema
                </button>
              )}
            </>
          )}
          {output.kind === "regex" && (
            <div className="pg-field">
              <label htmlFor={id("regex")}>Regex</label>
              <input
                id={id("regex")}
                className="input mono"
                spellCheck={false}
                value={output.regex}
                placeholder="\d{3}-\d{4}"
                onChange={(e) => onChange({ ...output, regex: e.target.value })}
              />
            </div>
          )}
          {output.kind === "choice" && (
            <div className="pg-field">
              <label htmlFor={id("choices")}>Choices</label>
              <textarea
                id={id("choices")}
                className="textarea pg-code"
                rows={4}
                value={output.choices}
                placeholder={"yes\nno"}
                onChange={(e) => onChange({ ...output, choices: e.target.value })}
              />
            </div>
          )}
          {output.kind === "grammar" && (
            <div className="pg-field">
              <label htmlFor={id("grammar")}>Grammar</label>
              <textarea
                id={id("grammar")}
                className="textarea mono pg-code"
                rows={8}
                spellCheck={false}
                value={output.grammar}
                placeholder={'start: "yes" | "no"'}
                onChange={(e) => onChange({ ...output, grammar: e.target.value })}
              />
            </div>
          )}
          {check.ok ? (
            <span className="pg-hint">{hint[output.kind]}</span>
          ) : (
            <span className="pg-hint pg-hint-error">{check.error}</span>
          )}
          {fileError && <span className="pg-hint pg-hint-error">Project reply schema not used: {fileError}</span>}
        </div>
      </details>
    </section>
  );
}

/** Functions the model may call (JSON-schema arguments), and whether it must. */
function ToolsCard({
  tools,
  check,
  onChange,
}: {
  tools: ToolSettings;
  check: Checked<unknown>;
  onChange: (t: ToolSettings) => void;
}) {
  const uid = useId();
  const id = (n: string) => `${uid}-${n}`;
  const edit = (i: number, patch: Partial<ToolSpec>) =>
    onChange({ ...tools, tools: tools.tools.map((t, k) => (k === i ? { ...t, ...patch } : t)) });
  return (
    <section className="card pg-settings" aria-labelledby={id("title")}>
      <details open>
        <summary className="card-head">
          <h2 id={id("title")}>Tools</h2>
          {tools.tools.length > 0 && <span className="badge">{tools.tools.length}</span>}
        </summary>
        <div className="card-body pg-shape-body">
          {tools.tools.length === 0 && <span className="pg-hint">No functions: the model answers in text.</span>}
          {tools.tools.map((t, i) => (
            <fieldset key={i} className="pg-tool">
              <legend>Function {i + 1}</legend>
              <div className="pg-field">
                <label htmlFor={id(`name${i}`)}>Name</label>
                <input
                  id={id(`name${i}`)}
                  className="input mono"
                  aria-label={`Function ${i + 1} name`}
                  spellCheck={false}
                  value={t.name}
                  onChange={(e) => edit(i, { name: e.target.value })}
                />
              </div>
              <div className="pg-field">
                <label htmlFor={id(`desc${i}`)}>Description</label>
                <input
                  id={id(`desc${i}`)}
                  className="input"
                  aria-label={`Function ${i + 1} description`}
                  value={t.description}
                  onChange={(e) => edit(i, { description: e.target.value })}
                />
              </div>
              <div className="pg-field">
                <label htmlFor={id(`params${i}`)}>Parameters (JSON schema)</label>
                <textarea
                  id={id(`params${i}`)}
                  className="textarea mono pg-code"
                  aria-label={`Function ${i + 1} parameters`}
                  rows={6}
                  spellCheck={false}
                  value={t.parameters}
                  onChange={(e) => edit(i, { parameters: e.target.value })}
                />
              </div>
              <button
                type="button"
                className="btn small danger"
                aria-label={`Remove function ${i + 1}`}
                onClick={() => onChange({ ...tools, tools: tools.tools.filter((_, k) => k !== i) })}
              >
                Remove
              </button>
            </fieldset>
          ))}
          <button type="button" className="btn small" onClick={() => onChange({ ...tools, tools: [...tools.tools, newTool(tools.tools)] })}>
            Add function
          </button>
          {tools.tools.length > 0 && (
            <div className="pg-field">
              <label htmlFor={id("choice")}>Tool choice</label>
              <select id={id("choice")} className="select" value={tools.choice} onChange={(e) => onChange({ ...tools, choice: e.target.value })}>
                <option value="auto">auto: the model decides</option>
                <option value="required">required: always call one</option>
                <option value="none">none: never call</option>
                {tools.tools
                  .map((t) => t.name.trim())
                  .filter((n, k, all) => n && all.indexOf(n) === k)
                  .map((n) => (
                    <option key={n} value={`function:${n}`}>
                      always call {n}
                    </option>
                  ))}
              </select>
            </div>
          )}
          {!check.ok && <span className="pg-hint pg-hint-error">{check.error}</span>}
        </div>
      </details>
    </section>
  );
}
