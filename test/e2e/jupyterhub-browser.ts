/**
 * The VM tier's browser check (issue 20), run on the host by
 * test/e2e/lib/jupyterhub.sh: Debian's chromium, driven by playwright-core,
 * in the lab bridge's namespace (the only one that reaches the VM), against
 * the hub of the VM image, whose /data/workspace is the kernel CIFS mount of
 * the lab's share. What the browser saves is looked for in the share's folder
 * on the host, where the lab's SMB server keeps it.
 *
 *   tsx test/e2e/jupyterhub-browser.ts --netns NS --hub URL --share-dir DIR
 *     --secrets DIR --note TEXT [--shots DIR]
 *
 * Passwords are read from the lab's root-only files under --secrets, never
 * taken from argv. Prints one line per check, for the harness to turn into
 * TAP: `ok<TAB>NAME` or `not ok<TAB>NAME<TAB>DETAIL` (DETAIL on one line).
 * Exits 0 when every check passed.
 */
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { Page } from 'playwright-core';
import {
  fileBrowserLists,
  launchChromiumIn,
  loginRefusal,
  openFolderWhenThere,
  openLoginPage,
  saveNewNotebook,
  submitLogin,
  waitForFileBrowser,
} from '../helpers/jupyterhub-browser.js';

const { values: opt } = parseArgs({
  options: {
    netns: { type: 'string' },
    hub: { type: 'string' },
    'share-dir': { type: 'string' },
    secrets: { type: 'string' },
    note: { type: 'string' },
    shots: { type: 'string' },
  },
});
for (const key of ['netns', 'hub', 'share-dir', 'secrets', 'note'] as const) {
  if (!opt[key]) {
    console.error(`jupyterhub-browser: --${key} is required`);
    process.exit(2);
  }
}
const hub = opt.hub!;
const shareDir = opt['share-dir']!;
const note = opt.note!;
// Under TCG the single-user server's start (Python imports) takes tens of seconds.
const SPAWN_TIMEOUT_MS = 240_000;

let failed = 0;
const report = (ok: boolean, name: string, detail = ''): void => {
  if (!ok) failed++;
  const oneLine = detail.replace(/\s*\n\s*/g, ' | ').slice(0, 600);
  process.stdout.write(ok ? `ok\t${name}\n` : `not ok\t${name}\t${oneLine}\n`);
};

/** Runs STEP as one check; its return value (if a string) goes into the name. */
async function step(name: string, body: () => Promise<string | void>): Promise<boolean> {
  try {
    const extra = await body();
    report(true, extra ? `${name} (${extra})` : name);
    return true;
  } catch (e) {
    report(false, name, e instanceof Error ? e.message : String(e));
    return false;
  }
}

const password = (user: string): Promise<string> => readFile(path.join(opt.secrets!, 'passwords', user), 'utf8').then((s) => s.trim());

async function shot(page: Page, name: string): Promise<void> {
  if (!opt.shots) return;
  await mkdir(opt.shots, { recursive: true });
  await page.screenshot({ path: path.join(opt.shots, name) }).catch(() => undefined);
}

/** The notebook in DIR whose text holds NOTE (its name depends on what the folder already held). */
async function findNotebook(dir: string, deadlineMs: number): Promise<string> {
  const until = Date.now() + deadlineMs;
  for (;;) {
    const names = existsSync(dir) ? (await readdir(dir)).filter((n) => n.endsWith('.ipynb')) : [];
    for (const n of names) {
      if ((await readFile(path.join(dir, n), 'utf8').catch(() => '')).includes(note)) return n;
    }
    if (Date.now() > until)
      throw new Error(
        `no notebook holding "${note}" in ${dir} on the host after ${deadlineMs} ms (there: ${names.join(', ') || 'nothing'})`,
      );
    await new Promise((r) => setTimeout(r, 500));
  }
}

const { browser, close } = await launchChromiumIn([`--net=/run/netns/${opt.netns!}`]);
try {
  const page = await (await browser.newContext({ viewport: { width: 1000, height: 380 } })).newPage();
  const loggedIn = await step("alice logs in to the VM's hub with her AD password and her server starts", async () => {
    await openLoginPage(page, hub);
    await shot(page, 'vm-login.png');
    await submitLogin(page, 'alice', await password('alice'));
    return `login to file browser ${await waitForFileBrowser(page, 'alice', SPAWN_TIMEOUT_MS)} ms`;
  });
  if (loggedIn) {
    await step('the file browser lists notebooks/remote', async () => {
      await fileBrowserLists(page, hub, 'alice', 'notebooks', 'remote');
    });
    await step("a notebook saved in the browser in notebooks/remote is in the host's share folder alice/notebooks", async () => {
      // The hook waits for the agent at most its bound (3 s), which a first
      // login under TCG can pass: the daemon then makes the folder in the
      // background, and the link's target shows up a little later.
      const waited = await openFolderWhenThere(page, hub, 'alice', 'notebooks/remote', 120_000);
      const nb = await saveNewNotebook(page, hub, 'alice', 'notebooks/remote', `print("${note}")`, SPAWN_TIMEOUT_MS);
      try {
        const dir = path.join(shareDir, 'alice', 'notebooks');
        const name = await findNotebook(dir, 60_000);
        await fileBrowserLists(page, hub, 'alice', 'notebooks/remote', name);
        await shot(page, 'vm-file-browser.png');
        await rm(path.join(dir, name), { force: true });
        return `${name}; notebooks/remote browsable ${waited} ms after the file browser opened`;
      } finally {
        await nb.close();
      }
    });
  } else {
    report(false, 'the file browser lists notebooks/remote', 'not run: alice did not get to her server');
    report(
      false,
      "a notebook saved in the browser in notebooks/remote is in the host's share folder alice/notebooks",
      'not run: alice did not get to her server',
    );
  }

  await step("mallory (in no allowed group) gets the hub's login page back, and no folder on the share", async () => {
    const refusal = await loginRefusal(await browser.newPage(), hub, 'mallory', await password('mallory'));
    if (!/Invalid username or password/.test(refusal)) throw new Error(`the login page says: ${refusal}`);
    if (existsSync(path.join(shareDir, 'mallory'))) throw new Error(`${shareDir}/mallory exists`);
  });
} finally {
  await close();
}
process.exit(failed ? 1 : 0);
