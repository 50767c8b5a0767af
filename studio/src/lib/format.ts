// Formatting shared by every page (pure, unit-tested).

/** `Ns`, `Mm SSs`, `Hh MMm SSs`. */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return "N/A";
  const total = Math.floor(ms / 1000);
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  const pad = (n: number) => String(n).padStart(2, "0");
  if (h > 0) return `${h}h ${pad(m)}m ${pad(s)}s`;
  if (m > 0) return `${m}m ${pad(s)}s`;
  return `${s}s`;
}

/** How long a job ran: start to completion, or to `now` while running; else null. */
export function jobDurationMs(
  job: { status: string; startedAt?: string | null; completedAt?: string | null },
  now: number,
): number | null {
  if (!job.startedAt) return null;
  const start = Date.parse(job.startedAt);
  if (Number.isNaN(start)) return null;
  if (job.completedAt) {
    const end = Date.parse(job.completedAt);
    return Number.isNaN(end) ? null : Math.max(0, end - start);
  }
  if (job.status === "running") return Math.max(0, now - start);
  return null;
}

const UNITS: [Intl.RelativeTimeFormatUnit, number][] = [
  ["year", 365 * 24 * 3600],
  ["month", 30 * 24 * 3600],
  ["week", 7 * 24 * 3600],
  ["day", 24 * 3600],
  ["hour", 3600],
  ["minute", 60],
  ["second", 1],
];

/** "5 minutes ago", "in 2 hours", "now". */
export function formatRelative(iso: string, now: number, locale = "en"): string {
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return iso;
  const diff = Math.round((t - now) / 1000);
  const rtf = new Intl.RelativeTimeFormat(locale, { numeric: "auto" });
  for (const [unit, secs] of UNITS) {
    if (Math.abs(diff) >= secs || unit === "second") {
      if (unit === "second" && Math.abs(diff) < 10) return rtf.format(0, "second");
      return rtf.format(Math.round(diff / secs), unit);
    }
  }
  return iso;
}

/** Local `YYYY-MM-DD HH:MM`. */
export function formatDateTime(iso: string | null | undefined): string {
  if (!iso) return "N/A";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

/** Local `HH:MM:SS`. */
export function formatClock(iso: string | number | Date): string {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return "--:--:--";
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** `abcdef…wxyz` for long ids. */
export function truncateMiddle(s: string, head = 6, tail = 4): string {
  if (s.length <= head + tail + 1) return s;
  return `${s.slice(0, head)}…${s.slice(s.length - tail)}`;
}

/** 1023 B, 1.5 KiB, 12.3 MiB. */
export function formatBytes(n: number): string {
  if (!Number.isFinite(n) || n < 0) return "N/A";
  if (n < 1024) return `${n} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v < 10 ? v.toFixed(2) : v < 100 ? v.toFixed(1) : v.toFixed(0)} ${units[i]}`;
}

/** A number with at most `dp` decimals, or `N/A`. */
export function formatNumber(v: number | null | undefined, dp = 4): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return "N/A";
  if (v !== 0 && Math.abs(v) < 10 ** -dp) return v.toExponential(2);
  return v.toFixed(dp);
}

/** The message of anything thrown. */
export function errorMessage(e: unknown): string {
  if (e instanceof Error) return e.message || e.name;
  return String(e);
}

export function statusLabel(status: string): string {
  return status ? status[0].toUpperCase() + status.slice(1) : status;
}
