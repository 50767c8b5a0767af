import { useEffect, useRef, useState } from "react";
import { fetchManifest, type Manifest } from "../lib/api";
import { usePolling } from "../lib/hooks";
import { jobHref } from "../lib/route";
import { exitCodeOf, startedJobOf, startRun, stopRun, useTrainingRun } from "../lib/trainingRun";

export function RunTraining() {
  const manifest = usePolling<Manifest | { error: string }>((s) => fetchManifest(s), 5000);
  const [picked, setPicked] = useState<string | null>(null);
  const { running, output } = useTrainingRun();
  const boxRef = useRef<HTMLPreElement | null>(null);

  useEffect(() => {
    const box = boxRef.current;
    if (box) box.scrollTop = box.scrollHeight;
  }, [output]);

  const m = manifest.data;
  const error = m && "error" in m ? m.error : null;
  const trainers = m && !("error" in m) ? (m.trainers?.map((t) => t.name) ?? (m.trainer ? [m.trainer.name] : [])) : [];
  const name = picked && trainers.includes(picked) ? picked : (trainers[0] ?? null);

  const run = () => (running ? stopRun() : void startRun(name, trainers.length > 1));

  const code = output ? exitCodeOf(output) : null;
  const started = output ? startedJobOf(output) : null;
  return (
    <section className="card" aria-labelledby="run-training-title">
      <div className="card-head">
        <h2 id="run-training-title">Run training</h2>
        {code !== null && (
          <span className={`badge ${code === "0" ? "completed" : "failed"}`}>{code === "0" ? "finished" : `exit ${code}`}</span>
        )}
        {started && (
          <a href={jobHref(started)} style={{ marginLeft: "auto" }}>
            Open job
          </a>
        )}
      </div>
      <div className="card-body">
        {manifest.loading && !m && <p className="muted">Building the project to find its trainers…</p>}
        {manifest.error && <p className="notice warn">Couldn't read manifest: {manifest.error}</p>}
        {error && (
          <pre className="notice warn" style={{ whiteSpace: "pre-wrap", margin: "0 0 12px" }}>
            Couldn't read manifest: {error}
          </pre>
        )}
        {m && !error && trainers.length === 0 && (
          <p className="notice hint">
            No trainer in src/arkor/mod.rs yet. Build one with <code>Trainer::builder(...)</code> and register it with{" "}
            <code>Arkor::new().trainer(...)</code>.
          </p>
        )}
        {name && (
          <p>
            Trainer <code>{name}</code> from <code>src/arkor/</code>.
          </p>
        )}
        <div className="row">
          {trainers.length > 1 && (
            <label className="field">
              Trainer
              <select className="select" value={name ?? ""} onChange={(e) => setPicked(e.target.value)} disabled={running}>
                {trainers.map((t) => (
                  <option key={t} value={t}>
                    {t}
                  </option>
                ))}
              </select>
            </label>
          )}
          <button type="button" className={running ? "btn danger" : "btn primary"} onClick={run} disabled={!running && !name}>
            {running ? "Stop training" : name ? `Run training: ${name}` : "Run training"}
          </button>
        </div>
        {output !== null && (
          <pre className="output" ref={boxRef} role="log" aria-label="Training output">
            {output || "Waiting for output…"}
          </pre>
        )}
      </div>
    </section>
  );
}
