// The main browser test: Studio on a project scaffolded from the triage template with
// arkor/tiny, a real `arkor dev` with its embedded backend, Debian's Chromium.
import { expect, test } from "@playwright/test";
import { startStudio, type StudioProject, watchConsole } from "./studio";

let studio: StudioProject;

test.beforeAll(async () => {
  test.setTimeout(900_000);
  studio = await startStudio({ steps: 60, save: 20 });
});

test.afterAll(async () => {
  await studio?.stop();
});

test("run training, follow the job, chat with the adapter and a checkpoint, cancel a run", async ({ page }) => {
  const errors = watchConsole(page);
  await page.goto(`${studio.url}/`);
  await expect(page).toHaveTitle("Arkor Studio");
  await expect(page.getByRole("status").filter({ hasText: "anonymous" })).toBeVisible();

  // The manifest names the template's trainer.
  const run = page.getByRole("button", { name: /^Run training: / });
  await expect(run).toBeEnabled({ timeout: 120_000 });
  await run.click();
  await expect(page.getByRole("button", { name: "Stop training" })).toBeVisible();
  const output = page.getByRole("log", { name: "Training output" });
  await expect(output).toContainText(/Started job \S+/, { timeout: 120_000 });
  const jobId = /Started job (\S+)/.exec((await output.textContent()) ?? "")![1];

  // The job is listed on the Jobs page within 5 s.
  await page.getByRole("link", { name: "Jobs", exact: true }).click();
  const row = page.locator(`tr[data-job-id="${jobId}"]`);
  await expect(row).toBeVisible({ timeout: 5_000 });

  // Its page: loss points arrive, a checkpoint appears, the job completes.
  await row.getByRole("link").click();
  await expect(page).toHaveURL(new RegExp(`#/jobs/${jobId}$`));
  const chart = page.getByRole("img", { name: "Loss curve" });
  await expect.poll(async () => Number(await chart.getAttribute("data-points")), { timeout: 120_000 }).toBeGreaterThan(0);
  const checkpoints = page.getByRole("list", { name: "Checkpoints" });
  await expect(checkpoints.getByRole("listitem").first()).toBeVisible({ timeout: 120_000 });
  await expect(page.locator("main .badge[data-status]").first()).toHaveAttribute("data-status", "completed", {
    timeout: 240_000,
  });
  await expect(page.getByRole("log", { name: "Event log" })).toContainText("training.completed");
  const points = Number(await chart.getAttribute("data-points"));
  expect(points).toBeGreaterThanOrEqual(3);
  await expect(checkpoints.getByRole("listitem")).toHaveCount(2);

  // The Playground streams a reply from the final adapter...
  await page.getByRole("link", { name: "Open in Playground" }).click();
  await expect(page).toHaveURL(/#\/playground\?adapter=/);
  await chat(page, "My invoice was charged twice this month, please refund one.");

  // ...and from a checkpoint (picked on the job page).
  await page.goBack();
  await expect(page).toHaveURL(new RegExp(`#/jobs/${jobId}$`));
  await page.getByRole("link", { name: "Chat with this checkpoint" }).first().click();
  await expect(page).toHaveURL(/#\/playground\?adapter=.*step=20/);
  await expect(page.getByLabel("Checkpoint", { exact: true })).toHaveValue("20");
  await chat(page, "The app crashes when I upload a photo.");

  // A second run, cancelled from its job page.
  await page.getByRole("link", { name: "Overview" }).click();
  await page.getByRole("button", { name: /^Run training: / }).click();
  await expect(output).toContainText(/Started job \S+/, { timeout: 120_000 });
  const second = /Started job (\S+)/.exec((await output.textContent()) ?? "")![1];
  expect(second).not.toBe(jobId);
  await page.goto(`${studio.url}/#/jobs/${second}`);
  const badge = page.locator("main .badge[data-status]").first();
  await expect(badge).toHaveAttribute("data-status", "running", { timeout: 60_000 });
  await page.getByRole("button", { name: "Cancel job" }).click();
  await expect(badge).toHaveAttribute("data-status", "cancelled", { timeout: 60_000 });
  await expect(page.getByRole("log", { name: "Event log" })).toContainText("training.cancelled");

  expect(errors).toEqual([]);
});

async function chat(page: import("@playwright/test").Page, prompt: string) {
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
