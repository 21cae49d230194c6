// The dashboard: the views, the hash routes between them, the token prompt, and the
// operator event stream that keeps them live.

import { ApiError, auth, eventStream, request, token, withQuery } from "./api.js";
import { AgentView, AgentsView } from "./agents.js";
import { CommandStore, CommandView, CommandsView } from "./commands.js";
import { byId } from "./dom.js";
import { FleetView } from "./fleet.js";
import { SendView } from "./send.js";

const VIEWS = ["agents", "agent", "commands", "command", "send"];
const DEFAULT_KEEPALIVE_SECONDS = 15;

function notify(error) {
  const notice = byId("notice");
  notice.textContent = error instanceof ApiError || error instanceof Error ? error.message : String(error);
  notice.hidden = false;
}

function clearNotice() {
  byId("notice").hidden = true;
}

const fleet = new FleetView();
const store = new CommandStore();
const agents = new AgentsView({ onError: notify });
const agent = new AgentView({ onError: notify });
new CommandsView(store);
const command = new CommandView(store, { onError: notify });
const send = new SendView({
  store,
  fleet,
  onSent: (sent) => {
    location.hash = `#/commands/${encodeURIComponent(sent.commandId)}`;
  },
});

// --- routes: #/agents, #/agents/ID, #/commands, #/commands/ID, #/send, #/send/KIND/VALUE

let ready = false; // the server answered: views may load

function route() {
  const [name = "agents", ...rest] = location.hash.replace(/^#\/?/, "").split("/");
  const value = rest.length ? decodeURIComponent(rest.join("/")) : null;
  let view = "agents";
  if (name === "agents" && value) view = "agent";
  else if (name === "commands" && value) view = "command";
  else if (name === "commands" || name === "send") view = name;
  for (const candidate of VIEWS) byId(`view-${candidate}`).hidden = candidate !== view;
  const tab = view === "agent" ? "agents" : view === "command" ? "commands" : view;
  for (const link of document.querySelectorAll("nav.tabs a")) {
    if (link.dataset.view === tab) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  if (view === "send" && rest.length === 2) send.target(rest[0], decodeURIComponent(rest[1]));
  if (!ready) return;
  if (view === "agents") agents.load();
  else if (view === "agent") agent.show(value);
  else if (view === "command") command.show(value);
}

// --- the token prompt

const dialog = byId("token-dialog");

function askForToken(reason) {
  byId("token-reason").textContent = reason ?? "";
  byId("token-input").value = "";
  if (!dialog.open) dialog.showModal();
}

auth.addEventListener("unauthenticated", (event) => askForToken(event.detail.message));
byId("token-button").addEventListener("click", () => askForToken(token.get() ? "A token is set for this tab." : ""));
byId("token-form").addEventListener("submit", (event) => {
  if (event.submitter?.value === "cancel") return; // the dialog closes, nothing changes
  if (event.submitter?.value === "forget") token.clear();
  else token.set(byId("token-input").value);
  start();
});

// --- the operator event stream

let stream = null;
let opened = false;

function streamStatus(status) {
  const text = byId("stream-status");
  if (status.state === "open") {
    text.textContent = "Live";
    text.className = "status live";
    clearNotice();
    if (opened) catchUp();
    opened = true;
  } else if (status.state === "lost") {
    text.textContent = `Reconnecting in ${Math.round(status.retryMs / 1000)} s…`;
    text.className = "status lost";
  } else {
    text.textContent = "Not live";
    text.className = "status refused";
    notify(status.error);
  }
}

/** After a reconnect: what changed while no event could arrive. */
function catchUp() {
  agents.load();
  for (const known of store.running()) {
    request("GET", `/api/v1/commands/${encodeURIComponent(known.commandId)}`)
      .then((fresh) => store.put(fresh))
      .catch(() => {}); // purged, or the server is away again: the next event tells
  }
  if (command.id !== null) command.applyEvent({ commandId: command.id });
}

function onEvent(event) {
  let data;
  try {
    data = JSON.parse(event.data);
  } catch {
    return; // not ours to show
  }
  if (event.type === "fleet") fleet.update(data);
  else if (event.type === "agent") {
    agents.applyEvent(data);
    agent.applyEvent(data);
  } else if (event.type === "command") {
    store.put(data);
    command.applyEvent(data);
  }
}

let streamGroup = null;

function openStream(keepaliveSeconds) {
  stream?.close();
  streamGroup = agents.group;
  stream = eventStream(withQuery("/api/v1/events", { group: streamGroup }), {
    onEvent,
    onStatus: streamStatus,
    idleMs: 3 * keepaliveSeconds * 1000 + 5000,
  });
}

// --- start (again, whenever the token changes)

let keepalive = DEFAULT_KEEPALIVE_SECONDS;

async function start() {
  clearNotice();
  ready = opened = false;
  stream?.close();
  try {
    const server = await request("GET", "/api/v1/server");
    keepalive = server.config.keepaliveSeconds ?? DEFAULT_KEEPALIVE_SECONDS;
    byId("server-info").textContent = `v${server.version} · ${server.store} store · auth ${server.auth}`;
    fleet.update(server.fleet);
  } catch (error) {
    byId("stream-status").textContent = "Not live";
    if (error.status !== 401) notify(error); // a 401 opened the token prompt
    return;
  }
  openStream(keepalive);
  ready = true;
  route();
}

byId("agent-filters").addEventListener("filters-changed", () => {
  // The stream's group= follows the table's group filter.
  if (stream && agents.group !== streamGroup) openStream(keepalive);
});
byId("command-lookup").addEventListener("submit", (event) => {
  event.preventDefault();
  const id = new FormData(event.target).get("id").trim();
  if (id) location.hash = `#/commands/${encodeURIComponent(id)}`;
});
window.addEventListener("hashchange", route);
route();
start();
