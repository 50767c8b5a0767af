import { useState } from "react";
import { CheckIcon, CopyIcon } from "./icons";
import { formatDateTime, formatRelative, statusLabel, truncateMiddle } from "../lib/format";

const KNOWN = new Set(["queued", "running", "completed", "failed", "cancelled"]);

export function StatusBadge({ status }: { status: string }) {
  const cls = KNOWN.has(status) ? status : "unknown";
  return (
    <span className={`badge ${cls}`} data-status={status}>
      {KNOWN.has(status) ? statusLabel(status) : status}
    </span>
  );
}

/** An id shown middle-truncated in monospace, with a copy button. */
export function CopyId({ id, head = 6, tail = 4 }: { id: string; head?: number; tail?: number }) {
  const [copied, setCopied] = useState(false);
  const copy = async (e: React.MouseEvent) => {
    e.preventDefault();
    e.stopPropagation();
    try {
      await navigator.clipboard.writeText(id);
      setCopied(true);
      setTimeout(() => setCopied(false), 1200);
    } catch {
      // Clipboard unavailable (insecure context): the full id is in the tooltip.
    }
  };
  return (
    <span className="mono" title={id}>
      {truncateMiddle(id, head, tail)}
      <button type="button" className="copy" onClick={copy} aria-label={`Copy ID ${id}`}>
        {copied ? <CheckIcon /> : <CopyIcon />}
      </button>
    </span>
  );
}

export function RelativeTime({ iso, now }: { iso: string; now: number }) {
  const d = new Date(iso);
  return (
    <time dateTime={iso} title={Number.isNaN(d.getTime()) ? iso : `${d.toISOString()} (${formatDateTime(iso)})`}>
      {formatRelative(iso, now)}
    </time>
  );
}

export function Skeleton({ rows = 3 }: { rows?: number }) {
  return (
    <div className="card-body" aria-busy="true" aria-label="Loading">
      {Array.from({ length: rows }, (_, i) => (
        <div key={i} className="skeleton" style={{ margin: "10px 0", width: `${90 - i * 12}%` }} />
      ))}
    </div>
  );
}
