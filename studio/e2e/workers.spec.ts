// Remote workers (issue #16): `arkor dev` on a backend that trains nothing itself, with an
// `arkor worker` (its own data dir, a token from `arkor workers add`) leasing the jobs. Run
// training from the Overview: the job page streams the remote worker's loss, lists the
// checkpoints it uploaded, completes, names the worker, and the Playground chats with the
// adapter the worker trained.
import { expect, test } from "@playwright/test";
import { chat, startStudio, type StudioProject, watchConsole } from "./studio";

let studio: StudioProject;

test.beforeAll(async () => {
  test.setTimeout(900_000);
  studio = await startStudio({ steps: 30, save: 10, remoteWorker: "box-1" });
});

test.afterAll(async () => {
  await studio?.stop();
});

test("a remote worker trains the job Studio starts, and the page names it", async ({ page }) => {
  const errors = watchConsole(page);
  await page.goto(`${studio.url}/`);
  const run = page.getByRole("button", { name: /^Run training: / });
  await expect(run).toBeEnabled({ timeout: 300_000 });
  await run.click();
  const output = page.getByRole("log", { name: "Training output" });
  await expect(output).toContainText(/Started job \S+/, { timeout: 120_000 });
  const jobId = /Started job (\S+)/.exec((await output.textContent()) ?? "")![1];

  await page.goto(`${studio.url}/#/jobs/${jobId}`);
  const chart = page.getByRole("img", { name: "Loss curve" });
  await expect(page.locator("main .badge[data-status]").first()).toHaveAttribute("data-status", "completed", {
    timeout: 240_000,
  });
  expect(Number(await chart.getAttribute("data-points"))).toBeGreaterThanOrEqual(3);
  await expect(page.getByRole("list", { name: "Checkpoints" }).getByRole("listitem")).toHaveCount(2);
  const worker = page.locator(".jd-pair").filter({ has: page.locator("dt", { hasText: "Worker" }) });
  await expect(worker.locator("dd")).toHaveText("box-1");
  // It was the worker that trained it.
  expect(studio.workerOutput()).toContain(`job ${jobId}: leased (attempt 1)`);
  expect(studio.workerOutput()).toContain(`job ${jobId}: done`);

  // The adapter it uploaded answers in the Playground.
  await page.getByRole("link", { name: "Open in Playground" }).click();
  await expect(page).toHaveURL(/#\/playground\?adapter=/);
  await chat(page, "My invoice was charged twice this month, please refund one.");

  expect(errors).toEqual([]);
});
