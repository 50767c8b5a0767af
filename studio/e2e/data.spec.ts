// The Data tab on a real `arkor dev`: the trainer's dataset as training sees it, and any
// other file with a malformed line and a row longer than the trainer's max length.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { expect, test } from "@playwright/test";
import { startStudio, type StudioProject, watchConsole } from "./studio";

let studio: StudioProject;

test.beforeAll(async () => {
  test.setTimeout(900_000);
  studio = await startStudio({ steps: 10, save: 10 });
});

test.afterAll(async () => {
  await studio?.stop();
});

test("the Data tab shows the trainer's rows, a truncated row, a malformed line and the loss mask", async ({ page }) => {
  const errors = watchConsole(page);
  const messages = (system: string | null, user: string, reply: string) =>
    JSON.stringify({
      messages: [
        ...(system ? [{ role: "system", content: system }] : []),
        { role: "user", content: user },
        { role: "assistant", content: reply },
      ],
    });
  const rows = [
    messages("You sort support tickets.", "My invoice is wrong.", "billing"),
    '{"messages": [{"role": "user", "content": "cut off',
    messages(null, "word ".repeat(3000), "too late"),
    messages("You sort support tickets.", "The app crashes on start.", "bug"),
  ];
  writeFileSync(join(studio.dir, "data/inspect-me.jsonl"), rows.join("\n") + "\n");

  // The trainer's own dataset: the template's 360 rows, nothing malformed.
  await page.goto(`${studio.url}/#/data`);
  await expect(page.getByRole("link", { name: "Data", exact: true })).toHaveAttribute("aria-current", "page");
  const summary = page.getByRole("region", { name: "Dataset summary" });
  await expect(summary).toContainText("Rows360Tokens", { timeout: 180_000 });
  await expect(summary).toContainText("Malformed rows0");
  await expect(page.getByRole("img", { name: "Token length histogram" })).toBeVisible();
  const list = page.getByRole("table", { name: "Rows" });
  await expect(list.locator("tbody tr")).toHaveCount(50);
  await page.getByRole("navigation", { name: "Row pages" }).getByRole("button", { name: "Next" }).click();
  await expect(page).toHaveURL(/page=2/);
  await expect(list.locator("tbody tr").first()).toContainText("50");

  // Another file: its malformed line by number, its long row truncated.
  await page.getByRole("combobox", { name: "Dataset" }).selectOption("__file__");
  await page.getByRole("textbox", { name: "File" }).fill("data/inspect-me.jsonl");
  await page.getByRole("button", { name: "Inspect" }).click();
  await expect(summary).toContainText("Rows3Tokens");
  const malformed = page.getByRole("region", { name: "Malformed rows" });
  await expect(malformed).toContainText("inspect-me.jsonl:2");
  await expect(malformed).toContainText("invalid JSON");
  const truncated = page.getByRole("region", { name: /^Truncated at \d+ tokens/ });
  await expect(truncated).toContainText("inspect-me.jsonl:3");

  // Row 0 token by token: the system prompt and the question are not trained, the reply is.
  await list.getByRole("button", { name: "0", exact: true }).click();
  const tokens = page.getByLabel("Tokens of row 0");
  await expect(tokens).toBeVisible();
  const text = (trained: boolean) =>
    tokens.locator(`[data-trained="${trained}"]`).evaluateAll((els) => els.map((e) => e.textContent ?? "").join(""));
  expect(await text(false)).toContain("You sort support tickets.");
  expect(await text(false)).toContain("My invoice is wrong.");
  expect(await text(true)).toContain("billing");
  expect(await text(true)).not.toContain("support tickets");
  await expect(tokens.locator('[data-special="true"]').first()).toBeVisible();

  // The view is in the URL: a reload shows the same file and row.
  await expect(page).toHaveURL(/path=data%2Finspect-me\.jsonl.*row=0/);
  await page.reload();
  await expect(page.getByLabel("Tokens of row 0")).toBeVisible({ timeout: 60_000 });
  await expect(malformed).toContainText("inspect-me.jsonl:2");
  await page.getByRole("button", { name: "Next row" }).click();
  // Row 1 is the long one: shown up to the max length, and said to be cut.
  await expect(page.getByRole("region", { name: "Row 1" })).toContainText("(truncated)");
  await expect(page.getByLabel("Tokens of row 1")).not.toContainText("too late");

  expect(errors).toEqual([]);
});
