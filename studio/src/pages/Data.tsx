// The Data tab: the project's dataset (or any file) as training will see it, computed by
// the backend from the same code that prepares training rows. Summary, length histogram,
// the rows to look at (truncated, untrained, malformed), a paged list of rows, and one row
// rendered through the chat template with every token coloured by the loss mask.

import { useEffect, useMemo, useState } from "react";
import { Skeleton } from "../components/common";
import { fetchManifest, type JobConfig, type Manifest } from "../lib/api";
import {
  type DataInspection,
  type DataSelection,
  dataHref,
  displayToken,
  histogramBars,
  inspectData,
  maxLengthX,
  pageCount,
  parseDataParams,
  type RenderedRow,
  requestFor,
  type RowRef,
  ROWS_PER_PAGE,
  trainedShare,
} from "../lib/data";
import { errorMessage } from "../lib/format";
import { replaceHash } from "../lib/route";
import "./data.css";

type Trainer = NonNullable<Manifest["trainers"]>[number];

/** How often a dataset still being tokenised is asked for again (ms). */
const POLL_MS = 500;

export function Data({ params }: { params: URLSearchParams }) {
  const selection = parseDataParams(params);
  const go = (s: DataSelection) => replaceHash(dataHref(s));
  const [manifest, setManifest] = useState<{ trainers: Trainer[]; error?: string } | null>(null);
  useEffect(() => {
    const c = new AbortController();
    fetchManifest(c.signal).then(
      (m) => setManifest("error" in m ? { trainers: [], error: m.error } : { trainers: m.trainers ?? [] }),
      (e: unknown) => !c.signal.aborted && setManifest({ trainers: [], error: errorMessage(e) }),
    );
    return () => c.abort();
  }, []);

  const trainers = manifest?.trainers ?? [];
  const trainer =
    (selection.kind === "trainer" && selection.trainer ? trainers.find((t) => t.name === selection.trainer) : undefined) ??
    trainers[0];
  const trainerConfig: JobConfig | null = trainer?.config ?? null;
  const request = useMemo(() => requestFor(selection, trainerConfig), [dataHref(selection), trainerConfig]);
  const requestKey = request ? JSON.stringify(request) : null;

  const [state, setState] = useState<{ key: string | null; data?: DataInspection; error?: string; loading: boolean }>({
    key: null,
    loading: false,
  });
  // While the backend is still tokenising, ask again: the report grows until nothing is pending.
  const [tick, setTick] = useState(0);
  useEffect(() => {
    if (!request || !requestKey) return;
    const c = new AbortController();
    let timer: ReturnType<typeof setTimeout> | undefined;
    setState((s) => ({ ...s, key: requestKey, loading: true, error: undefined }));
    inspectData(request, c.signal).then(
      (data) => {
        if (c.signal.aborted) return;
        setState({ key: requestKey, data, loading: false });
        if (data.report.pending > 0) timer = setTimeout(() => setTick((t) => t + 1), POLL_MS);
      },
      (e: unknown) => {
        if (!c.signal.aborted) setState((s) => ({ key: requestKey, data: s.data, error: errorMessage(e), loading: false }));
      },
    );
    return () => {
      c.abort();
      if (timer) clearTimeout(timer);
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [requestKey, tick]);

  const data = state.data;

  return (
    <>
      <div className="page-title">
        <h1>Data</h1>
        <p className="subtitle">The dataset as training sees it: lengths, truncation, and which tokens are trained.</p>
      </div>
      <SourcePicker selection={selection} trainers={trainers} trainer={trainer} manifestError={manifest?.error} onChange={go} />
      {manifest === null && <Skeleton rows={3} />}
      {manifest && !request && selection.kind === "trainer" && !manifest.error && (
        <div className="card empty">
          <strong>No trainer</strong>The project has no trainer to inspect; pick a file above.
        </div>
      )}
      {state.error && (
        <p className="notice error" role="alert">
          Failed to inspect the dataset: {state.error}
        </p>
      )}
      {state.loading && !data && (
        <div className="card" aria-busy="true">
          <div className="card-body muted">Reading and tokenising the dataset…</div>
        </div>
      )}
      {data && (
        <div className={state.loading && data.report.pending === 0 ? "dt-stale" : undefined} aria-busy={state.loading}>
          <Summary data={data} />
          <div className="grid-2 dt-grid">
            <Histogram data={data} />
            <Problems data={data} onRow={(i) => go({ ...selection, row: i, page: Math.floor(i / ROWS_PER_PAGE) + 1 })} />
          </div>
          {data.rowPending && selection.row !== null && (
            <p className="notice hint" role="status">
              Row {selection.row} is not tokenised yet; it shows when it is.
            </p>
          )}
          {data.rowError && (
            <p className="notice error" role="alert">
              {data.rowError}
            </p>
          )}
          {data.row && (
            <RowViewer
              row={data.row}
              rows={data.report.rows}
              onRow={(i) => go({ ...selection, row: i, page: Math.floor(i / ROWS_PER_PAGE) + 1 })}
              onClose={() => go({ ...selection, row: null })}
            />
          )}
          <RowList data={data} selection={selection} onChange={go} />
        </div>
      )}
    </>
  );
}

function SourcePicker({
  selection,
  trainers,
  trainer,
  manifestError,
  onChange,
}: {
  selection: DataSelection;
  trainers: Trainer[];
  trainer: Trainer | undefined;
  manifestError?: string;
  onChange: (s: DataSelection) => void;
}) {
  const [path, setPath] = useState(selection.kind === "file" ? selection.path : "");
  const [model, setModel] = useState(selection.kind === "file" ? selection.model : "");
  // "Another file…" shows the form; the URL changes when it is submitted.
  const [fileMode, setFileMode] = useState(selection.kind === "file");
  useEffect(() => setFileMode(selection.kind === "file"), [selection.kind]);
  const value = fileMode ? "__file__" : (trainer?.name ?? "");
  return (
    <section className="card" aria-label="Dataset source">
      <div className="card-body dt-source">
        <label className="dt-field">
          <span>Dataset</span>
          <select
            className="select"
            aria-label="Dataset"
            value={value}
            onChange={(e) => {
              const v = e.target.value;
              setFileMode(v === "__file__");
              if (v !== "__file__") onChange({ kind: "trainer", trainer: v, page: 1, row: null });
            }}
          >
            {trainers.map((t) => (
              <option key={t.name} value={t.name}>
                Trainer {t.name}
                {typeof t.dataset === "string" ? ` (${t.dataset})` : ""}
              </option>
            ))}
            <option value="__file__">Another file…</option>
          </select>
        </label>
        {fileMode ? (
          <form
            className="row dt-file"
            onSubmit={(e) => {
              e.preventDefault();
              onChange({ kind: "file", path: path.trim(), model: model.trim(), page: 1, row: null });
            }}
          >
            <label className="dt-field">
              <span>File (JSONL, JSON or Parquet; relative to the project)</span>
              <input
                className="input mono"
                aria-label="File"
                value={path}
                onChange={(e) => setPath(e.target.value)}
                placeholder="data/train.jsonl"
              />
            </label>
            <label className="dt-field">
              <span>Model (tokenizer and chat template)</span>
              <input
                className="input mono"
                aria-label="Model"
                value={model}
                onChange={(e) => setModel(e.target.value)}
                placeholder={trainer?.model ?? "arkor/tiny"}
              />
            </label>
            <button type="submit" className="btn primary" disabled={!path.trim()}>
              Inspect
            </button>
          </form>
        ) : (
          trainer && (
            <span className="muted">
              Model <code>{trainer.model}</code>, its tokenizer and chat template.
            </span>
          )
        )}
        {manifestError && (
          <p className="notice error dt-wide" role="alert">
            The project does not build, so its trainers are unknown: {manifestError}
          </p>
        )}
      </div>
    </section>
  );
}

function Summary({ data }: { data: DataInspection }) {
  const r = data.report;
  const share = trainedShare(r.trainedTokens, r.tokens);
  const tiles: [string, string, string?][] = [
    ["Format", r.format.replace(/_/g, " ")],
    ["Rows", r.rows.toLocaleString()],
    ["Tokens", r.tokens.toLocaleString(), "after truncation"],
    ["Trained tokens", `${r.trainedTokens.toLocaleString()} (${share}%)`],
    ["Max length", r.maxLength.toLocaleString()],
    ["Truncated rows", r.truncatedCount.toLocaleString()],
    ["Malformed rows", r.errorCount.toLocaleString()],
  ];
  return (
    <section className="card" aria-label="Dataset summary">
      <div className="card-head">
        <h2>Summary</h2>
        <span className="spacer" />
        <span className="muted dt-small" title={data.files.join("\n")}>
          {data.files.map((f) => f.split("/").pop()).join(", ")} · {data.model} ·{" "}
          {r.pending > 0 ? "tokenising…" : data.seconds !== null ? `tokenised in ${data.seconds.toFixed(2)} s` : "ready"}
        </span>
      </div>
      {r.pending > 0 && (
        <div className="card-body dt-progress">
          <progress max={r.rows + r.pending} value={r.rows} aria-label="Rows tokenised" />
          <span className="muted dt-small">
            Tokenising: {r.rows.toLocaleString()} of {(r.rows + r.pending).toLocaleString()} rows; the figures grow as it goes.
          </span>
        </div>
      )}
      <dl className="dt-tiles">
        {tiles.map(([k, v, hint]) => (
          <div key={k} className="dt-tile" data-warn={(k === "Truncated rows" || k === "Malformed rows") && v !== "0" ? "true" : undefined}>
            <dt>{k}</dt>
            <dd title={hint}>{v}</dd>
          </div>
        ))}
      </dl>
    </section>
  );
}

function Histogram({ data }: { data: DataInspection }) {
  const r = data.report;
  const bars = histogramBars(r.histogram, r.maxLength);
  const cut = maxLengthX(r.histogram, r.maxLength);
  const [w, h, pad] = [560, 180, 24];
  return (
    <section className="card" aria-labelledby="dt-hist-title">
      <div className="card-head">
        <h2 id="dt-hist-title">Tokens per row</h2>
        <span className="muted dt-small">before truncation at {r.maxLength}</span>
      </div>
      <div className="card-body">
        {bars.length === 0 ? (
          <p className="muted">No rows.</p>
        ) : (
          <svg className="dt-hist" viewBox={`0 0 ${w} ${h + pad}`} role="img" aria-label="Token length histogram">
            {bars.map((b) => (
              <rect
                key={b.bucket.from}
                className={`dt-bar ${b.state}`}
                x={b.x * w + 1}
                y={h - b.height * h}
                width={Math.max(1, b.width * w - 2)}
                height={b.height * h}
              >
                <title>{b.label}</title>
              </rect>
            ))}
            {cut !== null && (
              <g className="dt-cut">
                <line x1={cut * w} x2={cut * w} y1={0} y2={h} />
                <text x={cut * w + 4} y={12}>
                  max {r.maxLength}
                </text>
              </g>
            )}
            <text className="dt-axis" x={0} y={h + 16}>
              {r.histogram[0].from}
            </text>
            <text className="dt-axis" x={w} y={h + 16} textAnchor="end">
              {r.histogram[r.histogram.length - 1].to - 1}
            </text>
          </svg>
        )}
        <ul className="sr-only">
          {bars.map((b) => (
            <li key={b.bucket.from}>{b.label}</li>
          ))}
        </ul>
      </div>
    </section>
  );
}

function Problems({ data, onRow }: { data: DataInspection; onRow: (index: number) => void }) {
  const r = data.report;
  const list = (title: string, rows: RowRef[], total: number, what: string) => (
    <section aria-label={title}>
      <h3 className="dt-sub">
        {title} ({total})
      </h3>
      {total === 0 ? (
        <p className="muted dt-small">None.</p>
      ) : (
        <ul className="dt-list">
          {rows.map((row) => (
            <li key={row.index}>
              <button type="button" className="linklike" onClick={() => onRow(row.index)}>
                Row {row.index}
              </button>{" "}
              <span className="mono dt-small">
                {short(row.file)}:{row.line}
              </span>{" "}
              <span className="muted dt-small">
                {row.tokens} tokens{what}
              </span>
            </li>
          ))}
          {total > rows.length && <li className="muted dt-small">… and {total - rows.length} more</li>}
        </ul>
      )}
    </section>
  );
  return (
    <section className="card" aria-labelledby="dt-problems-title">
      <div className="card-head">
        <h2 id="dt-problems-title">Rows to look at</h2>
      </div>
      <div className="card-body dt-problems">
        <section aria-label="Malformed rows">
          <h3 className="dt-sub">Malformed rows ({r.errorCount})</h3>
          {r.errorCount === 0 ? (
            <p className="muted dt-small">None.</p>
          ) : (
            <ul className="dt-list dt-errors">
              {r.errors.map((e) => (
                <li key={`${e.file}:${e.line}`}>
                  <span className="mono">
                    {short(e.file)}:{e.line}
                  </span>
                  : {e.message}
                </li>
              ))}
              {r.errorCount > r.errors.length && <li className="muted">… and {r.errorCount - r.errors.length} more</li>}
            </ul>
          )}
        </section>
        {list(`Truncated at ${r.maxLength} tokens`, r.truncated, r.truncatedCount, "")}
        {list("No trained token (they teach nothing)", r.untrained, r.untrainedCount, "")}
      </div>
    </section>
  );
}

function RowViewer({
  row,
  rows,
  onRow,
  onClose,
}: {
  row: RenderedRow;
  rows: number;
  onRow: (index: number) => void;
  onClose: () => void;
}) {
  const i = row.row.index;
  const trained = row.tokens.filter((t) => t.trained).length;
  return (
    <section className="card" aria-labelledby="dt-row-title">
      <div className="card-head">
        <h2 id="dt-row-title">Row {i}</h2>
        <span className="muted dt-small mono">
          {short(row.row.file)}:{row.row.line}
        </span>
        <span className="muted dt-small">
          {row.tokens.length} tokens shown{row.row.tokens > row.tokens.length ? ` of ${row.row.tokens} (truncated)` : ""}, {trained}{" "}
          trained
        </span>
        <span className="spacer" />
        <button type="button" className="btn small" disabled={i <= 0} onClick={() => onRow(i - 1)}>
          Previous row
        </button>
        <button type="button" className="btn small" disabled={i + 1 >= rows} onClick={() => onRow(i + 1)}>
          Next row
        </button>
        <button type="button" className="btn small" onClick={onClose}>
          Close
        </button>
      </div>
      <div className="card-body">
        <p className="dt-legend dt-small">
          <span className="dt-tok trained">trained</span> <span className="dt-tok">not trained</span>{" "}
          <span className="dt-tok special">special token</span> <span className="muted">Hover a token for its id.</span>
        </p>
        <div className="dt-tokens" aria-label={`Tokens of row ${i}`}>
          {row.tokens.map((t, k) => (
            <span
              key={k}
              className={`dt-tok${t.trained ? " trained" : ""}${t.special ? " special" : ""}`}
              data-trained={t.trained ? "true" : "false"}
              data-special={t.special ? "true" : undefined}
              title={`#${k} id ${t.id}${t.trained ? " · trained" : ""}${t.special ? " · special" : ""}`}
            >
              {displayToken(t.text)}
            </span>
          ))}
        </div>
      </div>
    </section>
  );
}

function RowList({
  data,
  selection,
  onChange,
}: {
  data: DataInspection;
  selection: DataSelection;
  onChange: (s: DataSelection) => void;
}) {
  const pages = pageCount(data.report.rows);
  const page = Math.min(selection.page, pages);
  return (
    <section className="card" aria-labelledby="dt-rows-title">
      <div className="card-head">
        <h2 id="dt-rows-title">Rows</h2>
        <span className="muted dt-small">Click a row to see its tokens.</span>
      </div>
      <div className="table-wrap">
        <table className="table dt-rows" aria-label="Rows">
          <thead>
            <tr>
              <th scope="col">Row</th>
              <th scope="col">Line</th>
              <th scope="col">Tokens</th>
              <th scope="col">Trained</th>
              <th scope="col">Text</th>
            </tr>
          </thead>
          <tbody>
            {data.rows.items.map((r) => (
              <tr
                key={r.index}
                className="link-row"
                aria-selected={selection.row === r.index}
                onClick={() => onChange({ ...selection, row: r.index })}
              >
                <td>
                  <button type="button" className="linklike" onClick={() => onChange({ ...selection, row: r.index })}>
                    {r.index}
                  </button>
                </td>
                <td className="mono dt-small">
                  {short(r.file)}:{r.line}
                </td>
                <td className="mono" data-warn={r.tokens > data.report.maxLength ? "true" : undefined}>
                  {r.tokens}
                </td>
                <td className="mono" data-warn={r.trained === 0 ? "true" : undefined}>
                  {r.trained}
                </td>
                <td className="dt-preview">{r.preview}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {pages > 1 && (
        <div className="pager" role="navigation" aria-label="Row pages">
          <span className="muted">
            Page {page} of {pages} · {data.report.rows.toLocaleString()} rows
          </span>
          <button type="button" className="btn small" disabled={page <= 1} onClick={() => onChange({ ...selection, page: page - 1 })}>
            Previous
          </button>
          <button type="button" className="btn small" disabled={page >= pages} onClick={() => onChange({ ...selection, page: page + 1 })}>
            Next
          </button>
        </div>
      )}
    </section>
  );
}

/** The file's name with its folder, not the whole absolute path. */
function short(path: string): string {
  const parts = path.split("/");
  return parts.slice(-2).join("/");
}
