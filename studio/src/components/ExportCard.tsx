import { useEffect, useId, useMemo, useRef, useState } from "react";
import { StatusBadge } from "./common";
import { CheckIcon, CopyIcon } from "./icons";
import { type ArtifactSet, downloadArtifact, type ExportInfo, fetchExports, startExport } from "../lib/api";
import {
  anyExportRunning,
  DEFAULT_QUANT,
  EXPORT_FORMATS,
  EXPORT_QUANTS,
  type ExportForm,
  type ExportFormat,
  type ExportQuant,
  type ExportSource,
  exportFileName,
  exportRequest,
  exportSources,
  exportStatusText,
  exportSummary,
  ollamaFolder,
  quantOptions,
  sourceLabel,
  withExport,
} from "../lib/exports";
import { errorMessage, formatBytes, formatDateTime } from "../lib/format";
import { useNow } from "../lib/hooks";

const POLL_MS = 2000;

/** The job page's Export card: the form, then the job's exports (polled while one runs). */
export function ExportCard({ jobId, status, artifacts }: { jobId: string; status: string; artifacts: ArtifactSet[] | undefined }) {
  const ids = useId();
  const sources = useMemo(() => exportSources(artifacts, status), [artifacts, status]);
  const [format, setFormat] = useState<ExportFormat>("gguf");
  const [quant, setQuant] = useState<ExportQuant>(DEFAULT_QUANT);
  const [picked, setPicked] = useState<ExportSource | null>(null);
  const [systemPrompt, setSystemPrompt] = useState("");
  const source: ExportSource | undefined = picked !== null && sources.includes(picked) ? picked : sources[0];
  const quants = quantOptions(format);

  // ---- the list: loaded on mount and after each start, then every 2 s while one runs
  const [exports, setExports] = useState<ExportInfo[] | undefined>(undefined);
  const [listError, setListError] = useState<string | null>(null);
  const [nonce, setNonce] = useState(0);
  const running = useRef(false);
  running.current = anyExportRunning(exports);
  useEffect(() => {
    const controller = new AbortController();
    let timer: ReturnType<typeof setTimeout> | null = null;
    const load = async () => {
      timer = null;
      try {
        const list = await fetchExports(jobId, controller.signal);
        if (controller.signal.aborted) return;
        setExports(list);
        setListError(null);
        if (anyExportRunning(list)) timer = setTimeout(() => void load(), POLL_MS);
      } catch (e) {
        if (controller.signal.aborted) return;
        setListError(errorMessage(e));
        if (running.current) timer = setTimeout(() => void load(), POLL_MS);
      }
    };
    void load();
    return () => {
      controller.abort();
      if (timer !== null) clearTimeout(timer);
    };
  }, [jobId, nonce]);

  // ---- start
  const [starting, setStarting] = useState(false);
  const [startError, setStartError] = useState<string | null>(null);
  const onExport = async (e: React.FormEvent) => {
    e.preventDefault();
    if (starting || source === undefined) return;
    setStarting(true);
    setStartError(null);
    const form: ExportForm = { format, quant, source, systemPrompt };
    try {
      const info = await startExport(jobId, exportRequest(form));
      setExports((list) => withExport(list, info));
      setNonce((n) => n + 1);
    } catch (err) {
      setStartError(errorMessage(err));
    } finally {
      setStarting(false);
    }
  };

  return (
    <section className="card" aria-labelledby={`${ids}-title`}>
      <div className="card-head">
        <h2 id={`${ids}-title`}>Export</h2>
      </div>
      <div className="card-body">
        <form className="jd-ex-form" onSubmit={(e) => void onExport(e)} aria-label="Export the adapter">
          <fieldset className="jd-ex-formats">
            <legend>Format</legend>
            {EXPORT_FORMATS.map((f) => (
              <label key={f.value} className="jd-ex-format">
                <input
                  type="radio"
                  name={`${ids}-format`}
                  value={f.value}
                  checked={format === f.value}
                  onChange={() => setFormat(f.value)}
                  aria-labelledby={`${ids}-fmt-${f.value}-name`}
                  aria-describedby={`${ids}-fmt-${f.value}`}
                />
                <span className="jd-ex-format-name" id={`${ids}-fmt-${f.value}-name`}>
                  {f.label}
                </span>
                <span className="jd-ex-format-desc" id={`${ids}-fmt-${f.value}`}>
                  {f.description}
                </span>
              </label>
            ))}
          </fieldset>
          <div className="jd-ex-row">
            {quants.length > 0 && (
              <div className="jd-ex-field">
                <label htmlFor={`${ids}-quant`}>Quantization</label>
                <select id={`${ids}-quant`} className="select" value={quant} onChange={(e) => setQuant(e.target.value as ExportQuant)}>
                  {EXPORT_QUANTS.filter((q) => quants.includes(q.value)).map((q) => (
                    <option key={q.value} value={q.value}>
                      {q.label}
                    </option>
                  ))}
                </select>
              </div>
            )}
            {sources.length > 1 && (
              <div className="jd-ex-field">
                <label htmlFor={`${ids}-source`}>Source</label>
                <select
                  id={`${ids}-source`}
                  className="select"
                  value={String(source)}
                  onChange={(e) => setPicked(e.target.value === "final" ? "final" : Number(e.target.value))}
                >
                  {sources.map((s) => (
                    <option key={String(s)} value={String(s)}>
                      {sourceLabel(s)}
                    </option>
                  ))}
                </select>
              </div>
            )}
          </div>
          {format === "ollama" && (
            <div className="jd-ex-field">
              <label htmlFor={`${ids}-system`}>System prompt (optional)</label>
              <textarea
                id={`${ids}-system`}
                className="textarea"
                rows={2}
                value={systemPrompt}
                placeholder="You are a helpful assistant."
                onChange={(e) => setSystemPrompt(e.target.value)}
              />
            </div>
          )}
          <div className="jd-ex-row">
            <button type="submit" className="btn primary" disabled={starting || source === undefined} aria-busy={starting || undefined}>
              {starting ? "Starting…" : "Export"}
            </button>
            {sources.length === 1 && source !== undefined && <span className="muted jd-small">{sourceLabel(source)}</span>}
          </div>
          {startError && (
            <p className="notice error jd-ex-notice" role="alert">
              Could not start the export: {startError}
            </p>
          )}
        </form>

        {listError && (
          <p className="notice warn jd-ex-notice" role="status">
            Could not load exports: {listError}
          </p>
        )}
        {exports && exports.length > 0 && (
          <ul className="jd-ex-list" aria-label="Exports">
            {exports.map((e) => (
              <ExportItem key={e.id} jobId={jobId} info={e} />
            ))}
          </ul>
        )}
        {exports && exports.length === 0 && <p className="jd-empty">No exports yet</p>}
      </div>
    </section>
  );
}

function ExportItem({ jobId, info }: { jobId: string; info: ExportInfo }) {
  const [busy, setBusy] = useState<string | null>(null);
  const [downloadError, setDownloadError] = useState<string | null>(null);
  const download = async (pathname: string) => {
    setBusy(pathname);
    setDownloadError(null);
    try {
      await downloadArtifact(jobId, pathname);
    } catch (e) {
      setDownloadError(`Download of ${exportFileName(pathname)} failed: ${errorMessage(e)}`);
    } finally {
      setBusy(null);
    }
  };
  const summary = exportSummary(info);
  const folder = info.ollamaCreate ? ollamaFolder(info.files) : null;
  return (
    <li className="jd-ex-item" data-export-id={info.id} data-status={info.status}>
      <div className="jd-ex-head">
        <StatusBadge status={info.status} />
        <span className="jd-ex-summary">{summary}</span>
        <span className="spacer" />
        <time className="muted jd-small" dateTime={info.createdAt}>
          {formatDateTime(info.createdAt)}
        </time>
      </div>
      {info.status === "running" ? (
        <RunningText info={info} />
      ) : info.status === "failed" ? (
        <p className="jd-ex-error">{info.error || "The export failed"}</p>
      ) : (
        <p className="muted jd-small jd-ex-status">{exportStatusText(info, Date.now())}</p>
      )}
      {downloadError && (
        <p className="notice error jd-ex-notice" role="alert">
          {downloadError}
        </p>
      )}
      {info.files.length > 0 && (
        <div className="table-wrap">
          <table className="table jd-files">
            <thead>
              <tr>
                <th scope="col">File</th>
                <th scope="col">Size</th>
                <th scope="col">
                  <span className="sr-only">Download</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {info.files.map((f) => {
                const name = exportFileName(f.pathname);
                return (
                  <tr key={f.pathname}>
                    <td className="mono jd-path" title={f.sha256 ? `sha256 ${f.sha256}` : undefined}>
                      {name}
                    </td>
                    <td className="jd-size">{formatBytes(f.size)}</td>
                    <td className="jd-dl">
                      <button
                        type="button"
                        className="btn small"
                        aria-label={`Download ${name}`}
                        disabled={busy === f.pathname}
                        onClick={() => void download(f.pathname)}
                      >
                        {busy === f.pathname ? "Downloading…" : "Download"}
                      </button>
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      )}
      {info.ollamaCreate && <OllamaCommand command={info.ollamaCreate} folder={folder} />}
    </li>
  );
}

function RunningText({ info }: { info: ExportInfo }) {
  const now = useNow(1000);
  return (
    <p className="muted jd-small jd-ex-status" role="status">
      <span className="jd-ex-spinner" aria-hidden="true" />
      {exportStatusText(info, now)}
    </p>
  );
}

function OllamaCommand({ command, folder }: { command: string; folder: string | null }) {
  const [copied, setCopied] = useState(false);
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(command);
      setCopied(true);
      setTimeout(() => setCopied(false), 1200);
    } catch {
      // Clipboard unavailable (insecure context): the command can be selected by hand.
    }
  };
  return (
    <div className="jd-ex-ollama">
      <p className="muted jd-small">
        {folder ? (
          <>
            Put the downloaded files in a folder named <code>{folder}</code>, then run next to it:
          </>
        ) : (
          "Then run:"
        )}
      </p>
      <div className="jd-ex-cmd">
        <code className="mono">{command}</code>
        <button type="button" className="copy" onClick={() => void copy()} aria-label="Copy the ollama create command">
          {copied ? <CheckIcon /> : <CopyIcon />}
        </button>
      </div>
    </div>
  );
}
