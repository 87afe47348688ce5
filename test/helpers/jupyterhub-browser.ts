/**
 * A data scientist's path through JupyterHub in a real browser: Debian's
 * chromium driven by playwright-core (no browser download), inside the
 * network namespace that reaches the hub. Shared by the lab's hub test
 * (test/lab/jupyterhub.test.ts, a hub in a lab client) and the VM tier's
 * (test/e2e/jupyterhub-browser.ts, the hub of a VM image under qemu), so both
 * click the same buttons and wait for the same page elements.
 *
 * Selectors are those of JupyterHub's login page (3.0 to 5.x) and of the
 * classic notebook server (python3-notebook 6.4), which is what the
 * LocalProcessSpawner starts on Debian.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';

/** The flags seen to work on this kind of machine (closed network, root). */
export const CHROMIUM_FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export interface HubBrowser {
  browser: Browser;
  close: () => Promise<void>;
}

/**
 * Launches /usr/bin/chromium under `nsenter NSENTER_ARGS`, e.g. `['-t', pid,
 * '-n']` for a lab client or `['--net=/run/netns/NAME']` for a namespace made
 * with `ip netns`: the hubs under test are reachable only from there. A fresh
 * profile each launch (playwright makes a new --user-data-dir).
 */
export async function launchChromiumIn(nsenterArgs: string[]): Promise<HubBrowser> {
  const dir = await mkdtemp(path.join(tmpdir(), 'dsvm-jh-browser-'));
  const wrapper = path.join(dir, 'chromium');
  // Arguments are quoted for sh: they come from the harness, never from a user.
  const quoted = nsenterArgs.map((a) => `'${a.replaceAll("'", `'\\''`)}'`).join(' ');
  await writeFile(wrapper, `#!/bin/sh\nexec nsenter ${quoted} -- /usr/bin/chromium "$@"\n`, { mode: 0o755 });
  const browser = await chromium.launch({ executablePath: wrapper, headless: true, args: CHROMIUM_FLAGS, timeout: 60_000 });
  return {
    browser,
    close: async () => {
      await browser.close().catch(() => undefined);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Opens the hub's login page and waits for its form. */
export async function openLoginPage(page: Page, hubUrl: string): Promise<void> {
  await page.goto(`${hubUrl}/hub/login`);
  await page.locator('#username_input').waitFor();
}

/** Types USER and PASSWORD into the open login page and submits it. */
export async function submitLogin(page: Page, user: string, password: string): Promise<void> {
  await page.fill('#username_input', user);
  await page.fill('#password_input', password);
  await page.click('#login_submit');
}

const escapeRegExp = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * Waits until the browser is on HUB_NAME's file browser (the hub's name: it
 * lower-cases what was typed), i.e. the hub spawned the server and redirected
 * to it. Returns the milliseconds it took.
 */
export async function waitForFileBrowser(page: Page, hubName: string, timeoutMs: number): Promise<number> {
  const t0 = Date.now();
  await page.waitForURL(new RegExp(`/user/${escapeRegExp(hubName)}/tree`), { timeout: timeoutMs });
  return Date.now() - t0;
}

/** Opens USER's file browser at DIR and waits until it lists an entry named ENTRY. */
export async function fileBrowserLists(
  page: Page,
  hubUrl: string,
  user: string,
  dir: string,
  entry: string,
  timeoutMs = 30_000,
): Promise<void> {
  await page.goto(`${hubUrl}/user/${user}/tree/${dir}`);
  await page.locator('#notebook_list a', { hasText: entry }).waitFor({ timeout: timeoutMs });
}

/**
 * Opens USER's file browser at DIR, again every 2 s until the server answers
 * 200 (a link whose target folder is not made yet gets the server's 404):
 * what a person does with the reload button. Returns the milliseconds it took.
 */
export async function openFolderWhenThere(page: Page, hubUrl: string, user: string, dir: string, timeoutMs: number): Promise<number> {
  const t0 = Date.now();
  for (;;) {
    const status = (await page.goto(`${hubUrl}/user/${user}/tree/${dir}`))?.status() ?? 0;
    if (status === 200) return Date.now() - t0;
    if (Date.now() - t0 > timeoutMs) throw new Error(`${dir}: HTTP ${status} for ${timeoutMs} ms`);
    await page.waitForTimeout(2000);
  }
}

/**
 * In USER's file browser at DIR: New → Python 3, types CODE into the first
 * cell and saves with Ctrl-S, as a person would. Returns the notebook's tab,
 * still open: the save is an XHR, so the caller closes the tab once it has
 * found the file where it should land.
 */
export async function saveNewNotebook(
  page: Page,
  hubUrl: string,
  user: string,
  dir: string,
  code: string,
  timeoutMs = 60_000,
): Promise<Page> {
  await page.goto(`${hubUrl}/user/${user}/tree/${dir}`);
  await page.locator('#new-dropdown-button').click();
  const [nb] = await Promise.all([page.context().waitForEvent('page'), page.locator('#kernel-python3 a').click()]);
  await nb.locator('.CodeMirror').first().waitFor({ timeout: timeoutMs });
  await nb.locator('.CodeMirror').first().click();
  await nb.keyboard.type(code);
  await nb.keyboard.press('Control+s');
  return nb;
}

/**
 * Logs in as USER with PASSWORD and expects the hub's refusal: returns the
 * login page's error text, or throws when the browser leaves the login page.
 */
export async function loginRefusal(page: Page, hubUrl: string, user: string, password: string, timeoutMs = 30_000): Promise<string> {
  await openLoginPage(page, hubUrl);
  await submitLogin(page, user, password);
  await page.locator('.login_error').waitFor({ timeout: timeoutMs });
  if (!/\/hub\/login/.test(page.url())) throw new Error(`left the login page: ${page.url()}`);
  return page.locator('.login_error').innerText();
}
