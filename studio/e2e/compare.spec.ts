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
  await page.getByRole("checkbox", { name: `Select ${firstName}` }).check();
  await expect(compare).toHaveText("Compare (1)");
  await expect(compare).toBeDisabled();
  await page.getByRole("checkbox", { name: `Select ${secondName}` }).check();
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
  expect(errors).toEqual([]);
});
