// Starts the real `arkor dev` on a project scaffolded by the real `arkor init`, with its
// own data dir (embedded backend) and a free port. Used by the browser tests.
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { expect, type Page } from "@playwright/test";

const repo = resolve(import.meta.dirname, "../..");

export function arkorBin(): string {
  return process.env.ARKOR_BIN ?? join(repo, "target/debug/arkor");
}

function env(home: string): NodeJS.ProcessEnv {
  return {
    ...process.env,
    ARKOR_DATA_DIR: home,
    HF_HUB_OFFLINE: "1",
    ARKOR_CPU: "1",
    // Scaffolded projects share one target dir with the Rust tests: the SDK compiles once.
    // ARKOR_E2E_TARGET_DIR points a second checkout (a worktree) at the first one's.
    CARGO_TARGET_DIR: process.env.ARKOR_E2E_TARGET_DIR ?? join(repo, "target/arkor-projects"),
    ARKOR_BACKEND_URL: "",
  };
}

async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once("error", rej);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => res(port));
    });
  });
}

export interface StudioProject {
  dir: string;
  home: string;
  url: string;
  port: number;
  proc: ChildProcess;
  output: () => string;
  /** With `remoteWorker`: the `arkor worker`'s output so far. */
  workerOutput: () => string;
  stop: () => Promise<void>;
}

/** Waits until `out()` matches `pattern` (or the process exits, or 60 s pass). */
async function waitFor(proc: ChildProcess, out: () => string, pattern: RegExp, what: string): Promise<RegExpExecArray> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const m = pattern.exec(out());
    if (m) return m;
    if (proc.exitCode !== null) throw new Error(`${what} exited (${proc.exitCode}):\n${out()}`);
    if (Date.now() > deadline) throw new Error(`${what} did not start:\n${out()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function capture(proc: ChildProcess): () => string {
  let out = "";
  proc.stdout!.on("data", (d) => (out += d));
  proc.stderr!.on("data", (d) => (out += d));
  return () => out;
}

/** Stops a child with `signal` (SIGKILL after 10 s) and waits for it to exit. */
async function kill(proc: ChildProcess | undefined, signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
  if (!proc || proc.exitCode !== null) return;
  proc.kill(signal);
  await new Promise((r) => {
    const t = setTimeout(() => {
      proc.kill("SIGKILL");
      r(null);
    }, 10_000);
    proc.once("exit", () => {
      clearTimeout(t);
      r(null);
    });
  });
}

/**
 * `arkor init --template <t> --offline`, the trainer shortened to `steps` steps with a
 * checkpoint every `save` steps (what a user edits), then `arkor dev --port <free>`.
 * `remoteWorker`: first `arkor server --max-jobs 0` for the data dir (which `arkor dev` then
 * uses) and an `arkor worker` with its own data dir and a token from `arkor workers add`,
 * so every job Studio starts is trained by the remote worker.
 */
export async function startStudio(
  opts: { template?: string; steps?: number; save?: number; remoteWorker?: string } = {},
): Promise<StudioProject> {
  const root = mkdtempSync(join(tmpdir(), "arkor-e2e-"));
  const home = join(root, "home");
  const dir = join(root, "proj");
  execFileSync(arkorBin(), ["init", dir, "--template", opts.template ?? "triage", "--offline", "--yes"], {
    env: env(home),
    stdio: "pipe",
  });
  const trainer = join(dir, "src/arkor/trainer.rs");
  let src = readFileSync(trainer, "utf8");
  const steps = /\.max_steps\(\d+\)/;
  const save = /\.save_steps\(\d+\)/;
  if (!steps.test(src) || !save.test(src)) throw new Error(`unexpected trainer template:\n${src}`);
  src = src.replace(steps, `.max_steps(${opts.steps ?? 60})`).replace(save, `.save_steps(${opts.save ?? 20})`);
  writeFileSync(trainer, src);
  // Compile the project before Studio asks for its manifest (a cold build takes minutes).
  execFileSync(arkorBin(), ["build"], { cwd: dir, env: env(home), stdio: "pipe", timeout: 900_000 });

  let server: ChildProcess | undefined;
  let worker: ChildProcess | undefined;
  let workerOutput = () => "";
  if (opts.remoteWorker) {
    server = spawn(arkorBin(), ["server", "--port", "0", "--max-jobs", "0"], { env: env(home), stdio: ["ignore", "pipe", "pipe"] });
    const serverOutput = capture(server);
    const backendUrl = (await waitFor(server, serverOutput, /arkor backend listening on (\S+)/, "arkor server"))[1];
    const token = execFileSync(arkorBin(), ["workers", "add", opts.remoteWorker], { env: env(home), stdio: "pipe" })
      .toString()
      .trim();
    worker = spawn(arkorBin(), ["worker", "--backend", backendUrl, "--token", token], {
      env: env(join(root, "worker-home")),
      stdio: ["ignore", "pipe", "pipe"],
    });
    workerOutput = capture(worker);
    await waitFor(worker, workerOutput, /leasing jobs from/, "arkor worker");
  }

  const port = await freePort();
  const proc = spawn(arkorBin(), ["dev", "--port", String(port)], { cwd: dir, env: env(home), stdio: ["ignore", "pipe", "pipe"] });
  const output = capture(proc);
  const url = `http://127.0.0.1:${port}`;
  await waitFor(proc, output, /Arkor Studio running on/, "arkor dev");
  return {
    dir,
    home,
    url,
    port,
    proc,
    output,
    workerOutput,
    stop: async () => {
      await kill(proc, "SIGINT");
      await kill(worker);
      await kill(server);
      // A build the Overview started may still be writing its last files: retry a little.
      rmSync(root, { recursive: true, force: true, maxRetries: 10, retryDelay: 200 });
    },
  };
}

/** Collects console errors and page errors; the tests assert there are none. */
export function watchConsole(page: Page): string[] {
  const errors: string[] = [];
  page.on("console", (m) => {
    if (m.type() === "error" || m.type() === "warning") errors.push(`${m.type()}: ${m.text()}`);
  });
  page.on("pageerror", (e) => errors.push(`pageerror: ${e.message}`));
  return errors;
}

/** Sends `prompt` in the Playground (greedy) and checks a reply streams back whole. */
export async function chat(page: Page, prompt: string) {
  // Greedy decoding: the tiny adapter's reply is the same on every run.
  await page.getByLabel("Temperature", { exact: true }).fill("0");
  const box = page.getByRole("textbox", { name: "Message" });
  await box.fill(prompt);
  await page.getByRole("button", { name: "Send message" }).click();
  await expect(page.locator('[data-role="user"]').last()).toContainText(prompt);
  const reply = page.locator('[data-role="assistant"]').last();
  await expect(reply).toHaveAttribute("aria-busy", "false", { timeout: 120_000 });
  const text = (await reply.textContent()) ?? "";
  expect(text.trim().length).toBeGreaterThan(0);
  expect(text).not.toContain("[error]");
}
