// Commands: those seen since the page opened (the API has no list of commands), each with
// a progress bar kept live by `command` events, and one command's deliveries.

import { request, segment } from "./api.js";
import { byId, h, onceAFrame, replace, terms, when } from "./dom.js";

const KEPT = 200; // commands remembered by the page, newest first
const FINAL = ["acknowledged", "failed", "expired", "cancelled"];
// The bar's segments, in order; "delivered" is sent but not yet answered.
const SEGMENTS = ["acknowledged", "failed", "expired", "cancelled", "delivered"];

function finished(summary) {
  return FINAL.reduce((sum, name) => sum + (summary[name] ?? 0), 0);
}

/** RUNNING until every delivery is final (the contract's `state`, for servers without it). */
export function stateOf(command) {
  if (command.state) return command.state;
  return finished(command.summary) < command.summary.targets ? "RUNNING" : "COMPLETED";
}

export function percent(summary) {
  if (!summary.targets) return 100;
  return Math.floor((finished(summary) * 100) / summary.targets);
}

export function progressBar(summary, label) {
  const done = percent(summary);
  const parts = SEGMENTS.filter((name) => summary[name]).map((name) => {
    const part = h("span", { class: `part part-${name}`, title: `${summary[name]} ${name}` });
    part.style.width = `${(summary[name] * 100) / summary.targets}%`; // CSSOM: allowed by the CSP
    return part;
  });
  const counts = SEGMENTS.filter((name) => summary[name]).map((name) => `${summary[name]} ${name}`);
  if (summary.pending) counts.push(`${summary.pending} pending`);
  return h(
    "div",
    { class: "progress" },
    h(
      "div",
      {
        class: "bar",
        role: "progressbar",
        "aria-valuemin": 0,
        "aria-valuemax": 100,
        "aria-valuenow": done,
        "aria-label": label,
      },
      ...parts,
    ),
    h("span", { class: "progress-text" }, `${done} %`, h("span", { class: "wide" }, ` · ${summary.targets} targets: ${counts.join(", ") || "none"}`)),
  );
}

function rolloutText(rollout) {
  const limit = rollout.maxFailures ?? "no limit";
  const done = rollout.sent === undefined ? "" : `; ${rollout.sent} sent, ${rollout.inFlight} in flight, ${rollout.failures} failed or expired`;
  return `batches of ${rollout.batchSize}, max failures ${limit}, ${rollout.batchIntervalSeconds ?? 0} s apart${done}`;
}

export function targetText(target) {
  return target.kind === "all" ? "all LIVE agents" : `${target.kind} ${target.value}`;
}

/** The commands the page knows, by id: from events, sends and look-ups. */
export class CommandStore extends EventTarget {
  constructor() {
    super();
    this.byId = new Map();
  }

  /** A command (with or without deliveries); keeps what an event leaves out. */
  put(command) {
    const id = command.commandId;
    const known = this.byId.get(id);
    this.byId.set(id, { ...known, ...command });
    if (this.byId.size > KEPT) this.byId.delete(this.byId.keys().next().value);
    this.dispatchEvent(new CustomEvent("change", { detail: id }));
  }

  get(id) {
    return this.byId.get(id);
  }

  newestFirst() {
    return [...this.byId.values()].sort((a, b) => (a.createdAt < b.createdAt ? 1 : -1));
  }

  running() {
    return [...this.byId.values()].filter((command) => stateOf(command) === "RUNNING");
  }
}

export class CommandsView {
  constructor(store) {
    this.store = store;
    this.render = onceAFrame(() => this.draw());
    store.addEventListener("change", this.render);
  }

  draw() {
    const commands = this.store.newestFirst();
    byId("commands-empty").hidden = commands.length > 0;
    replace(
      byId("command-rows"),
      ...commands.map((command) =>
        h(
          "tr",
          { "data-command": command.commandId },
          h("td", {}, h("a", { href: `#/commands/${segment(command.commandId)}` }, command.commandId)),
          h("td", {}, command.type),
          h("td", {}, targetText(command.target)),
          h("td", { class: "wide" }, when(command.createdAt)),
          h("td", {}, stateOf(command)),
          h("td", { class: "progress-cell" }, progressBar(command.summary, `Progress of ${command.commandId}`)),
        ),
      ),
    );
  }
}

export class CommandView {
  constructor(store, { onError }) {
    this.store = store;
    this.onError = onError;
    this.id = null;
    this.reading = null; // the GET under way, so that events do not pile reads up
    this.stale = false;
    this.render = onceAFrame(() => this.draw());
    store.addEventListener("change", (event) => {
      if (event.detail !== this.id) return;
      this.render();
    });
    byId("command-cancel").addEventListener("click", () => this.cancel());
  }

  show(id) {
    this.id = id;
    replace(byId("command-title"), `Command ${id}`);
    byId("command-message").textContent = "";
    replace(byId("command-fields"));
    replace(byId("command-progress"));
    replace(byId("delivery-rows"));
    byId("command-cancel").hidden = true;
    this.read();
  }

  /** GET the command (with its deliveries); one at a time, once more if asked meanwhile. */
  async read() {
    if (this.reading) {
      this.stale = true;
      return;
    }
    const id = this.id;
    this.reading = request("GET", `/api/v1/commands/${segment(id)}`);
    try {
      this.store.put(await this.reading);
    } catch (error) {
      if (this.id === id) this.onError(error);
    } finally {
      this.reading = null;
    }
    if (this.stale) {
      this.stale = false;
      this.read();
    }
  }

  /** A `command` event for the command shown: its bar moves now, its deliveries follow. */
  applyEvent(command) {
    if (this.id !== null && command.commandId === this.id) this.read();
  }

  draw() {
    const command = this.store.get(this.id);
    if (!command) return;
    const pairs = [
      ["Type", command.type],
      ["Target", targetText(command.target)],
      ["State", stateOf(command)],
      ["Created", when(command.createdAt)],
      ["Expires", when(command.expiresAt)],
      ["Sent by", command.createdBy ?? "—"],
      ["Payload", command.payload === undefined ? "—" : JSON.stringify(command.payload)],
    ];
    if (command.rollout) pairs.push(["Rollout", rolloutText(command.rollout)]);
    replace(byId("command-fields"), ...terms(pairs));
    replace(byId("command-progress"), progressBar(command.summary, `Progress of command ${command.commandId}`));
    byId("command-cancel").hidden = stateOf(command) !== "RUNNING";
    replace(
      byId("delivery-rows"),
      ...(command.deliveries ?? []).map((delivery) =>
        h(
          "tr",
          {},
          h("td", {}, h("a", { href: `#/agents/${segment(delivery.agentId)}` }, delivery.agentId)),
          h("td", {}, h("span", { class: `badge delivery-${delivery.status}` }, delivery.status)),
          h("td", { class: "wide" }, delivery.sentAt === null ? "not yet" : when(delivery.sentAt)),
          h("td", { class: "wide" }, when(delivery.deliveredAt)),
          h("td", { class: "wide" }, when(delivery.acknowledgedAt)),
          h("td", {}, delivery.result ? `${delivery.result.status}${delivery.result.message ? ": " + delivery.result.message : ""}` : "—"),
        ),
      ),
    );
  }

  async cancel() {
    const id = this.id;
    const button = byId("command-cancel");
    button.disabled = true;
    try {
      this.store.put(await request("POST", `/api/v1/commands/${segment(id)}/cancel`));
      byId("command-message").textContent = "Cancelled: every delivery that was not final is CANCELLED.";
    } catch (error) {
      byId("command-message").textContent = error.message;
    } finally {
      button.disabled = false;
    }
  }
}
