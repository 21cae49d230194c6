// The fleet's counts, and a chart of LIVE / STALE / DEAD since the page was opened.

import { byId, count, onceAFrame, replace, s } from "./dom.js";

export const STATES = ["LIVE", "STALE", "DEAD"];
const MAX_SAMPLES = 1000; // then the older half is thinned out: memory stays bounded
const WIDTH = 600;
const HEIGHT = 160;
const PAD = { left: 44, right: 8, top: 8, bottom: 22 };

export class FleetView {
  constructor() {
    this.counts = null;
    this.samples = []; // {t, LIVE, STALE, DEAD}, t in ms since the epoch
    this.openedAt = Date.now();
    this.chart = byId("fleet-chart");
    this.draw = onceAFrame(() => this.render());
    // The lines reach "now" even when nothing changes.
    setInterval(() => this.draw(), 5000);
  }

  /** Counts {LIVE, STALE, DEAD, connected} from a fleet event or GET /api/v1/server. */
  update(counts) {
    this.counts = counts;
    for (const name of [...STATES, "connected"]) {
      byId(`count-${name}`).textContent = count(counts[name]);
    }
    byId("count-total").textContent = count(STATES.reduce((sum, name) => sum + (counts[name] ?? 0), 0));
    this.samples.push({ t: Date.now(), ...counts });
    if (this.samples.length > MAX_SAMPLES) this.thin();
    this.draw();
  }

  thin() {
    const half = Math.floor(this.samples.length / 2);
    const older = this.samples.slice(0, half).filter((_, index) => index % 2 === 0);
    this.samples = [...older, ...this.samples.slice(half)];
  }

  render() {
    const samples = this.samples;
    if (samples.length === 0) return;
    const now = Date.now();
    const start = Math.min(this.openedAt, samples[0].t);
    const span = Math.max(now - start, 1000);
    const top = Math.max(1, ...samples.map((sample) => Math.max(...STATES.map((n) => sample[n] ?? 0))));
    const x = (t) => PAD.left + ((t - start) / span) * (WIDTH - PAD.left - PAD.right);
    const y = (v) => HEIGHT - PAD.bottom - (v / top) * (HEIGHT - PAD.top - PAD.bottom);
    const lines = STATES.map((name) => {
      // A step line: each count holds until the next sample.
      const points = [];
      samples.forEach((sample, index) => {
        const value = sample[name] ?? 0;
        if (index > 0) points.push(`${x(sample.t).toFixed(1)},${y(samples[index - 1][name] ?? 0).toFixed(1)}`);
        points.push(`${x(sample.t).toFixed(1)},${y(value).toFixed(1)}`);
      });
      points.push(`${x(now).toFixed(1)},${y(samples.at(-1)[name] ?? 0).toFixed(1)}`);
      return s("polyline", { class: `line line-${name}`, points: points.join(" ") });
    });
    const minutes = Math.round(span / 60000);
    replace(
      this.chart,
      s("line", { class: "axis", x1: PAD.left, y1: y(0), x2: WIDTH - PAD.right, y2: y(0) }),
      s("line", { class: "axis", x1: PAD.left, y1: y(0), x2: PAD.left, y2: y(top) }),
      s("text", { class: "label", x: PAD.left - 4, y: y(top) + 4, "text-anchor": "end" }, count(top)),
      s("text", { class: "label", x: PAD.left - 4, y: y(0), "text-anchor": "end" }, "0"),
      s("text", { class: "label", x: PAD.left, y: HEIGHT - 4 }, "page opened"),
      s("text", { class: "label", x: WIDTH - PAD.right, y: HEIGHT - 4, "text-anchor": "end" },
        minutes >= 1 ? `now (${minutes} min)` : "now"),
      ...lines,
    );
    const last = samples.at(-1);
    this.chart.setAttribute(
      "aria-label",
      `Agents by state since the page was opened; now ${STATES.map((n) => `${count(last[n])} ${n}`).join(", ")}`,
    );
  }
}
