/**
 * A test-only stand-in for TbSync's host side of the provider protocol 3.
 *
 * Why it exists: EAS-4-TbSync 5.3.4 speaks protocol 3 (port "tbsync-v5"),
 * and the only TbSync there is a snapshot of, 5.0.10, speaks "1.0" (port
 * "tbsync-v1"): it answers the provider's announce with
 * {ok: false, error: "protocol-version-mismatch"}, so the provider never
 * gets a port and no account can exist. The 1.0 host also keeps the change
 * log itself, where a protocol 3 provider keeps its own queue keyed by the
 * folder's `sessionId`, which a 1.0 host never mints. See
 * tests/eas/TBSYNC_BEHAVIOURS.md.
 *
 * What it is: the host's half of the wire contract in the provider's own
 * `vendor/tbsync/protocol.mjs` (copied next to this file when the add-on is
 * built, byte for byte, the way TbSync vendors it), and the account and
 * folder rows the host owns. Everything EAS - the server conversation, the
 * calendars, the items and the queue of user edits - is the real provider's
 * code. The sync order follows TbSync 5.0.10's sync-coordinator: SYNC_ACCOUNT,
 * GET_SORTED_FOLDERS, then SYNC_FOLDER for every selected folder, re-running
 * the account on ACCOUNT_RERUN (at most twice).
 *
 * Rules:
 * - It carries TbSync's extension id, because the provider accepts a port
 *   from nothing else; so it can never be installed beside TbSync.
 * - It has no UI and no schedule: the tests drive it through
 *   `window.calsyncHost` (reached by tests/eas/tbsync.py from the privileged
 *   side) and nothing syncs unless they, or the provider's own
 *   REQUEST_SYNC after a user edit, ask.
 * - One sync per account at a time; a sync asked for while one runs waits
 *   for it (TbSync defers, never drops).
 * - Rows live in storage.local, so a provider reload finds them again.
 * - Credentials never leave it: the rows the tests read and every log line
 *   have `custom.password` and `custom.refreshToken` masked.
 * - Not implemented, because no test needs them yet: autosync, MAINTAIN,
 *   disconnect/delete of accounts and the deletion of local calendars that
 *   TbSync does in those flows, re-authentication, legacy migration.
 */

import {
  DEFAULT_RPC_TIMEOUT_MS,
  DISCOVERY,
  ERR,
  HOST_CMD,
  NO_TIMEOUT_CMDS,
  PORT_NAME,
  PROTOCOL_VERSION,
  PROVIDER_CMD,
  PROVIDER_NOTIFY,
  withCode,
} from "./protocol.mjs";
import { STATUS_TYPES } from "./status.mjs";

const STORE_KEY = "calsync.host";
const MAX_ACCOUNT_RERUNS = 2;
const SECRET_KEYS = new Set(["password", "refreshToken"]);

const providers = {}; // providerId -> announce meta
const announces = []; // every announce seen, accepted or not
const ports = new Map(); // providerId -> Port
const pending = new Map(); // requestId -> {resolve, reject, timer}
const setups = new Map(); // setupToken -> {done, result, error}
const accountLocks = new Map(); // accountId -> Promise of the running sync
const setupLocked = new Set(); // accountIds held by SET_ACCOUNT_SETUP_LOCK
const upgradeLocked = new Set(); // providerIds held by SET_PROVIDER_UPGRADE_LOCK
const orphaned = [];
const log = []; // {seq, time, kind, ...}
let state = { sequence: 0, sessions: 0, accounts: {}, folders: {} };
let logSeq = 0;

// ── helpers ───────────────────────────────────────────────────────────────

function masked(value) {
  if (Array.isArray(value)) return value.map(masked);
  if (!value || typeof value !== "object") return value;
  const out = {};
  for (const [k, v] of Object.entries(value)) {
    out[k] = SECRET_KEYS.has(k) && v ? "***" : masked(v);
  }
  return out;
}

function record(kind, entry) {
  logSeq += 1;
  log.push({ seq: logSeq, time: Date.now(), kind, ...masked(entry) });
}

async function save() {
  await browser.storage.local.set({ [STORE_KEY]: state });
}

async function load() {
  const rv = await browser.storage.local.get({ [STORE_KEY]: null });
  if (rv[STORE_KEY]) state = rv[STORE_KEY];
}

function newSession() {
  state.sessions += 1;
  return `s${state.sessions}-${crypto.randomUUID()}`;
}

function accountOf(providerId, accountId) {
  const acc = state.accounts[accountId];
  if (!acc || acc.provider !== providerId) {
    throw withCode(new Error(`unknown account ${accountId}`), ERR.UNKNOWN_ACCOUNT);
  }
  return acc;
}

function folderRows(accountId) {
  return Object.values(state.folders[accountId] ?? {}).sort(
    (a, b) => (a.orderIndex ?? 0) - (b.orderIndex ?? 0),
  );
}

/** Shallow-merge a `custom` patch; a key patched to null is dropped. */
function mergeCustom(prior, patch) {
  const out = { ...(prior ?? {}) };
  for (const [k, v] of Object.entries(patch ?? {})) {
    if (v === null) delete out[k];
    else out[k] = v;
  }
  return out;
}

/** The provider's folder descriptors as rows, keeping what the host owns
 *  (selection, binding, sync status, session) from the prior rows. */
function replaceFolders(accountId, descriptors) {
  const previous = state.folders[accountId] ?? {};
  const next = {};
  descriptors.forEach((d, index) => {
    const prior = previous[d.folderId];
    next[d.folderId] = {
      folderId: d.folderId,
      accountId,
      targetType: d.targetType ?? prior?.targetType ?? null,
      displayName: d.displayName ?? prior?.displayName ?? d.folderId,
      selected: prior?.selected ?? d.selected ?? false,
      readOnly: d.readOnly ?? prior?.readOnly ?? false,
      downloadOnly: prior?.downloadOnly ?? false,
      hidden: !!d.hidden,
      status: prior?.status ?? null,
      warning: prior?.warning ?? null,
      error: prior?.error ?? null,
      lastSyncTime: prior?.lastSyncTime ?? 0,
      orderIndex: index,
      targetID: "targetID" in d ? d.targetID : (prior?.targetID ?? null),
      targetName: "targetName" in d ? d.targetName : (prior?.targetName ?? null),
      targetColor: "targetColor" in d ? d.targetColor : (prior?.targetColor ?? null),
      localChanges: prior?.localChanges ?? 0,
      sessionId: prior?.sessionId ?? newSession(),
      custom: "custom" in d ? mergeCustom({}, d.custom) : (prior?.custom ?? {}),
    };
  });
  state.folders[accountId] = next;
  const removed = Object.values(previous).filter((f) => !next[f.folderId]);
  return removed
    .filter((f) => f.targetID)
    .map((f) => ({ targetID: f.targetID, targetType: f.targetType }));
}

// ── port to the provider ──────────────────────────────────────────────────

function sendCmd(providerId, cmd, args = {}) {
  const port = ports.get(providerId);
  if (!port) {
    return Promise.reject(withCode(new Error("Provider not connected"), ERR.PORT_CLOSED));
  }
  const requestId = `calsync-host-${crypto.randomUUID()}`;
  record("cmd", { cmd, args });
  return new Promise((resolve, reject) => {
    const entry = { providerId, resolve, reject, timer: null };
    if (!NO_TIMEOUT_CMDS.has(cmd)) {
      entry.timer = setTimeout(() => {
        pending.delete(requestId);
        reject(withCode(new Error(`Timeout waiting for ${cmd}`), ERR.TIMEOUT));
      }, DEFAULT_RPC_TIMEOUT_MS);
    }
    pending.set(requestId, entry);
    port.postMessage({ requestId, cmd, args });
  });
}

function openPort(providerId, extensionId) {
  const old = ports.get(providerId);
  if (old) old.disconnect();
  const port = browser.runtime.connect(extensionId, { name: PORT_NAME });
  ports.set(providerId, port);
  port.onMessage.addListener((msg) => onPortMessage(providerId, port, msg));
  port.onDisconnect.addListener(() => {
    if (ports.get(providerId) !== port) return;
    ports.delete(providerId);
    record("port", { providerId, event: "disconnected" });
    for (const [rid, entry] of pending) {
      if (entry.providerId !== providerId) continue;
      pending.delete(rid);
      if (entry.timer) clearTimeout(entry.timer);
      entry.reject(withCode(new Error("Provider disconnected"), ERR.PORT_CLOSED));
    }
  });
  record("port", { providerId, event: "opened", name: PORT_NAME });
}

function onPortMessage(providerId, port, msg) {
  if (!msg || typeof msg !== "object") return;
  if (msg.requestId && (msg.ok === true || msg.ok === false) && !msg.cmd) {
    const entry = pending.get(msg.requestId);
    if (!entry) return;
    pending.delete(msg.requestId);
    if (entry.timer) clearTimeout(entry.timer);
    if (msg.ok) entry.resolve(msg.result);
    else
      entry.reject(
        withCode(
          new Error(msg.error ?? "provider error"),
          msg.errorCode ?? ERR.UNKNOWN_COMMAND,
          msg.errorDetails ?? null,
        ),
      );
    return;
  }
  if (msg.type && !msg.cmd && !msg.requestId) {
    onNotification(providerId, msg.type, msg.payload ?? {});
    return;
  }
  if (msg.requestId && msg.cmd) answerProviderRpc(providerId, port, msg);
}

function onNotification(providerId, type, payload) {
  if (type === PROVIDER_NOTIFY.REPORT_EVENT_LOG) {
    record("event", { providerId, ...payload });
  } else if (type === PROVIDER_NOTIFY.REPORT_SYNC_STATE) {
    record("syncState", { providerId, ...payload });
  } else if (type === PROVIDER_NOTIFY.REPORT_PROGRESS) {
    record("progress", { providerId, ...payload });
  } else {
    record("notify", { providerId, type, payload });
  }
}

async function answerProviderRpc(providerId, port, msg) {
  record("rpc", { providerId, cmd: msg.cmd, args: msg.args ?? {} });
  try {
    const handler = PROVIDER_RPC[msg.cmd];
    if (!handler) {
      throw withCode(new Error(`Unknown command: ${msg.cmd}`), ERR.UNKNOWN_COMMAND);
    }
    const result = await handler(providerId, msg.args ?? {});
    port.postMessage({ requestId: msg.requestId, ok: true, result: result ?? null });
  } catch (err) {
    record("rpcError", { providerId, cmd: msg.cmd, error: err?.message ?? String(err) });
    port.postMessage({
      requestId: msg.requestId,
      ok: false,
      error: err?.message ?? "unknown error",
      errorCode: err?.code ?? ERR.UNKNOWN_COMMAND,
      errorDetails: err?.details ?? null,
    });
  }
}

// ── provider → host commands ──────────────────────────────────────────────

const PROVIDER_RPC = {
  async [PROVIDER_CMD.REGISTER_ACCOUNT](providerId, args) {
    if (!args.accountName) {
      throw withCode(new Error("registerAccount requires accountName"), ERR.UNKNOWN_ACCOUNT);
    }
    state.sequence += 1;
    const accountId = String(state.sequence);
    state.accounts[accountId] = {
      accountId,
      accountName: args.accountName,
      provider: providerId,
      enabled: false,
      error: null,
      lastSyncTime: 0,
      autoSyncIntervalMinutes: 0,
      noAutosyncUntil: 0,
      icon: args.icon ?? null,
      legacyMigrationPending: false,
      custom: args.custom && typeof args.custom === "object" ? args.custom : {},
    };
    state.folders[accountId] = {};
    if (Array.isArray(args.initialFolders)) replaceFolders(accountId, args.initialFolders);
    await save();
    return { accountId };
  },

  async [PROVIDER_CMD.UPDATE_ACCOUNT](providerId, { accountId, patch = {} }) {
    const acc = accountOf(providerId, accountId);
    for (const key of ["accountName", "noAutosyncUntil", "icon"]) {
      if (key in patch) acc[key] = patch[key];
    }
    if (patch.custom && typeof patch.custom === "object") {
      acc.custom = mergeCustom(acc.custom, patch.custom);
    }
    await save();
    return null;
  },

  async [PROVIDER_CMD.UPDATE_FOLDER](providerId, { accountId, folderId, patch = {} }) {
    accountOf(providerId, accountId);
    const folder = state.folders[accountId]?.[folderId];
    if (!folder) throw withCode(new Error(`unknown folder ${folderId}`), ERR.UNKNOWN_FOLDER);
    for (const key of [
      "displayName",
      "targetType",
      "readOnly",
      "targetID",
      "targetName",
      "targetColor",
      "localChanges",
    ]) {
      if (key in patch) folder[key] = patch[key];
    }
    if (patch.custom && typeof patch.custom === "object") {
      folder.custom = mergeCustom(folder.custom, patch.custom);
    }
    await save();
    return null;
  },

  async [PROVIDER_CMD.PUSH_FOLDER_LIST](providerId, { accountId, folders }) {
    accountOf(providerId, accountId);
    if (!Array.isArray(folders)) throw new Error("folders must be an array");
    const removedTargets = replaceFolders(accountId, folders);
    await save();
    return { removedTargets };
  },

  async [PROVIDER_CMD.LIST_ACCOUNTS](providerId) {
    return Object.values(state.accounts).filter((a) => a.provider === providerId);
  },

  async [PROVIDER_CMD.GET_ACCOUNT](providerId, { accountId }) {
    const acc = state.accounts[accountId];
    if (!acc || acc.provider !== providerId) return null;
    return { account: acc, folders: folderRows(accountId) };
  },

  async [PROVIDER_CMD.FOLDER_TARGET_REMOVED](providerId, { targetID }) {
    for (const acc of Object.values(state.accounts)) {
      if (acc.provider !== providerId) continue;
      for (const f of folderRows(acc.accountId)) {
        if (f.targetID !== targetID) continue;
        f.targetID = null;
        f.selected = false;
        f.status = null;
        f.localChanges = 0;
        f.sessionId = newSession(); // the binding is over
      }
    }
    await save();
    return null;
  },

  async [PROVIDER_CMD.REPORT_ORPHANED_TARGETS](providerId, { targets = [] }) {
    orphaned.push(...targets.map((t) => ({ providerId, ...t })));
    return null;
  },

  async [PROVIDER_CMD.REQUEST_SYNC](providerId, { parentId }) {
    for (const acc of Object.values(state.accounts)) {
      if (acc.provider !== providerId || !acc.enabled) continue;
      const folder = folderRows(acc.accountId).find((f) => f.targetID === parentId);
      if (folder) return await syncAccount(acc.accountId, { only: folder.folderId });
    }
    throw withCode(new Error(`no folder is bound to ${parentId}`), ERR.UNKNOWN_FOLDER);
  },

  async [PROVIDER_CMD.SET_PROVIDER_UPGRADE_LOCK](providerId, { locked }) {
    if (locked) upgradeLocked.add(providerId);
    else upgradeLocked.delete(providerId);
    return null;
  },

  async [PROVIDER_CMD.SET_ACCOUNT_SETUP_LOCK](providerId, { accountId, locked }) {
    accountOf(providerId, accountId);
    if (locked) setupLocked.add(accountId);
    else setupLocked.delete(accountId);
    return null;
  },

  async [PROVIDER_CMD.LEGACY_MIGRATION_DONE](providerId, { accountId }) {
    accountOf(providerId, accountId).legacyMigrationPending = false;
    await save();
    return null;
  },
};

// ── discovery ─────────────────────────────────────────────────────────────

browser.runtime.onMessageExternal.addListener(async (msg, sender) => {
  if (!msg || typeof msg !== "object" || !sender?.id) return undefined;
  if (msg.type === DISCOVERY.UNANNOUNCE) {
    for (const [providerId, meta] of Object.entries(providers)) {
      if (meta.extensionId !== sender.id) continue;
      ports.get(providerId)?.disconnect();
      ports.delete(providerId);
      delete providers[providerId];
      record("port", { providerId, event: "unannounced" });
    }
    return { ok: true };
  }
  if (msg.type !== DISCOVERY.ANNOUNCE) return undefined;
  const seen = {
    extensionId: sender.id,
    protocolVersion: msg.protocolVersion ?? null,
    providerVersion: msg.providerVersion ?? null,
    shortName: msg.shortName ?? null,
  };
  let reply;
  if (msg.protocolVersion !== PROTOCOL_VERSION) {
    reply = {
      ok: false,
      error: "protocol-version-mismatch",
      tbsyncProtocolVersion: PROTOCOL_VERSION,
      yours: msg.protocolVersion ?? null,
    };
  } else if (!msg.shortName) {
    reply = { ok: false, error: "missing-shortName", senderId: sender.id };
  } else {
    providers[msg.shortName] = {
      providerId: msg.shortName,
      extensionId: sender.id,
      providerName: msg.providerName ?? msg.shortName,
      providerVersion: msg.providerVersion ?? null,
      capabilities: msg.capabilities ?? {},
      protocolVersion: msg.protocolVersion,
    };
    openPort(msg.shortName, sender.id);
    reply = {
      ok: true,
      protocolVersion: PROTOCOL_VERSION,
      tbsyncVersion: browser.runtime.getManifest().version,
      accepted: true,
    };
  }
  announces.push({ ...seen, reply });
  record("announce", { ...seen, accepted: reply.ok });
  return reply;
});

/** Tell every extension that is already running that the host listens now,
 *  so a provider that started first announces again (protocol 1.3+). */
async function broadcastHostReady() {
  const all = await browser.management.getAll();
  for (const ext of all) {
    if (!ext.enabled || ext.type !== "extension" || ext.id === browser.runtime.id) continue;
    browser.runtime
      .sendMessage(ext.id, { type: DISCOVERY.HOST_READY })
      .catch(() => {});
  }
}

// ── the flows the tests drive ─────────────────────────────────────────────

function withAccountLock(accountId, fn) {
  const before = accountLocks.get(accountId) ?? Promise.resolve();
  const run = before.catch(() => {}).then(fn);
  accountLocks.set(
    accountId,
    run.catch(() => {}),
  );
  return run;
}

function providerOfAccount(accountId) {
  const acc = state.accounts[accountId];
  if (!acc) throw withCode(new Error(`unknown account ${accountId}`), ERR.UNKNOWN_ACCOUNT);
  if (!ports.has(acc.provider)) {
    throw withCode(new Error("Provider not available"), ERR.PROVIDER_UNAVAILABLE);
  }
  if (setupLocked.has(accountId) || upgradeLocked.has(acc.provider)) {
    throw withCode(new Error("Account is being prepared"), ERR.PROVIDER_UNAVAILABLE);
  }
  return acc;
}

function describe(err) {
  return { ok: false, error: err?.message ?? String(err), code: err?.code ?? null, details: err?.details ?? null };
}

/** The sync-coordinator's account loop. `only`: sync just that folder
 *  (REQUEST_SYNC and the tests' per-folder sync run the same prologue). */
function syncAccount(accountId, { only = null } = {}) {
  return withAccountLock(accountId, async () => {
    const acc = providerOfAccount(accountId);
    if (!acc.enabled) throw new Error(`account ${accountId} is not connected`);
    const outcome = { account: null, folders: {}, reruns: 0 };
    try {
      for (let run = 0; run <= MAX_ACCOUNT_RERUNS; run++) {
        outcome.reruns = run;
        outcome.account = await sendCmd(acc.provider, HOST_CMD.SYNC_ACCOUNT, {
          accountId,
          syncJob: "sync",
          syncList: true,
          syncFolders: null,
        });
        if (outcome.account?.type === STATUS_TYPES.ERROR) return outcome;
        const sorted = await sendCmd(acc.provider, HOST_CMD.GET_SORTED_FOLDERS, { accountId });
        if (Array.isArray(sorted) && sorted.length) replaceFolders(accountId, sorted);
        await save();
        let rerun = false;
        for (const folder of folderRows(accountId)) {
          if (!folder.selected || (only && folder.folderId !== only)) continue;
          const result = await syncFolderOnce(acc, folder);
          outcome.folders[folder.folderId] = result;
          if (result?.type === STATUS_TYPES.ACCOUNT_RERUN) {
            rerun = true;
            break;
          }
        }
        if (!rerun) return outcome;
      }
      outcome.account = { type: STATUS_TYPES.ERROR, message: "resync loop: gave up after repeated ACCOUNT_RERUN" };
      return outcome;
    } catch (err) {
      if (err?.code === ERR.AUTH) acc.error = ERR.AUTH;
      outcome.account = describe(err);
      return outcome;
    } finally {
      acc.lastSyncTime = Date.now();
      await save();
    }
  });
}

async function syncFolderOnce(acc, folder) {
  folder.status = "pending";
  folder.warning = null;
  folder.error = null;
  try {
    const result = await sendCmd(acc.provider, HOST_CMD.SYNC_FOLDER, {
      accountId: acc.accountId,
      folderId: folder.folderId,
      syncJob: "sync",
    });
    const row = state.folders[acc.accountId]?.[folder.folderId] ?? folder;
    if (result?.type === STATUS_TYPES.SUCCESS || result?.type === STATUS_TYPES.WARNING) {
      row.status = result.type;
      row.lastSyncTime = Date.now();
      row.warning = result.type === STATUS_TYPES.WARNING ? (result.message ?? null) : null;
    } else if (result?.type !== STATUS_TYPES.ACCOUNT_RERUN) {
      row.status = "error";
      row.error = result?.message ?? "Sync failed";
    }
    return result;
  } catch (err) {
    if (err?.code === ERR.AUTH) throw err;
    const row = state.folders[acc.accountId]?.[folder.folderId] ?? folder;
    row.status = "error";
    row.error = err?.message ?? String(err);
    return { type: STATUS_TYPES.ERROR, ...describe(err) };
  }
}

const api = {
  /** Everything a test may look at: providers, announces, rows (secrets masked). */
  status() {
    return masked({
      protocolVersion: PROTOCOL_VERSION,
      portName: PORT_NAME,
      providers,
      connected: [...ports.keys()],
      announces,
      accounts: state.accounts,
      folders: Object.fromEntries(
        Object.keys(state.folders).map((id) => [id, folderRows(id)]),
      ),
      setupLocked: [...setupLocked],
      orphaned,
    });
  },

  log(since = 0) {
    return log.filter((e) => e.seq > since);
  },

  /** The provider's own setup path: OPEN_SETUP_POPUP. It opens its setup
   *  page and answers once the page reports `tbsync-setup-completed`, after
   *  REGISTER_ACCOUNT and the provider's post-register work. */
  beginSetup(providerId) {
    const setupToken = `calsync-setup-${crypto.randomUUID()}`;
    const entry = { done: false, result: null, error: null };
    setups.set(setupToken, entry);
    sendCmd(providerId, HOST_CMD.OPEN_SETUP_POPUP, { setupToken })
      .then((r) => (entry.result = r))
      .catch((e) => (entry.error = describe(e)))
      .finally(() => (entry.done = true));
    return setupToken;
  },

  setupOutcome(setupToken) {
    const entry = setups.get(setupToken);
    if (!entry) return { done: true, error: { ok: false, error: "unknown setup token" } };
    return { done: entry.done, result: entry.result, error: entry.error };
  },

  /** Connect: ACCOUNT_ENABLED (the provider's first server contact:
   *  OPTIONS, Provision, FolderSync, PUSH_FOLDER_LIST), then enabled. */
  async enableAccount(accountId) {
    return withAccountLock(accountId, async () => {
      const acc = providerOfAccount(accountId);
      try {
        await sendCmd(acc.provider, HOST_CMD.ACCOUNT_ENABLED, { accountId });
      } catch (err) {
        return describe(err);
      }
      acc.enabled = true;
      acc.error = null;
      await save();
      return { ok: true };
    });
  },

  /** Select a folder for syncing (FOLDER_ENABLED). */
  async selectFolder(accountId, folderId) {
    return withAccountLock(accountId, async () => {
      const acc = providerOfAccount(accountId);
      const folder = state.folders[accountId]?.[folderId];
      if (!folder) return { ok: false, error: `unknown folder ${folderId}` };
      try {
        await sendCmd(acc.provider, HOST_CMD.FOLDER_ENABLED, { accountId, folderId });
      } catch (err) {
        return describe(err);
      }
      folder.selected = true;
      await save();
      return { ok: true };
    });
  },

  syncAccount(accountId) {
    return syncAccount(accountId).catch(describe);
  },

  syncFolder(accountId, folderId) {
    return syncAccount(accountId, { only: folderId }).catch(describe);
  },

  /** The provider's queue of user edits not yet pushed (GET_CHANGELOG). */
  async changelog(accountId, folderId) {
    const acc = state.accounts[accountId];
    if (!acc) return describe(new Error(`unknown account ${accountId}`));
    try {
      return { ok: true, entries: await sendCmd(acc.provider, HOST_CMD.GET_CHANGELOG, { accountId, folderId }) };
    } catch (err) {
      return describe(err);
    }
  },
};

window.calsyncHost = {
  /** One entry point for the privileged side: a JSON request in, a JSON
   *  string out, so nothing crosses the compartment boundary but strings. */
  async call(request) {
    const { method, args = [] } = JSON.parse(request);
    if (!Object.hasOwn(api, method)) {
      return JSON.stringify({ ok: false, error: `no host method ${method}` });
    }
    try {
      return JSON.stringify({ ok: true, value: (await api[method](...args)) ?? null });
    } catch (err) {
      return JSON.stringify(describe(err));
    }
  },
  ready: false,
};

await load();
await broadcastHostReady();
window.calsyncHost.ready = true;
