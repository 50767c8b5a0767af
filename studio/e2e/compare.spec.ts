// "Compare runs": two short runs of the triage template with different learning rates,
// ticked on the Jobs page and compared; the view comes back from its link after a reload.
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { expect, type Page, test } from "@playwright/test";
import { startStudio, type StudioProject, watchConsole } from "./studio";

let studio: StudioProject;

test.beforeAll(async () => {
  test.setTimeout(900_000);
  studio = await startStudio({ steps: 10, save: 10 });
});

test.afterAll(async () => {
  await studio?.stop();
});

/** Presses Run training on the Overview and waits for `arkor start` to finish; returns the job id. */
async function runTraining(page: Page): Promise<string> {
  await page.goto(`${studio.url}/`);
  const run = page.getByRole("button", { name: /^Run training: / });
  await expect(run).toBeEnabled({ timeout: 300_000 });
  await run.click();
  const output = page.getByRole("log", { name: "Training output" });
  await expect(output).toContainText(/Started job \S+/, { timeout: 300_000 });
  const id = /Started job (\S+)/.exec((await output.textContent()) ?? "")![1];
  // `arkor start` follows the job to its end, then Studio appends its exit code.
  await expect(output).toContainText(/exit=0/, { timeout: 300_000 });
  return id;
}

test("compare two runs with different learning rates, and reload the link", async ({ page }) => {
  test.setTimeout(900_000);
  const errors = watchConsole(page);

  const first = await runTraining(page);
  // The second run: another name and learning rate, as a user would edit the trainer.
  const file = join(studio.dir, "src/arkor/trainer.rs");
  const src = readFileSync(file, "utf8");
  const lr = /\.learning_rate\([^)]*\)/;
  const name = /Trainer::builder\("([^"]+)"/;
  expect(src).toMatch(lr);
  const firstName = name.exec(src)![1];
  const secondName = `${firstName}-lr5e-3`;
  writeFileSync(file, src.replace(lr, ".learning_rate(5e-3)").replace(name, `Trainer::builder("${secondName}"`));
  await expect(page.getByRole("button", { name: `Run training: ${secondName}` })).toBeVisible({ timeout: 300_000 });
  const second = await runTraining(page);
  expect(second).not.toBe(first);

  // Tick both on the Jobs page: Compare needs two.
  await page.getByRole("link", { name: "Jobs", exact: true }).click();
  const compare = page.getByRole("button", { name: /^Compare \(\d\)$/ });
  await expect(compare).toHaveText("Compare (0)");
  await expect(compare).toBeDisabled();
  await page.getByRole("checkbox", { name: `Select ${firstName}`, exact: true }).check();
  await expect(compare).toHaveText("Compare (1)");
  await expect(compare).toBeDisabled();
  await page.getByRole("checkbox", { name: `Select ${secondName}`, exact: true }).check();
  await expect(compare).toBeEnabled();
  await compare.click();
  await expect(page).toHaveURL(new RegExp(`#/compare\\?jobs=${first},${second}$`));
  // Still under the Jobs tab.
  await expect(page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Jobs" })).toHaveAttribute(
    "aria-current",
    "page",
  );

  const assertView = async () => {
    await expect(page.getByRole("heading", { name: "Compare runs", level: 1 })).toBeVisible();
    const legend = page.getByRole("list", { name: "Runs" }).getByRole("listitem");
    await expect(legend).toHaveCount(2);
    await expect(legend.nth(0).getByRole("link")).toHaveText(firstName);
    await expect(legend.nth(0).getByRole("link")).toHaveAttribute("href", `#/jobs/${first}`);
    await expect(legend.nth(1).getByRole("link")).toHaveText(secondName);
    const chart = page.getByRole("img", { name: "Runs compared" });
    await expect(chart).toHaveAttribute("data-runs", "2");
    // One training-loss line per run.
    await expect(chart.locator("path.cmp-line")).toHaveCount(2);

    const table = page.getByRole("table", { name: "Configurations compared" });
    const lrRow = table.locator('tr[data-key="learningRate"]');
    await expect(lrRow).toHaveAttribute("data-differs", "true");
    await expect(lrRow.getByRole("rowheader")).toHaveText(/learningRate.*\(differs\)/);
    await expect(lrRow.getByRole("cell").nth(1)).toHaveText("0.005");
    const modelRow = table.locator('tr[data-key="model"]');
    await expect(modelRow).toHaveAttribute("data-differs", "false");
    await expect(modelRow.getByText("(differs)")).toHaveCount(0);
    await expect(table.locator('tr[data-key="final train loss"] td')).toHaveCount(2);
  };
  await assertView();

  // Drag across the chart to zoom, then reset.
  const chart = page.getByRole("img", { name: "Runs compared" });
  const box = (await chart.boundingBox())!;
  const reset = page.getByRole("button", { name: "Reset zoom" });
  await expect(reset).toBeDisabled();
  await page.mouse.move(box.x + box.width * 0.3, box.y + box.height / 2);
  await page.mouse.down();
  await page.mouse.move(box.x + box.width * 0.7, box.y + box.height / 2, { steps: 5 });
  await page.mouse.up();
  await expect(reset).toBeEnabled();
  await expect(page.getByText(/^Steps \d+–\d+$/)).toBeVisible();
  await reset.click();
  await expect(reset).toBeDisabled();

  // By tokens seen where the backend reports them; otherwise the toggle says why it is off.
  const tokens = page.getByRole("group", { name: "Align by" }).getByRole("button", { name: "Tokens seen" });
  if (await tokens.isEnabled()) {
    await tokens.click();
    await expect(chart).toHaveAttribute("data-align", "tokens");
    await expect(chart.locator("path.cmp-line")).toHaveCount(2);
    if (process.env.SCREENSHOTS) await chart.screenshot({ path: `${process.env.SCREENSHOTS}/compare-tokens.png` });
    await page.getByRole("group", { name: "Align by" }).getByRole("button", { name: "Step" }).click();
  } else {
    await expect(tokens).toHaveAttribute("title", /tokens seen/);
  }
  await expect(chart).toHaveAttribute("data-align", "step");

  // The learning rate is viewable too; then only the differing keys.
  await page.getByRole("group", { name: "Metric" }).getByRole("button", { name: "Learning rate" }).click();
  await expect(page.getByRole("img", { name: "Runs compared" })).toHaveAttribute("data-metric", "learningRate");
  await expect(page.getByRole("img", { name: "Runs compared" }).locator("path.cmp-line")).toHaveCount(2);
  await page.getByLabel("Only differing keys").check();
  await expect(page.locator('tr[data-key="model"]')).toHaveCount(0);
  await expect(page.locator('tr[data-key="learningRate"]')).toHaveCount(1);

  // The link alone reproduces the comparison.
  await page.reload();
  await assertView();

  // Nothing overflows sideways at 800 px, in either theme. SCREENSHOTS=<dir> saves the views.
  for (const theme of ["light", "dark"]) {
    await page.evaluate((t) => localStorage.setItem("arkor-studio-theme", t), theme);
    for (const width of [1280, 800]) {
      await page.setViewportSize({ width, height: 900 });
      await page.reload();
      await expect(page.locator("html")).toHaveAttribute("data-theme", theme);
      await expect(page.locator('tr[data-key="learningRate"]')).toBeVisible();
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      expect(overflow, `compare at ${width}px (${theme}) overflows by ${overflow}px`).toBeLessThanOrEqual(0);
      if (process.env.SCREENSHOTS) {
        await page.screenshot({ path: `${process.env.SCREENSHOTS}/compare-${width}-${theme}.png`, fullPage: true });
      }
    }
  }
  if (process.env.SCREENSHOTS) {
    await page.goto(`${studio.url}/#/jobs`);
    await page.getByRole("checkbox").first().check();
    await page.screenshot({ path: `${process.env.SCREENSHOTS}/jobs-selected.png`, fullPage: true });
  }
  expect(errors).toEqual([]);
});
