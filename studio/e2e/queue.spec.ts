// The queue (issue #15): a long run from the Overview holds `arkor dev`'s only training slot,
// three jobs submitted to its embedded backend the way the CLI does wait behind it. The Jobs
// page shows their places, moves one to the front and cancels another; the Overview shows the
// running job's progress; the job moved to the front is the next to run.
import { expect, type Page, test } from "@playwright/test";
import { startStudio, type StudioProject, watchConsole } from "./studio";

let studio: StudioProject;

test.beforeAll(async () => {
  test.setTimeout(900_000);
  // Long enough to hold the slot for the whole test; cancelled from the Jobs page at the end.
  studio = await startStudio({ steps: 100_000, save: 100_000 });
});

test.afterAll(async () => {
  await studio?.stop();
});

interface Credentials {
  token: string;
  baseUrl: string;
  orgSlug: string;
  projectSlug: string;
}

/** The backend credentials and scope Studio uses (its token comes from the page). */
async function credentials(page: Page): Promise<Credentials> {
  return page.evaluate(async () => {
    const token = document.querySelector('meta[name="arkor-studio-token"]')!.getAttribute("content")!;
    const res = await fetch("/api/credentials", { headers: { "X-Arkor-Studio-Token": token } });
    return (await res.json()) as Credentials;
  });
}

/** Calls the embedded backend directly, as the CLI and the SDK do. */
async function backend(c: Credentials, method: string, path: string, body?: unknown): Promise<{ status: number; json: any }> {
  const sep = path.includes("?") ? "&" : "?";
  const res = await fetch(`${c.baseUrl}${path}${sep}orgSlug=${c.orgSlug}&projectSlug=${c.projectSlug}`, {
    method,
    headers: {
      Authorization: `Bearer ${c.token}`,
      "X-Arkor-Client": "arkor/0.0.0",
      ...(body === undefined ? {} : { "Content-Type": "application/json" }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, json: await res.json() };
}

test("queued jobs show their place, move to the front and cancel; the Overview shows the running job", async ({ page }) => {
  test.setTimeout(600_000);
  const errors = watchConsole(page);
  await page.goto(`${studio.url}/`);
  const run = page.getByRole("button", { name: /^Run training: / });
  await expect(run).toBeEnabled({ timeout: 300_000 });
  const longName = ((await run.textContent()) ?? "").replace(/^Run training: /, "");
  await run.click();
  const output = page.getByRole("log", { name: "Training output" });
  await expect(output).toContainText(/Started job \S+/, { timeout: 300_000 });
  const longId = /Started job (\S+)/.exec((await output.textContent()) ?? "")![1];

  // The Overview: the running job, linked, with its progress as a bar; nothing queued yet.
  const card = page.getByRole("region", { name: "Running now" });
  await expect(card).toBeVisible({ timeout: 30_000 });
  await expect(card.getByRole("link", { name: longName, exact: true })).toHaveAttribute("href", `#/jobs/${longId}`);
  const bar = card.getByRole("progressbar", { name: `Progress of ${longName}` });
  await expect(bar).toHaveAttribute("aria-valuemax", "100000", { timeout: 120_000 });
  await expect.poll(async () => Number(await bar.getAttribute("aria-valuenow")), { timeout: 120_000 }).toBeGreaterThan(0);
  await expect(bar).toHaveAttribute("aria-valuetext", /^Step \d+ of 100000$/);
  await expect(card).toContainText("No jobs queued");

  // Three more jobs with the same config, straight to the backend: they queue behind it.
  const creds = await credentials(page);
  const long = await backend(creds, "GET", `/v1/jobs/${longId}`);
  expect(long.status).toBe(200);
  expect(long.json.job.status).toBe("running");
  const ids: Record<string, string> = {};
  for (const [i, name] of ["queue-a", "queue-b", "queue-c"].entries()) {
    const created = await backend(creds, "POST", "/v1/jobs", { name, config: long.json.job.config });
    expect(created.status).toBe(201);
    expect(created.json.job.queuePosition).toBe(i + 1);
    ids[name] = created.json.job.id;
  }
  await expect(card).toContainText("3 jobs queued behind it", { timeout: 10_000 });

  await page.getByRole("link", { name: "Jobs", exact: true }).click();
  const row = (name: string) => page.locator(`tr[data-job-id="${name === longName ? longId : ids[name]}"]`);
  const expectQueue = async (places: Record<string, number | null>) => {
    for (const [name, place] of Object.entries(places)) {
      if (place === null) {
        await expect(row(name).locator(".queue-pos")).toHaveCount(0);
      } else {
        await expect(row(name).getByText(/^#\d+ in queue$/)).toHaveText(`#${place} in queue`);
        await expect(row(name).locator(".badge")).toHaveAttribute("data-status", "queued");
      }
    }
  };
  await expectQueue({ "queue-a": 1, "queue-b": 2, "queue-c": 3, [longName]: null });
  // The running job can be cancelled, not moved; the first in line is already next.
  await expect(row(longName).getByRole("button", { name: `Cancel ${longName}`, exact: true })).toBeVisible();
  await expect(row(longName).getByRole("button", { name: /to front$/ })).toHaveCount(0);
  await expect(row("queue-a").getByRole("button", { name: "Move queue-a to front" })).toHaveCount(0);
  await expect(row("queue-a").getByRole("button", { name: "Cancel queue-a", exact: true })).toBeVisible();

  // Move the last to the front.
  await row("queue-c").getByRole("button", { name: "Move queue-c to front" }).click();
  await expectQueue({ "queue-a": 2, "queue-b": 3, "queue-c": 1 });
  await expect(row("queue-c").getByRole("button", { name: "Move queue-c to front" })).toHaveCount(0);
  await expect(row("queue-a").getByRole("button", { name: "Move queue-a to front" })).toBeVisible();

  // Cancel one in the middle: it leaves the queue, the one behind it moves up.
  await row("queue-a").getByRole("button", { name: "Cancel queue-a", exact: true }).click();
  await expect(row("queue-a").locator(".badge")).toHaveAttribute("data-status", "cancelled");
  await expect(row("queue-a").getByRole("button")).toHaveCount(1); // only its copy-id button
  await expectQueue({ "queue-a": null, "queue-b": 2, "queue-c": 1 });

  // The compare checkboxes still work next to the actions.
  const compare = page.getByRole("button", { name: /^Compare \(\d\)$/ });
  await page.getByRole("checkbox", { name: "Select queue-b", exact: true }).check();
  await expect(compare).toHaveText("Compare (1)");
  await page.getByRole("checkbox", { name: `Select ${longName}`, exact: true }).check();
  await expect(compare).toBeEnabled();
  await page.getByRole("button", { name: "Clear selection" }).click();
  await expect(compare).toHaveText("Compare (0)");

  // The Overview counts the two left in the queue.
  await page.getByRole("link", { name: "Overview" }).click();
  await expect(card).toContainText("2 jobs queued behind it", { timeout: 10_000 });
  await expect(bar).toBeVisible();
  if (process.env.SCREENSHOTS) await page.screenshot({ path: `${process.env.SCREENSHOTS}/queue-overview.png`, fullPage: true });

  // Cancel the running job: the one moved to the front starts next, the other moves up.
  await page.getByRole("link", { name: "Jobs", exact: true }).click();
  if (process.env.SCREENSHOTS) await page.screenshot({ path: `${process.env.SCREENSHOTS}/queue-jobs.png`, fullPage: true });
  await row(longName).getByRole("button", { name: `Cancel ${longName}`, exact: true }).click();
  await expect(row(longName).locator(".badge")).toHaveAttribute("data-status", "cancelled", { timeout: 60_000 });
  await expect(row("queue-c").locator(".badge")).toHaveAttribute("data-status", "running", { timeout: 60_000 });
  await expectQueue({ "queue-b": 1, "queue-c": null });
  await expect(row("queue-b").getByRole("button", { name: "Move queue-b to front" })).toHaveCount(0);

  // Stop the rest so the backend shuts down quietly.
  await row("queue-b").getByRole("button", { name: "Cancel queue-b", exact: true }).click();
  await expect(row("queue-b").locator(".badge")).toHaveAttribute("data-status", "cancelled");
  await row("queue-c").getByRole("button", { name: "Cancel queue-c", exact: true }).click();
  await expect(row("queue-c").locator(".badge")).toHaveAttribute("data-status", "cancelled", { timeout: 60_000 });
  expect(errors).toEqual([]);
});
