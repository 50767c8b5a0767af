import { useEffect, useRef, useState } from "react";
import { errorMessage } from "./format";

/**
 * Calls `load` now and then every `intervalMs` after the previous call settled (chained
 * timeouts: never two at once). `refresh()` runs it at once, or right after the call in flight.
 */
export function usePolling<T>(
  load: (signal: AbortSignal) => Promise<T>,
  intervalMs: number,
  deps: unknown[] = [],
): { data: T | undefined; error: string | null; loading: boolean; refreshing: boolean; refresh: () => void } {
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState<string | null>(null);
  const [loading, setLoading] = useState(true);
  const [refreshing, setRefreshing] = useState(false);
  const refreshRef = useRef<() => void>(() => {});
  const loadRef = useRef(load);
  loadRef.current = load;

  useEffect(() => {
    let stopped = false;
    let timer: ReturnType<typeof setTimeout> | null = null;
    let inFlight = false;
    let queued = false;
    const controller = new AbortController();
    setLoading(true);
    setData(undefined);
    const tick = async (manual: boolean) => {
      if (timer) clearTimeout(timer);
      timer = null;
      inFlight = true;
      if (manual) setRefreshing(true);
      try {
        const v = await loadRef.current(controller.signal);
        if (stopped) return;
        setData(v);
        setError(null);
      } catch (e) {
        if (stopped) return;
        setError(errorMessage(e));
      } finally {
        inFlight = false;
        if (!stopped) {
          setLoading(false);
          setRefreshing(false);
          if (queued) {
            queued = false;
            void tick(true);
          } else {
            timer = setTimeout(() => void tick(false), intervalMs);
          }
        }
      }
    };
    refreshRef.current = () => {
      if (inFlight) {
        queued = true;
        setRefreshing(true);
      } else void tick(true);
    };
    void tick(false);
    return () => {
      stopped = true;
      controller.abort();
      if (timer) clearTimeout(timer);
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [intervalMs, ...deps]);

  return { data, error, loading, refreshing, refresh: () => refreshRef.current() };
}

/** The current time, re-rendered every `ms`. */
export function useNow(ms: number): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), ms);
    return () => clearInterval(t);
  }, [ms]);
  return now;
}

/** Follows `location.hash`. */
export function useHash(): string {
  const [hash, setHash] = useState(() => window.location.hash);
  useEffect(() => {
    const on = () => setHash(window.location.hash);
    window.addEventListener("hashchange", on);
    return () => window.removeEventListener("hashchange", on);
  }, []);
  return hash;
}
