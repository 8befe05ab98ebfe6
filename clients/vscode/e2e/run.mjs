// Headless end-to-end test of the packaged extension in a real VS Code (code-server), driven
// by playwright-core with Debian's Chromium, against the real `codenook serve` and its embedded
// SmolLM2 model. Run through scripts/test-e2e.sh, which installs what this needs.
//
//   node e2e/run.mjs --code-server BIN --vsix FILE --codenook BIN --chromium BIN --out DIR
//
// Prints one line per check and a final `N passed, M failed, K skipped`; exits 1 on a failure.

import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, cpSync, existsSync, openSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';

const { values: opt } = parseArgs({
  options: {
    'code-server': { type: 'string' },
    vsix: { type: 'string' },
    codenook: { type: 'string' },
    chromium: { type: 'string', default: '/usr/bin/chromium' },
    out: { type: 'string' },
    'keep-temp': { type: 'boolean', default: false },
  },
});
for (const key of ['code-server', 'vsix', 'codenook', 'out']) {
  if (!opt[key]) {
    console.error(`e2e: --${key} is required`);
    process.exit(2);
  }
}

const OUT = resolve(opt.out);
const TOTAL_LIMIT_MS = 8 * 60 * 1000;
const started = Date.now();
const results = [];
const elapsed = () => `${((Date.now() - started) / 1000).toFixed(1)}s`;
const log = (msg) => console.log(`[e2e ${elapsed()}] ${msg}`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function record(name, status, detail = '') {
  results.push({ name, status, detail });
  const tag = status === 'pass' ? 'ok  ' : status === 'skip' ? 'SKIP' : 'FAIL';
  console.log(`${tag} ${name}${detail ? ` — ${detail}` : ''}`);
}

async function check(name, fn) {
  try {
    const detail = await fn();
    record(name, 'pass', typeof detail === 'string' ? detail : '');
    return true;
  } catch (error) {
    record(name, 'fail', error instanceof Error ? error.message.split('\n')[0] : String(error));
    if (page) {
      const shot = join(OUT, `failure-${results.length}.png`);
      await page.screenshot({ path: shot }).catch(() => {});
      await page.content().then((html) => writeFileSync(shot.replace(/\.png$/, '.html'), html)).catch(() => {});
      console.log(`     screenshot: ${shot}`);
    }
    return false;
  }
}

function freePort() {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.once('error', rej);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => res(port));
    });
  });
}

// -- the server's capabilities, asked directly (initialize only: no model load) ------------------

function serverCapabilities(codenook) {
  return new Promise((res, rej) => {
    const child = spawn(codenook, ['serve'], { stdio: ['pipe', 'pipe', 'ignore'] });
    let buffer = Buffer.alloc(0);
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      rej(new Error('codenook serve did not answer initialize within 30 s'));
    }, 30000);
    const send = (msg) => {
      const body = Buffer.from(JSON.stringify(msg));
      child.stdin.write(`Content-Length: ${body.length}\r\n\r\n`);
      child.stdin.write(body);
    };
    child.on('error', (e) => {
      clearTimeout(timer);
      rej(e);
    });
    child.stdout.on('data', (chunk) => {
      buffer = Buffer.concat([buffer, chunk]);
      for (;;) {
        const end = buffer.indexOf('\r\n\r\n');
        if (end < 0) return;
        const length = Number(/Content-Length: (\d+)/i.exec(buffer.subarray(0, end).toString())?.[1]);
        if (buffer.length < end + 4 + length) return;
        const msg = JSON.parse(buffer.subarray(end + 4, end + 4 + length).toString());
        buffer = buffer.subarray(end + 4 + length);
        if (msg.id === 1) {
          clearTimeout(timer);
          send({ jsonrpc: '2.0', id: 2, method: 'shutdown', params: null });
          send({ jsonrpc: '2.0', method: 'exit', params: null });
          setTimeout(() => child.kill('SIGKILL'), 3000).unref();
          res(msg.result.capabilities);
        }
      }
    });
    send({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { processId: process.pid, rootUri: null, capabilities: {} } });
  });
}

// -- process tree ---------------------------------------------------------------------------------

function descendants(rootPid) {
  const children = new Map();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (!children.has(ppid)) children.set(ppid, []);
      children.get(ppid).push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  const out = [];
  const stack = [rootPid];
  while (stack.length) {
    const pid = stack.pop();
    for (const child of children.get(pid) ?? []) {
      out.push(child);
      stack.push(child);
    }
  }
  return out;
}

/** The command line of a process, as its words (empty when it is gone). */
function commandLine(pid) {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter((w) => w !== '');
  } catch {
    return [];
  }
}

/** The `codenook serve` processes under code-server (the language server, with the model). */
function codenookServers(rootPid) {
  return descendants(rootPid).filter((pid) => {
    const words = commandLine(pid);
    return words.includes('serve') && words.some((w) => /(^|\/)codenook$/.test(w));
  });
}

function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** SIGTERM code-server and every process under it (extension hosts, codenook serve), then SIGKILL. */
async function stopTree(rootPid) {
  const pids = [rootPid, ...descendants(rootPid)];
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      // already gone
    }
  }
  for (let i = 0; i < 50 && pids.some(alive); i++) {
    await sleep(100);
  }
  const left = pids.filter(alive);
  for (const pid of left) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  return { stopped: pids.length, killed: left.length };
}

// -- the test ------------------------------------------------------------------------------------

const ORIGINAL = 'def add(a, b):\n    """Return the sum of a and b."""\n    return ';
const TYPED = 'a';
/** Files of the languages the extension once lacked; each ends where the test types. */
const OTHER_LANGUAGES = [
  { file: 'Stats.java', text: 'public class Stats {\n    /** Returns the sum of a and b. */\n    public static int add(int a, int b) {\n        return ' },
  { file: 'stats.c', text: '#include <stdio.h>\n\n/* Return the sum of a and b. */\nint add(int a, int b) {\n    return ' },
  { file: 'stats.cpp', text: '#include <vector>\n\n// Return the sum of a and b.\nint add(int a, int b) {\n    return ' },
  { file: 'stats.lua', text: '-- Return the sum of a and b.\nlocal function add(a, b)\n  return ' },
];

/**
 * The agent-task scenario runs the real LSP layer with a scripted model (tests/serve_fake.py):
 * the model's replies read AGENT_FILE, rename old_name in it and finish.
 */
const SERVE_FAKE = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'tests', 'serve_fake.py');
const AGENT_FILE = 'rename_me.py';
const AGENT_TEXT = 'def old_name(x):\n    return x * 2\n\n\nprint(old_name(21))\n';
const AGENT_TASK = 'rename old_name to new_name';
const AGENT_SUMMARY = 'Renamed old_name to new_name.';
const toolCall = (name, params) =>
  `<tool_call>\n<function=${name}>\n${Object.entries(params).map(([k, v]) => `<parameter=${k}>\n${v}\n</parameter>\n`).join('')}</function>\n</tool_call>`;
const AGENT_REPLIES = [
  toolCall('read_file', { path: AGENT_FILE }),
  toolCall('edit_file', { path: AGENT_FILE, old_text: 'def old_name(', new_text: 'def new_name(' }),
  toolCall('finish', { summary: AGENT_SUMMARY }),
];
/** A shell-quoted word. */
const sq = (word) => `'${String(word).replace(/'/g, `'\\''`)}'`;

let page;
let browser;
let codeServer;
let temp;

async function main() {
  mkdirSync(OUT, { recursive: true });
  temp = mkdtempSync(join(tmpdir(), 'codenook-e2e-'));
  const userData = join(temp, 'user-data');
  const extensions = join(temp, 'extensions');
  const workspace = join(temp, 'workspace');
  const configFile = join(temp, 'config.yaml');
  mkdirSync(join(userData, 'User'), { recursive: true });
  mkdirSync(extensions, { recursive: true });
  mkdirSync(workspace, { recursive: true });
  const file = join(workspace, 'main.py');
  writeFileSync(file, ORIGINAL);
  writeFileSync(join(workspace, 'README.md'), '# Notes\n\nNothing here needs a language model.\n');
  const agentFile = join(workspace, AGENT_FILE);
  writeFileSync(agentFile, AGENT_TEXT);
  for (const other of OTHER_LANGUAGES) writeFileSync(join(workspace, other.file), other.text);
  const port = await freePort();
  writeFileSync(configFile, `bind-addr: 127.0.0.1:${port}\nauth: none\ncert: false\n`);
  const settingsFile = join(userData, 'User', 'settings.json');
  const baseSettings = {
        'codenook.serverCommand': [opt.codenook, 'serve'],
        'codenook.completion.maxTokens': 16,
        'codenook.completion.maxLines': 2,
        'codenook.completion.speculative': false,
        'codenook.hover.maxTokens': 24,
        'editor.inlineSuggest.enabled': true,
        'editor.quickSuggestions': { other: false, comments: false, strings: false },
        'editor.suggestOnTriggerCharacters': false,
        'editor.wordBasedSuggestions': 'off',
        'editor.hover.delay': 200,
        'files.autoSave': 'off',
        'workbench.startupEditor': 'none',
        'workbench.secondarySideBar.defaultVisibility': 'hidden',
        'workbench.tips.enabled': false,
        'workbench.enableExperiments': false,
        'security.workspace.trust.enabled': false,
        'telemetry.telemetryLevel': 'off',
        'extensions.autoUpdate': false,
        'extensions.autoCheckUpdates': false,
        'extensions.ignoreRecommendations': true,
        'update.mode': 'none',
        'chat.disableAIFeatures': true,
        'python.languageServer': 'None',
  };
  const writeSettings = (extra = {}) => writeFileSync(settingsFile, JSON.stringify({ ...baseSettings, ...extra }, null, 2));
  writeSettings();

  log('asking the server for its capabilities');
  let capabilities = {};
  await check('codenook serve answers initialize', async () => {
    capabilities = await serverCapabilities(opt.codenook);
    return `hover: ${!!capabilities.hoverProvider}, commands: ${JSON.stringify(capabilities.executeCommandProvider?.commands ?? [])}`;
  });
  await check('the server advertises its languages, Java, C, C++ and Lua among them', async () => {
    const languages = capabilities.experimental?.codenook?.languages;
    if (!Array.isArray(languages)) throw new Error('no capabilities.experimental.codenook.languages');
    const ids = languages.flatMap((l) => l.languageIds);
    for (const id of ['java', 'c', 'cpp', 'lua']) if (!ids.includes(id)) throw new Error(`no ${id} in ${JSON.stringify(ids)}`);
    return languages.map((l) => l.name).join(', ');
  });

  log('installing the extension');
  const csEnv = { ...process.env, XDG_CONFIG_HOME: join(temp, 'xdg-config'), XDG_DATA_HOME: join(temp, 'xdg-data'), XDG_CACHE_HOME: join(temp, 'xdg-cache') };
  const ok = await check('code-server installs the packaged .vsix', async () => {
    const r = spawnSync(
      opt['code-server'],
      ['--user-data-dir', userData, '--extensions-dir', extensions, '--install-extension', resolve(opt.vsix)],
      { encoding: 'utf8', env: csEnv, timeout: 120000 },
    );
    const output = `${r.stdout}${r.stderr}`;
    if (r.status !== 0 || !/successfully installed/i.test(output)) {
      throw new Error(`--install-extension failed (${r.status}): ${output.trim().slice(-400)}`);
    }
    const installed = readdirSync(extensions).filter((d) => d.startsWith('codenook.codenook-'));
    if (installed.length !== 1) throw new Error(`extension folder not found in ${extensions}`);
    return installed[0];
  });
  if (!ok) return;

  log(`starting code-server on 127.0.0.1:${port}`);
  const serverLog = join(OUT, 'code-server.log');
  const fd = openSync(serverLog, 'w');
  codeServer = spawn(
    opt['code-server'],
    [
      '--bind-addr', `127.0.0.1:${port}`,
      '--auth', 'none',
      '--disable-telemetry',
      '--disable-update-check',
      '--disable-workspace-trust',
      '--user-data-dir', userData,
      '--extensions-dir', extensions,
      '--config', configFile,
      workspace,
    ],
    { stdio: ['ignore', fd, fd], detached: true, env: csEnv },
  );
  const upOk = await check('code-server starts', async () => {
    const deadline = Date.now() + 60000;
    while (Date.now() < deadline) {
      if (codeServer.exitCode !== null) throw new Error(`code-server exited with ${codeServer.exitCode}; see ${serverLog}`);
      try {
        const r = await fetch(`http://127.0.0.1:${port}/healthz`);
        if (r.ok) return `pid ${codeServer.pid}`;
      } catch {
        // not yet
      }
      await sleep(250);
    }
    throw new Error(`no answer on port ${port} within 60 s; see ${serverLog}`);
  });
  if (!upOk) return;

  log('opening the workspace in Chromium');
  browser = await chromium.launch({
    executablePath: opt.chromium,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 }, permissions: ['clipboard-read', 'clipboard-write'] });
  page = await context.newPage();
  const consoleLog = [];
  page.on('console', (m) => consoleLog.push(`[${m.type()}] ${m.text()}`));
  page.on('pageerror', (e) => consoleLog.push(`[pageerror] ${e.message}`));
  process.on('exit', () => writeFileSync(join(OUT, 'browser-console.log'), consoleLog.join('\n')));
  await page.goto(`http://127.0.0.1:${port}/?folder=${encodeURIComponent(workspace)}`);
  await page.locator('.monaco-workbench').waitFor({ timeout: 60000 });

  const openMain = async () => {
    const row = page.locator('.explorer-folders-view .monaco-list-row', { hasText: 'main.py' });
    await row.waitFor({ timeout: 60000 });
    await row.click();
    await page.locator('.monaco-editor .view-lines', { hasText: 'Return the sum' }).first().waitFor({ timeout: 30000 });
  };
  // Opening a file of no language of the server must not start it (and load the model): the
  // extension activates, asks `codenook languages --json` and waits for a Python file.
  const statusItem = page.locator('.statusbar-item', { hasText: 'codenook' }).first();
  await check('a README opens without starting the server; the status bar says it waits', async () => {
    const row = page.locator('.explorer-folders-view .monaco-list-row', { hasText: 'README.md' });
    await row.waitFor({ timeout: 60000 });
    await row.click();
    await page.locator('.monaco-editor .view-lines', { hasText: 'Nothing here needs' }).first().waitFor({ timeout: 30000 });
    await statusItem.waitFor({ timeout: 60000 });
    await sleep(3000);
    const text = (await statusItem.innerText()).trim();
    if (/starting|loading|idle|generating|not running/.test(text)) throw new Error(`status bar: ${JSON.stringify(text)}`);
    const servers = codenookServers(codeServer.pid);
    if (servers.length) throw new Error(`codenook serve runs: ${servers.map((p) => commandLine(p).join(' ')).join('; ')}`);
    const tooltip = (await statusItem.getAttribute('aria-label')) ?? '';
    return `status bar ${JSON.stringify(text)}; no codenook serve process${tooltip ? `; ${JSON.stringify(tooltip.slice(0, 100))}` : ''}`;
  });

  const opened = await check('main.py opens in the editor', openMain);
  if (!opened) return;

  await check('the status bar item shows the model state', async () => {
    await statusItem.waitFor({ timeout: 60000 });
    const seen = new Set();
    const deadline = Date.now() + 120000;
    while (Date.now() < deadline) {
      const text = (await statusItem.innerText().catch(() => '')).trim();
      if (text) seen.add(text);
      if (/codenook: idle/.test(text)) {
        // The client answers the server's workspace/configuration with server keys only, so
        // start-up produces no "unknown setting" (or any other) complaint.
        await sleep(1000);
        const toasts = await page.locator('.notifications-toasts .notification-list-item').allInnerTexts();
        if (toasts.length) throw new Error(`unexpected messages at start-up: ${JSON.stringify(toasts)}`);
        const servers = codenookServers(codeServer.pid);
        if (servers.length !== 1) throw new Error(`${servers.length} codenook serve processes after main.py opened`);
        return `${[...seen].join(' → ')}`;
      }
      if (/model failed|not running/.test(text)) throw new Error(`status bar: ${text}`);
      await sleep(200);
    }
    throw new Error(`never idle; seen: ${[...seen].join(' → ')}`);
  });

  let ghost = '';
  const ghostOk = await check('typing shows ghost text (.ghost-text-decoration)', async () => {
    const editor = page.locator('.monaco-editor .view-lines').first();
    await editor.click();
    await page.keyboard.press('Control+End');
    await page.keyboard.type(TYPED, { delay: 50 });
    const ghostLocator = page.locator('.ghost-text-decoration, .ghost-text-decoration-preview').first();
    try {
      await ghostLocator.waitFor({ timeout: 30000 });
    } catch {
      // One retry through the extension's own "Suggest Here" key binding (alt+\).
      log('no ghost text after typing; asking again with alt+\\');
      await page.keyboard.press('Alt+Backslash');
      await ghostLocator.waitFor({ timeout: 30000 });
    }
    ghost = (await page.locator('.ghost-text-decoration, .ghost-text-decoration-preview').allInnerTexts()).join('');
    const shot = join(OUT, 'ghost-text.png');
    await page.screenshot({ path: shot });
    console.log(`     screenshot: ${shot}`);
    return `ghost text ${JSON.stringify(ghost)}`;
  });

  if (ghostOk) {
    await check('Tab accepts the suggestion and the saved file has it', async () => {
      await page.keyboard.press('Tab');
      await sleep(300);
      await page.keyboard.press('Control+S');
      const expectedStart = ORIGINAL + TYPED;
      const deadline = Date.now() + 15000;
      let disk = '';
      while (Date.now() < deadline) {
        disk = readFileSync(file, 'utf8');
        if (disk !== ORIGINAL) break;
        await sleep(200);
      }
      if (!disk.startsWith(expectedStart)) throw new Error(`file on disk does not start with what was typed: ${JSON.stringify(disk)}`);
      if (disk.length <= expectedStart.length) throw new Error(`nothing was accepted: ${JSON.stringify(disk)}`);
      await page.screenshot({ path: join(OUT, 'accepted.png') });
      return `file ends with ${JSON.stringify(disk.slice(ORIGINAL.length - 'return '.length))}`;
    });
  } else {
    record('Tab accepts the suggestion and the saved file has it', 'fail', 'no ghost text to accept');
  }

  // The languages the extension once lacked: each file opens, and typing shows ghost text.
  const openFile = async (name, text) => {
    await page.keyboard.press('Escape');
    // The whole name: "stats.c" must not pick "stats.cpp".
    const exact = new RegExp(`^\\s*${name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\s*$`);
    const row = page.locator('.explorer-folders-view .monaco-list-row', { hasText: exact });
    await row.waitFor({ timeout: 30000 });
    await row.click();
    const firstLine = text.split('\n')[0];
    await page.locator('.monaco-editor .view-lines', { hasText: firstLine }).first().waitFor({ timeout: 30000 });
  };
  for (const other of OTHER_LANGUAGES) {
    await check(`${other.file}: typing shows ghost text`, async () => {
      await openFile(other.file, other.text);
      const editor = page.locator('.monaco-editor .view-lines', { hasText: other.text.split('\n')[0] }).first();
      await editor.click();
      await page.keyboard.press('Control+End');
      await page.keyboard.type(TYPED, { delay: 50 });
      const ghostLocator = page.locator('.ghost-text-decoration, .ghost-text-decoration-preview').first();
      try {
        await ghostLocator.waitFor({ timeout: 30000 });
      } catch {
        log(`no ghost text in ${other.file} after typing; asking again with alt+\\`);
        await page.keyboard.press('Alt+Backslash');
        await ghostLocator.waitFor({ timeout: 30000 });
      }
      const text = (await page.locator('.ghost-text-decoration, .ghost-text-decoration-preview').allInnerTexts()).join('');
      await page.screenshot({ path: join(OUT, `ghost-text-${other.file.replace(/\W/g, '-')}.png`) });
      await page.keyboard.press('Escape');
      return `ghost text ${JSON.stringify(text)}`;
    });
  }
  // Back to main.py for the checks below.
  await check('main.py is the active editor again', async () => {
    await page.keyboard.press('Escape');
    const row = page.locator('.explorer-folders-view .monaco-list-row', { hasText: 'main.py' });
    await row.click();
    await page.locator('.monaco-editor .view-lines', { hasText: 'Return the sum of a and b."""' }).first().waitFor({ timeout: 30000 });
  });

  const palette = async (title) => {
    await page.keyboard.press('Escape');
    await page.keyboard.press('F1');
    const input = page.locator('.quick-input-widget input');
    await input.waitFor({ timeout: 10000 });
    await input.fill(`>${title}`);
    await page.locator('.quick-input-list .monaco-list-row', { hasText: title }).first().waitFor({ timeout: 10000 });
    await page.keyboard.press('Enter');
  };

  await check('"codenook: Show Status" lists codenook/stats', async () => {
    await palette('codenook: Show Status');
    const rows = page.locator('.quick-input-list .monaco-list-row', { hasText: 'State:' });
    await rows.first().waitFor({ timeout: 15000 });
    const texts = await page.locator('.quick-input-list .monaco-list-row').allInnerTexts();
    await page.keyboard.press('Escape');
    const flat = texts.map((t) => t.replace(/\s+/g, ' ').trim());
    if (!flat.some((t) => /State: idle/.test(t))) throw new Error(`no "State: idle" in ${JSON.stringify(flat)}`);
    if (!flat.some((t) => /Model: SmolLM2/i.test(t))) throw new Error(`no model line in ${JSON.stringify(flat)}`);
    return flat.filter((t) => /^(State|Model|Completions)/.test(t)).join(' | ');
  });

  const agentAdvertised = !!capabilities.executeCommandProvider?.commands?.includes('codenook.agentTask');
  await check('"codenook: Run Agent Task…" follows the server\'s capabilities', async () => {
    await palette('codenook: Run Agent Task');
    if (agentAdvertised) {
      await page.locator('.quick-input-widget', { hasText: 'Describe the task' }).waitFor({ timeout: 10000 });
      await page.keyboard.press('Escape');
      return 'server offers codenook.agentTask: the input box opened';
    }
    const toast = page.locator('.notifications-toasts .notification-list-item', { hasText: 'not available in this server version' });
    await toast.first().waitFor({ timeout: 10000 });
    return 'server lacks codenook.agentTask: "not available in this server version" shown';
  });

  if (!capabilities.hoverProvider) {
    record('hover shows the server\'s explanation', 'skip', 'the server does not advertise hoverProvider');
  } else {
    await check('hover shows the server\'s explanation', async () => {
      await page.keyboard.press('Escape');
      const word = page.locator('.monaco-editor .view-line span span', { hasText: /^add$/ }).first();
      await word.hover();
      const hover = page.locator('.monaco-hover .hover-contents, .monaco-hover .markdown-hover').first();
      await hover.waitFor({ state: 'visible', timeout: 30000 });
      let text = '';
      const deadline = Date.now() + 30000;
      while (Date.now() < deadline && !/add/.test(text)) {
        text = (await hover.innerText().catch(() => '')).trim();
        await sleep(200);
      }
      await page.screenshot({ path: join(OUT, 'hover.png') });
      if (!/add/.test(text)) throw new Error(`hover without the function: ${JSON.stringify(text)}`);
      return JSON.stringify(text.replace(/\s+/g, ' ').slice(0, 120));
    });
  }

  const actionsAdvertised = !!capabilities.codeActionProvider;
  if (!actionsAdvertised) {
    record('code actions: codenook\'s refactors are offered; "Edit with instruction…" asks first', 'skip', 'the server does not advertise codeActionProvider');
  } else {
    await check('code actions: codenook\'s refactors are offered; "Edit with instruction…" asks first', async () => {
      // The hover from the check above can still cover the middle of the editor: a click there
      // lands in the hover, and Ctrl+A / Ctrl+. then act on it. Move the mouse away, wait for
      // the hover to go, and click the editor's first line at its left edge.
      await page.keyboard.press('Escape');
      await page.mouse.move(0, 0);
      await page.locator('.monaco-hover').first().waitFor({ state: 'hidden', timeout: 5000 }).catch(() => {});
      await page.locator('.monaco-editor .view-line').first().click({ position: { x: 2, y: 2 } });
      await page.keyboard.press('Control+A');
      const before = await page.locator('.monaco-editor .view-lines').first().innerText();
      const menu = page.locator('.action-widget').filter({ hasText: 'codenook:' }).first();
      // One retry: under load the first Ctrl+. can arrive before the editor has focus.
      for (let attempt = 0; ; attempt++) {
        await page.keyboard.press('Control+Period');
        try {
          await menu.waitFor({ timeout: 10000 });
          break;
        } catch (err) {
          if (attempt >= 1) throw err;
          await page.keyboard.press('Escape');
          await page.locator('.monaco-editor .view-line').first().click({ position: { x: 2, y: 2 } });
          await page.keyboard.press('Control+A');
        }
      }
      const titles = (await menu.locator('.monaco-list-row').allInnerTexts()).map((t) => t.trim()).filter((t) => t.startsWith('codenook:'));
      if (!titles.some((t) => t.includes('Edit with instruction'))) throw new Error(`menu: ${JSON.stringify(titles)}`);
      // The server sends this action without an instruction; the extension must ask for one.
      await menu.locator('.monaco-list-row', { hasText: 'Edit with instruction' }).first().click();
      const box = page.locator('.quick-input-widget', { hasText: 'What should codenook do with the selected code?' });
      await box.waitFor({ timeout: 10000 });
      await page.keyboard.press('Escape');
      await sleep(1000);
      const status = (await statusItem.innerText()).trim();
      const after = await page.locator('.monaco-editor .view-lines').first().innerText();
      if (/generating/.test(status) || after !== before) throw new Error(`cancelling the instruction box still ran the action (${status})`);
      await page.keyboard.press('Control+End');
      return titles.join(' | ');
    });
  }

  // code-server does not notice a settings.json changed on disk (and a window reload may still
  // see the old one), so change the settings as a user would: open the user settings.json in
  // the editor, replace its text (pasted, so that auto-indent and auto-closing stay out of it)
  // and save. The extension then sees a live configuration change.
  /** VS Code 1.139 opens settings (UI and JSON) in a modal editor; close it with its button. */
  const closeModalEditor = async () => {
    const modal = page.locator('.modal-editor-part');
    // Under load the settings.json editor can read dirty again after its save (the file on
    // disk was checked to be what was pasted): closing it then asks to save; the disk is right.
    const dontSave = page.locator('.monaco-dialog-box', { hasText: 'Do you want to save' }).getByRole('button', { name: "Don't Save" });
    for (let i = 0; i < 5 && (await modal.isVisible()); i++) {
      if (await dontSave.isVisible()) {
        await dontSave.click().catch(() => {});
        await sleep(300);
        continue;
      }
      const close = modal.locator('[aria-label^="Close Modal Editor"]').first();
      if (await close.isVisible()) {
        await close.click().catch(() => {});
      } else {
        await page.keyboard.press('Escape');
      }
      await sleep(300);
    }
    if (await modal.isVisible()) throw new Error('the modal settings editor did not close');
  };
  let revision = 0;
  const editUserSettings = async (extra = {}) => {
    revision += 1; // so that every save changes the file and can be waited for
    const text = JSON.stringify({ ...baseSettings, ...extra, 'e2e.revision': revision }, null, 2);
    await palette('Preferences: Open User Settings (JSON)');
    const editor = page.locator('.monaco-editor', { hasText: '"codenook.completion.maxTokens"' }).first();
    await editor.waitFor({ timeout: 15000 });
    await editor.locator('.view-lines').click();
    await page.evaluate((t) => navigator.clipboard.writeText(t), text);
    await page.keyboard.press('Control+A');
    await page.keyboard.press('Control+V');
    await page.keyboard.press('Control+S');
    const deadline = Date.now() + 10000;
    while (readFileSync(settingsFile, 'utf8') !== text) {
      if (Date.now() > deadline) throw new Error(`settings.json on disk is not what was pasted: ${readFileSync(settingsFile, 'utf8').slice(0, 300)}`);
      await sleep(100);
    }
    await closeModalEditor();
  };
  const clearNotifications = async () => {
    await palette('Notifications: Clear All Notifications');
    await sleep(300);
  };
  const waitForStatus = async (pattern, timeout) => {
    const deadline = Date.now() + timeout;
    let text = '';
    while (Date.now() < deadline) {
      text = (await statusItem.innerText().catch(() => '')).trim();
      if (pattern.test(text)) return text;
      await sleep(200);
    }
    throw new Error(`status bar never matched ${pattern}; last: ${JSON.stringify(text)}`);
  };
  /** A toast matching `pattern`, its "Open Setting" (and "Show Output") button, and the settings editor it opens. */
  const openSettingFromToast = async (pattern, settingKey, screenshot) => {
    const toast = page.locator('.notifications-toasts .notification-list-item', { hasText: pattern }).first();
    await toast.waitFor({ timeout: 30000 });
    await sleep(600); // let the toast finish sliding in
    await page.screenshot({ path: join(OUT, screenshot) });
    const message = (await toast.locator('.notification-list-item-message').innerText()).trim();
    await toast.hover();
    const buttons = (await toast.locator('.monaco-button').allInnerTexts()).map((b) => b.trim());
    if (!buttons.includes('Open Setting') || !buttons.includes('Show Output')) throw new Error(`buttons ${JSON.stringify(buttons)}`);
    await toast.getByRole('button', { name: 'Open Setting' }).click();
    const editor = page.locator('.settings-editor');
    await editor.waitFor({ timeout: 15000 });
    await editor.locator('.settings-count-widget', { hasText: /^1 Setting Found$/ }).waitFor({ timeout: 15000 });
    const searched = (await editor.locator('.suggest-input-container').first().innerText()).trim();
    if (searched !== settingKey) throw new Error(`the settings editor searched ${JSON.stringify(searched)}, not ${settingKey}`);
    await closeModalEditor();
    return message;
  };

  await check('a missing model: warning status, an error with "Open Setting" → codenook.model.path', async () => {
    await editUserSettings({ 'codenook.model.path': join(temp, 'missing.gguf') });
    const status = await waitForStatus(/model failed/, 60000);
    const message = await openSettingFromToast('model unavailable', 'codenook.model.path', 'missing-model.png');
    await editUserSettings();
    await waitForStatus(/codenook: idle/, 120000);
    return `${status.replace(/\s+/g, ' ')}; "${message.slice(0, 90)}…"; back to idle after the fix`;
  });

  await check('a wrong serverCommand: "not running", an error with "Open Setting" → codenook.serverCommand', async () => {
    await editUserSettings({ 'codenook.serverCommand': [join(temp, 'no-such-venv', 'bin', 'codenook'), 'serve'] });
    const status = await waitForStatus(/not running/, 60000);
    const message = await openSettingFromToast('does not exist or is not executable', 'codenook.serverCommand', 'wrong-server-command.png');
    await editUserSettings();
    await waitForStatus(/codenook: idle/, 120000);
    await clearNotifications();
    return `${status.replace(/\s+/g, ' ')}; "${message.slice(0, 90)}…"; back to idle after the fix`;
  });

  await check('a server that exits at start-up: one clear error with "Open Setting"; then the default command finds the checkout\'s .venv', async () => {
    await editUserSettings({ 'codenook.serverCommand': [opt.codenook, 'serve', '--no-such-flag'] });
    const status = await waitForStatus(/not running/, 60000);
    const toast = page.locator('.notifications-toasts .notification-list-item', { hasText: 'during start-up' }).first();
    await toast.waitFor({ timeout: 30000 });
    await sleep(1500);
    const toasts = await page.locator('.notifications-toasts .notification-list-item .notification-list-item-message').allInnerTexts();
    if (toasts.length !== 1) throw new Error(`expected one message, got ${JSON.stringify(toasts)}`);
    const message = await openSettingFromToast('during start-up', 'codenook.serverCommand', 'server-exits.png');
    if (!/unrecognized arguments: --no-such-flag/.test(message)) throw new Error(`the message does not say why: ${message}`);
    // Back to the default `codenook serve`: not on PATH here, so the extension falls back to the
    // .venv of the checkout that built the .vsix.
    await editUserSettings({ 'codenook.serverCommand': undefined });
    await waitForStatus(/codenook: idle/, 120000);
    return `${status.replace(/\s+/g, ' ')}; "${message}"`;
  });

  await check('the status bar is still healthy and no setting was complained about', async () => {
    const text = (await statusItem.innerText()).trim();
    if (!/codenook: (idle|generating)/.test(text)) throw new Error(`status bar: ${text}`);
    // The client answers workspace/configuration with server keys only: no "unknown setting".
    const toasts = await page.locator('.notifications-toasts .notification-list-item').allInnerTexts();
    const complaints = toasts.filter((t) => /unknown setting|using the default|could not|failed/i.test(t));
    if (complaints.length) throw new Error(`unexpected messages: ${JSON.stringify(complaints)}`);
    return `${text.replace(/\s+/g, ' ')}`;
  });

  await agentTaskScenario({ temp, agentFile, editUserSettings, waitForStatus, clearNotifications, palette, openFile });
}

/**
 * An agent task through the UI, against the real LSP layer with a scripted model: the
 * server command becomes a wrapper that runs tests/serve_fake.py (its `languages --json` is the
 * real codenook's), the task is typed into the input box, and the checks follow what a user
 * sees: the progress notification, the edit in the (unsaved) buffer, the transcript, the
 * summary with its buttons, the diff of "Show changes", and Undo Last Agent Task.
 */
async function agentTaskScenario({ temp, agentFile, editUserSettings, waitForStatus, clearNotifications, palette, openFile }) {
  const toast = (text) => page.locator('.notifications-toasts .notification-list-item', { hasText: text }).first();
  /** The editors of the editor area (not the output panel, whose transcript names new_name too). */
  const editorTexts = async () =>
    (await page.locator('.editor-group-container .monaco-editor .view-lines').allInnerTexts()).map((t) => t.replace(/\s+/g, ' '));
  const waitFor = async (what, fn, timeout) => {
    const deadline = Date.now() + timeout;
    let last;
    while (Date.now() < deadline) {
      last = await fn();
      if (last.ok) return last;
      await sleep(200);
    }
    throw new Error(`${what} within ${timeout / 1000} s; last: ${JSON.stringify(last?.seen ?? null).slice(0, 300)}`);
  };

  log('agent task scenario (scripted model)');
  const scenarioStart = Date.now();
  const ready = await check('agent task: the server restarts with a scripted model (tests/serve_fake.py)', async () => {
    if (!existsSync(SERVE_FAKE)) throw new Error(`${SERVE_FAKE} not found`);
    const python = join(dirname(opt.codenook), 'python');
    if (!existsSync(python)) throw new Error(`${python} not found (the .venv of the codenook install)`);
    const fakeJson = join(temp, 'agent-fake.json');
    // step_s: the task takes a few seconds, long enough to see its progress.
    writeFileSync(fakeJson, JSON.stringify({ replies: AGENT_REPLIES, reply: 'pass', step_s: 0.01, n_ctx: 65536 }));
    const wrapper = join(temp, 'codenook-scripted');
    writeFileSync(
      wrapper,
      [
        '#!/bin/sh',
        '# codenook with a scripted model: `languages` is the real one, `serve` runs tests/serve_fake.py',
        `if [ "$1" = languages ]; then exec ${sq(opt.codenook)} "$@"; fi`,
        'if [ "$1" = serve ]; then shift; fi',
        `CODENOOK_FAKE="$(cat ${sq(fakeJson)})"`,
        'export CODENOOK_FAKE',
        `exec ${sq(python)} ${sq(SERVE_FAKE)} "$@"`,
        '',
      ].join('\n'),
    );
    chmodSync(wrapper, 0o755);
    await editUserSettings({
      'codenook.serverCommand': [wrapper, 'serve'],
      // Nothing else asks the scripted model; its tokens are bytes, hence the large step.
      'codenook.completion.enabled': false,
      'codenook.hover.enabled': false,
      'codenook.agent.stepTokens': 4000,
    });
    await waitFor(
      'no serve_fake.py process under code-server',
      async () => {
        const found = descendants(codeServer.pid).filter((pid) => commandLine(pid).some((w) => w.endsWith('serve_fake.py')));
        return { ok: found.length === 1, seen: found.map((pid) => commandLine(pid).join(' ')) };
      },
      30000,
    );
    const status = await waitForStatus(/codenook: idle/, 30000);
    await clearNotifications();
    return status.replace(/\s+/g, ' ');
  });
  if (!ready) {
    record('agent task: typed into the input box, it edits the buffer (unsaved) and shows its transcript and summary', 'skip', 'no scripted server');
    return;
  }

  const edited = await check('agent task: typed into the input box, it edits the buffer (unsaved) and shows its transcript and summary', async () => {
    await openFile(AGENT_FILE, AGENT_TEXT);
    await palette('codenook: Run Agent Task');
    const box = page.locator('.quick-input-widget', { hasText: 'Describe the task' });
    try {
      await box.waitFor({ timeout: 10000 });
    } catch {
      const toasts = await page.locator('.notifications-toasts .notification-list-item').allInnerTexts();
      throw new Error(`no task input box; messages: ${JSON.stringify(toasts)}`);
    }
    await page.keyboard.type(AGENT_TASK);
    await page.keyboard.press('Enter');
    // The progress notification (with Cancel) while the task runs.
    const progress = toast('codenook: agent task');
    try {
      await progress.waitFor({ timeout: 10000 });
    } catch {
      throw new Error('no "codenook: agent task" progress notification appeared');
    }
    const cancellable = await progress.getByRole('button', { name: /cancel/i }).count();
    if (!cancellable) throw new Error('the progress notification has no Cancel button');
    const summary = toast(AGENT_SUMMARY);
    try {
      await summary.waitFor({ timeout: 30000 });
    } catch {
      const toasts = await page.locator('.notifications-toasts .notification-list-item').allInnerTexts();
      throw new Error(`no summary message within 30 s; messages: ${JSON.stringify(toasts)}`);
    }
    await summary.hover(); // keep it from hiding
    const buttons = (await summary.locator('.monaco-button').allInnerTexts()).map((b) => b.trim());
    if (!buttons.includes('Show changes') || !buttons.includes('Undo task')) throw new Error(`summary buttons ${JSON.stringify(buttons)}`);
    // The edit is in the editor's buffer, unsaved; the file on disk is as it was.
    await waitFor('the editor never showed "def new_name("', async () => {
      const seen = await editorTexts();
      return { ok: seen.some((t) => t.includes('def new_name(')), seen };
    }, 10000);
    const dirty = await page.locator('.tabs-container .tab.dirty', { hasText: AGENT_FILE }).count();
    if (!dirty) throw new Error(`the ${AGENT_FILE} tab is not dirty (unsaved)`);
    const disk = readFileSync(agentFile, 'utf8');
    if (disk !== AGENT_TEXT) throw new Error(`the file on disk changed: ${JSON.stringify(disk)}`);
    // The transcript: the "codenook agent" output channel, opened when the task started.
    const transcript = await waitFor('the "codenook agent" output shows no tool calls', async () => {
      const seen = (await page.locator('.panel .monaco-editor .view-lines').allInnerTexts()).join('\n').replace(/\u00a0/g, ' ');
      return { ok: seen.includes(`▶ read_file path=${AGENT_FILE}`) && seen.includes(`▶ edit_file path=${AGENT_FILE}`) && seen.includes(`✔ ${AGENT_SUMMARY}`), seen };
    }, 10000);
    await page.screenshot({ path: join(OUT, 'agent-task.png') });
    console.log(`     screenshot: ${join(OUT, 'agent-task.png')}`);
    const calls = transcript.seen.split('\n').filter((l) => l.startsWith('▶')).join(' | ');
    return `summary with ${buttons.join(', ')}; buffer dirty, disk unchanged; transcript: ${calls}`;
  });
  if (!edited) {
    record('agent task: "Show changes" diffs against the text before the task; "Undo Last Agent Task" restores the buffer', 'skip', 'the task did not run');
    return;
  }

  await check('agent task: "Show changes" diffs against the text before the task; "Undo Last Agent Task" restores the buffer', async () => {
    const summary = toast(AGENT_SUMMARY);
    await summary.hover();
    await summary.getByRole('button', { name: 'Show changes' }).click();
    const item = page.locator('.quick-input-list .monaco-list-row', { hasText: AGENT_FILE }).first();
    await item.waitFor({ timeout: 10000 });
    await item.click();
    const diff = page.locator('.editor-group-container .monaco-diff-editor').first();
    await diff.waitFor({ timeout: 10000 });
    await waitFor('the diff editor never showed both sides', async () => {
      const sides = (await diff.locator('.view-lines').allInnerTexts()).map((t) => t.replace(/\s+/g, ' '));
      return { ok: sides.some((t) => t.includes('def old_name(')) && sides.some((t) => t.includes('def new_name(')), seen: sides };
    }, 10000);
    await page.screenshot({ path: join(OUT, 'agent-task-diff.png') });
    await palette('codenook: Undo Last Agent Task');
    const restored = toast(/restored 1 file/);
    try {
      await restored.waitFor({ timeout: 15000 });
    } catch {
      const toasts = await page.locator('.notifications-toasts .notification-list-item').allInnerTexts();
      throw new Error(`no "restored 1 file" message; messages: ${JSON.stringify(toasts)}`);
    }
    await waitFor('an editor still shows "def new_name("', async () => {
      const seen = await editorTexts();
      return { ok: seen.length > 0 && !seen.some((t) => t.includes('new_name')) && seen.some((t) => t.includes('def old_name(')), seen };
    }, 10000);
    const disk = readFileSync(agentFile, 'utf8');
    if (disk !== AGENT_TEXT) throw new Error(`the file on disk changed: ${JSON.stringify(disk)}`);
    const message = (await restored.locator('.notification-list-item-message').innerText()).trim();
    return `diff shown; after undo the buffer reads old_name again; "${message}"`;
  });
  log(`agent task scenario took ${((Date.now() - scenarioStart) / 1000).toFixed(1)} s`);
}

async function cleanup() {
  if (browser) await browser.close().catch(() => {});
  if (codeServer?.pid) {
    const { stopped, killed } = await stopTree(codeServer.pid);
    log(`stopped code-server's process tree: ${stopped} processes${killed ? `, ${killed} needed SIGKILL` : ''}`);
  }
  if (temp) {
    const logs = join(temp, 'user-data', 'logs');
    if (existsSync(logs)) cpSync(logs, join(OUT, 'logs'), { recursive: true });
    if (!opt['keep-temp']) rmSync(temp, { recursive: true, force: true });
  }
}

const guard = setTimeout(async () => {
  record('the whole run finishes in time', 'fail', `over ${TOTAL_LIMIT_MS / 60000} minutes`);
  await cleanup();
  finish();
}, TOTAL_LIMIT_MS);

function finish() {
  clearTimeout(guard);
  const passed = results.filter((r) => r.status === 'pass').length;
  const failed = results.filter((r) => r.status === 'fail').length;
  const skipped = results.filter((r) => r.status === 'skip').length;
  writeFileSync(join(OUT, 'results.json'), JSON.stringify({ results, seconds: (Date.now() - started) / 1000 }, null, 2));
  console.log(`e2e finished in ${elapsed()}; output in ${OUT}`);
  console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
  process.exit(failed > 0 || passed === 0 ? 1 : 0);
}

try {
  await main();
} catch (error) {
  record('the test ran to its end', 'fail', error instanceof Error ? error.stack?.split('\n').slice(0, 3).join(' ') : String(error));
} finally {
  await cleanup();
  finish();
}
