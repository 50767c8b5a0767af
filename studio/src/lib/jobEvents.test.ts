import { describe, expect, it } from "vitest";
import { type EventSourceLike, type JobEventFrame, subscribeJobEvents } from "./jobEvents";

/** An EventSource the test drives by hand. */
class FakeSource implements EventSourceLike {
  readyState = 0;
  onerror: ((ev: Event) => void) | null = null;
  onopen: ((ev: Event) => void) | null = null;
  closed = false;
  listeners = new Map<string, ((ev: MessageEvent) => void)[]>();
  constructor(readonly url: string) {}
  addEventListener(type: string, l: (ev: MessageEvent) => void) {
    this.listeners.set(type, [...(this.listeners.get(type) ?? []), l]);
  }
  close() {
    this.closed = true;
    this.readyState = 2;
  }
  open() {
    this.readyState = 1;
    this.onopen?.(new Event("open"));
  }
  emit(type: string, id: number | null, data: object) {
    const ev = new MessageEvent(type, { data: JSON.stringify(data), lastEventId: id === null ? "" : String(id) });
    for (const l of this.listeners.get(type) ?? []) l(ev);
  }
  fail(closed: boolean) {
    this.readyState = closed ? 2 : 0;
    this.onerror?.(new Event("error"));
  }
}

function setup() {
  const sources: FakeSource[] = [];
  const timers: { fn: () => void; ms: number }[] = [];
  const frames: JobEventFrame[] = [];
  const states: boolean[] = [];
  let ended = 0;
  const stop = subscribeJobEvents(
    "/api/jobs/j/events?studioToken=t",
    { onEvent: (f) => frames.push(f), onEnd: () => ended++, onInterrupted: (v) => states.push(v) },
    {
      create: (u) => {
        const s = new FakeSource(u);
        sources.push(s);
        return s;
      },
      retryBaseMs: 100,
      retryMaxMs: 250,
      setTimeout: (fn, ms) => timers.push({ fn, ms }),
      clearTimeout: () => {},
    },
  );
  return { sources, timers, frames, states, stop, ended: () => ended };
}

describe("subscribeJobEvents", () => {
  it("parses frames and drops replayed ids after a reconnect", () => {
    const t = setup();
    const s = t.sources[0];
    s.open();
    s.emit("training.started", 1, { type: "training.started", timestamp: "2026-01-01T00:00:00Z" });
    s.emit("training.log", 2, { type: "training.log", step: 10, loss: 2.5 });
    // The browser reconnects by itself and the server replays from the start.
    s.fail(false);
    s.emit("training.started", 1, { type: "training.started" });
    s.emit("training.log", 2, { type: "training.log", step: 10, loss: 2.5 });
    s.emit("training.log", 3, { type: "training.log", step: 20, loss: 1.5 });
    expect(t.frames.map((f) => f.id)).toEqual([1, 2, 3]);
    expect(t.frames[1].data.loss).toBe(2.5);
    expect(t.frames[0].timestamp).toBe("2026-01-01T00:00:00Z");
    expect(t.states).toEqual([true, false]);
    expect(t.sources).toHaveLength(1);
  });

  it("reopens a stream the browser closed, with capped backoff, without duplicates", () => {
    const t = setup();
    t.sources[0].open();
    t.sources[0].emit("training.log", 5, { step: 1, loss: 3 });
    t.sources[0].fail(true);
    expect(t.sources[0].closed).toBe(true);
    expect(t.timers.map((x) => x.ms)).toEqual([100]);
    t.timers[0].fn();
    t.sources[1].fail(true);
    t.timers[1].fn();
    t.sources[2].fail(true);
    expect(t.timers.map((x) => x.ms)).toEqual([100, 200, 250]);
    t.timers[2].fn();
    const s = t.sources[3];
    s.open();
    s.emit("training.log", 5, { step: 1, loss: 3 });
    s.emit("training.log", 6, { step: 2, loss: 2 });
    expect(t.frames.map((f) => f.id)).toEqual([5, 6]);
  });

  it("closes on end and ignores everything after; unsubscribe closes too", () => {
    const t = setup();
    const s = t.sources[0];
    s.emit("training.completed", 9, { artifacts: [] });
    s.emit("end", null, {});
    s.emit("training.log", 10, { step: 1 });
    expect(t.ended()).toBe(1);
    expect(s.closed).toBe(true);
    expect(t.frames).toHaveLength(1);

    const u = setup();
    u.stop();
    expect(u.sources[0].closed).toBe(true);
    u.sources[0].fail(true);
    expect(u.timers).toHaveLength(0);
  });
});
