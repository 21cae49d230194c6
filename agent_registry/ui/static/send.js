// The send form: type, target, a JSON payload checked before sending, rollout options,
// and a confirmation step before a command goes to every LIVE agent.

import { request, segment } from "./api.js";
import { byId, count } from "./dom.js";

const WHOLE = /^\d+$/;
const SHARE = /^(\d+(?:\.\d+)?)\s*%$/;

/** The payload text as a JSON object, or an Error saying what is wrong with it. */
export function parsePayload(text) {
  if (text.trim() === "") return {};
  let value;
  try {
    value = JSON.parse(text);
  } catch (error) {
    return new Error(`The payload is not valid JSON: ${error.message}`);
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    return new Error("The payload must be a JSON object, such as {} or {\"seconds\": 30}.");
  }
  return value;
}

/** "50" -> 50, "10%" -> "10%" (the contract's two forms), or an Error naming the field. */
function amount(text, name, least) {
  const value = text.trim();
  if (WHOLE.test(value) && Number(value) >= least) return Number(value);
  const share = SHARE.exec(value);
  if (share && Number(share[1]) >= least && Number(share[1]) <= 100) return `${share[1]}%`;
  return new Error(`${name} must be a whole number of at least ${least}, or a percentage (${least}–100 %).`);
}

/** The rollout object of the form, null when it is off, or an Error. */
export function parseRollout(data) {
  if (!data.get("rollout")) return null;
  const rollout = {};
  const batchSize = amount(data.get("batchSize"), "Batch size", 1);
  if (batchSize instanceof Error) return batchSize;
  rollout.batchSize = batchSize;
  if (data.get("maxFailures").trim() !== "") {
    const maxFailures = amount(data.get("maxFailures"), "Max failures", 0);
    if (maxFailures instanceof Error) return maxFailures;
    rollout.maxFailures = maxFailures;
  }
  const interval = data.get("batchIntervalSeconds").trim();
  if (interval !== "") {
    const seconds = Number(interval);
    if (!Number.isFinite(seconds) || seconds < 0) return new Error("Batch interval must be 0 or more seconds.");
    rollout.batchIntervalSeconds = seconds;
  }
  return rollout;
}

function endpoint(kind, value) {
  if (kind === "agent") return `/api/v1/agents/${segment(value)}/commands`;
  if (kind === "group") return `/api/v1/agents/groups/${segment(value)}/commands`;
  return "/api/v1/agents/commands";
}

export class SendView {
  constructor({ store, fleet, onSent }) {
    this.store = store;
    this.fleet = fleet;
    this.onSent = onSent;
    this.form = byId("send-form");
    this.message = byId("send-message");
    this.confirmation = byId("send-confirm");
    this.form.addEventListener("input", (event) => this.changed(event.target));
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.submit();
    });
    byId("send-confirm-yes").addEventListener("click", () => this.send());
    byId("send-confirm-no").addEventListener("click", () => this.unconfirm());
    this.changed(null);
  }

  /** Prefill the target (from an agent's view: #/send/agent/ID). */
  target(kind, value) {
    this.form.elements.target.value = kind;
    this.form.elements.targetValue.value = value ?? "";
    this.changed(null);
  }

  changed(field) {
    const kind = this.form.elements.target.value;
    const value = this.form.elements.targetValue;
    value.disabled = kind === "all";
    value.required = kind !== "all";
    byId("send-target-value-label").textContent = kind === "group" ? "Group" : "Agent id";
    // A rollout is for a group or all only (a single-agent rollout is 400).
    byId("send-rollout").disabled = kind === "agent";
    byId("send-rollout-options").hidden = !this.form.elements.rollout.checked;
    if (field?.name === "payload") this.checkPayload();
    this.unconfirm();
  }

  checkPayload() {
    const payload = parsePayload(this.form.elements.payload.value);
    const field = this.form.elements.payload;
    field.setAttribute("aria-invalid", payload instanceof Error ? "true" : "false");
    byId("send-payload-error").textContent = payload instanceof Error ? payload.message : "";
    return payload;
  }

  /** The request the form describes, or an Error saying what to fix. */
  read() {
    const data = new FormData(this.form);
    const kind = data.get("target");
    const value = (data.get("targetValue") ?? "").trim();
    if (kind !== "all" && value === "") return new Error(`Name the ${kind} to send to.`);
    const payload = this.checkPayload();
    if (payload instanceof Error) return payload;
    const body = { type: data.get("type"), payload };
    if (data.get("deliverOnConnect")) body.deliverOnConnect = true;
    if (kind !== "agent") {
      const rollout = parseRollout(data);
      if (rollout instanceof Error) return rollout;
      if (rollout) body.rollout = rollout;
    }
    return { kind, path: endpoint(kind, value), body };
  }

  submit() {
    const wanted = this.read();
    if (wanted instanceof Error) {
      this.say(wanted.message, "error");
      return;
    }
    this.say("");
    if (wanted.kind === "all") {
      const live = this.fleet.counts?.LIVE;
      byId("send-confirm-text").textContent =
        `Send ${wanted.body.type} to every LIVE agent (${count(live)} now)?`;
      this.confirmation.hidden = false;
      byId("send-confirm-yes").focus();
      return;
    }
    this.send();
  }

  unconfirm() {
    this.confirmation.hidden = true;
  }

  async send() {
    const wanted = this.read();
    if (wanted instanceof Error) return;
    this.unconfirm();
    const button = byId("send-submit");
    button.disabled = true;
    this.say("Sending…");
    try {
      const command = await request("POST", wanted.path, wanted.body);
      this.store.put(command);
      this.say(`Sent command ${command.commandId} to ${command.summary.targets} target(s).`, "ok");
      this.onSent(command);
    } catch (error) {
      this.say(error.message, "error");
    } finally {
      button.disabled = false;
    }
  }

  say(text, kind = "") {
    this.message.textContent = text;
    this.message.className = `message ${kind}`;
  }
}
