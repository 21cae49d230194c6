// The agent table (server-side keyset paging: never the whole fleet) and one agent's view.

import { request, segment, withQuery } from "./api.js";
import { byId, h, replace, terms, when } from "./dom.js";

const DEBOUNCE_MS = 300;
const RELOAD_MS = 1000; // new agents on the page shown: read it again at most this often

/**
 * The smallest `after` that lists every id starting with `prefix`: ids are 1-128 of
 * A-Z a-z 0-9 . _ : - and sort by code point, so nothing sorts between
 * prefix-with-its-last-character-one-lower followed by "~" and the prefix itself.
 */
export function afterForPrefix(prefix) {
  const last = prefix.charCodeAt(prefix.length - 1);
  return prefix.slice(0, -1) + String.fromCharCode(last - 1) + "~";
}

function stateBadge(state) {
  return h("span", { class: `badge state-${state}` }, state);
}

function connectedText(connected) {
  return connected ? "yes" : "no";
}

export class AgentsView {
  constructor({ onError }) {
    this.onError = onError;
    this.form = byId("agent-filters");
    this.body = byId("agent-rows");
    this.status = byId("agent-page-status");
    this.cursors = []; // `after` of each earlier page, for "Previous"
    this.after = null; // `after` of this page
    this.nextAfter = null;
    this.rows = new Map(); // id -> <tr> of the page shown
    this.loading = 0;
    this.reloading = null;
    this.query = null; // the filters of the page shown
    let timer = null;
    this.form.addEventListener("input", () => {
      clearTimeout(timer);
      timer = setTimeout(() => this.first(), DEBOUNCE_MS);
    });
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      clearTimeout(timer);
      this.first();
    });
    byId("agents-previous").addEventListener("click", () => this.previous());
    byId("agents-next").addEventListener("click", () => this.next());
    byId("agents-refresh").addEventListener("click", () => this.load());
  }

  get filters() {
    const data = new FormData(this.form);
    return {
      status: data.get("status"),
      group: data.get("group").trim(),
      prefix: data.get("search").trim(),
      size: Number(data.get("size")),
    };
  }

  /** The group filter, for the event stream's `group=`. */
  get group() {
    return this.filters.group;
  }

  first() {
    this.cursors = [];
    this.after = null;
    this.form.dispatchEvent(new CustomEvent("filters-changed"));
    return this.load();
  }

  next() {
    if (this.nextAfter === null) return;
    this.cursors.push(this.after);
    this.after = this.nextAfter;
    this.load();
  }

  previous() {
    if (this.cursors.length === 0) return;
    this.after = this.cursors.pop();
    this.load();
  }

  async load() {
    this.query = this.filters; // what covers() compares events with
    const { status, group, prefix, size } = this.query;
    const after = this.after ?? (prefix ? afterForPrefix(prefix) : null);
    const ticket = ++this.loading;
    this.status.textContent = "Loading…";
    let agents;
    try {
      // One more than a page: whether a next page exists, without counting the fleet.
      agents = await request("GET", withQuery("/api/v1/agents", { status, group, after, limit: size + 1 }));
    } catch (error) {
      if (ticket !== this.loading) return;
      this.status.textContent = "";
      replace(this.body);
      this.rows.clear();
      this.onError(error);
      return;
    }
    if (ticket !== this.loading) return; // a newer request is under way
    let shown = agents.slice(0, size);
    const matching = shown.filter((agent) => agent.id.startsWith(prefix));
    const more = agents.length > size && matching.length === shown.length;
    shown = matching;
    this.nextAfter = more ? shown.at(-1).id : null;
    this.rows = new Map(shown.map((agent) => [agent.id, this.row(agent)]));
    replace(this.body, ...this.rows.values());
    const page = this.cursors.length + 1;
    this.status.textContent = shown.length
      ? `Page ${page}: ${shown[0].id} … ${shown.at(-1).id}${more ? "" : " (last page)"}`
      : "No agent matches.";
    byId("agents-previous").disabled = this.cursors.length === 0;
    byId("agents-next").disabled = !more;
  }

  row(agent) {
    return h(
      "tr",
      { "data-agent": agent.id },
      h("td", {}, h("a", { href: `#/agents/${segment(agent.id)}` }, agent.id)),
      h("td", { class: "wide" }, agent.name),
      h("td", {}, agent.group),
      h("td", { "data-field": "state" }, stateBadge(agent.state)),
      h("td", { "data-field": "connected" }, connectedText(agent.connected)),
      h("td", { class: "wide", "data-field": "lastHeartbeatAt" }, when(agent.lastHeartbeatAt)),
      h("td", { class: "wide" }, agent.version ?? "—"),
    );
  }

  /** Whether the page shown would hold this agent, were it read again. */
  covers(agent) {
    if (!this.query) return false;
    const { status, group, prefix } = this.query;
    const from = this.after ?? (prefix ? afterForPrefix(prefix) : null);
    return (
      !agent.deleted &&
      agent.id.startsWith(prefix) &&
      (!group || agent.group === group) &&
      (!status || status.split(",").includes(agent.state)) &&
      (from === null || agent.id > from) &&
      (this.nextAfter === null || agent.id <= this.nextAfter)
    );
  }

  /** An `agent` event: a row shown changes in place; an agent that belongs on the page
   * but is not shown (just registered, or newly matching) makes it read again. */
  applyEvent(agent) {
    const row = this.rows.get(agent.id);
    if (!row) {
      if (this.covers(agent) && !this.reloading) {
        this.reloading = setTimeout(() => {
          this.reloading = null;
          this.load();
        }, RELOAD_MS);
      }
      return;
    }
    if (agent.deleted) {
      row.classList.add("deleted");
      row.querySelector('[data-field="state"]').textContent = "deleted";
      return;
    }
    replace(row.querySelector('[data-field="state"]'), stateBadge(agent.state));
    row.querySelector('[data-field="connected"]').textContent = connectedText(agent.connected);
    row.querySelector('[data-field="lastHeartbeatAt"]').textContent = when(agent.lastHeartbeatAt);
  }
}

const RECENT_DELIVERIES = 50;

export class AgentView {
  constructor({ onError }) {
    this.onError = onError;
    this.id = null;
  }

  async show(id) {
    this.id = id;
    replace(byId("agent-title"), `Agent ${id}`);
    byId("agent-send").href = `#/send/agent/${segment(id)}`;
    replace(byId("agent-fields"));
    replace(byId("agent-deliveries"));
    byId("agent-deliveries-status").textContent = "Loading…";
    try {
      const [agent, deliveries] = await Promise.all([
        request("GET", `/api/v1/agents/${segment(id)}`),
        request("GET", `/api/v1/agents/${segment(id)}/commands`),
      ]);
      if (this.id !== id) return;
      this.fields(agent);
      this.deliveries(deliveries);
    } catch (error) {
      byId("agent-deliveries-status").textContent = "";
      this.onError(error);
    }
  }

  fields(agent) {
    const pairs = [
      ["Name", agent.name],
      ["Group", agent.group],
      ["State", stateBadge(agent.state)],
      ["State since", when(agent.stateChangedAt)],
      ["Connected", connectedText(agent.connected)],
      ["Last heartbeat", when(agent.lastHeartbeatAt)],
      ["Registered", when(agent.registeredAt)],
      ["Version", agent.version ?? "—"],
      ["Routes", agent.routeIds.length ? agent.routeIds.join(", ") : "—"],
      ["Capabilities", JSON.stringify(agent.capabilities)],
    ];
    replace(byId("agent-fields"), ...terms(pairs));
  }

  deliveries(deliveries) {
    const recent = deliveries.slice(0, RECENT_DELIVERIES);
    replace(
      byId("agent-deliveries"),
      ...recent.map((delivery) =>
        h(
          "tr",
          {},
          h("td", {}, h("a", { href: `#/commands/${segment(delivery.commandId)}` }, delivery.commandId)),
          h("td", {}, delivery.type),
          h("td", {}, h("span", { class: `badge delivery-${delivery.status}` }, delivery.status)),
          h("td", { class: "wide" }, when(delivery.createdAt)),
          h("td", { class: "wide" }, delivery.result?.message ?? "—"),
        ),
      ),
    );
    byId("agent-deliveries-status").textContent = deliveries.length
      ? `${recent.length} most recent of ${deliveries.length} deliveries kept by the server.`
      : "No deliveries kept for this agent.";
  }

  /** An `agent` event for the agent shown: read it again (fields only). */
  applyEvent(agent) {
    if (agent.id !== this.id) return;
    if (agent.deleted) {
      replace(byId("agent-fields"), h("dt", {}, "Deleted"), h("dd", {}, "This agent was deleted."));
      return;
    }
    this.fields(agent);
  }
}
