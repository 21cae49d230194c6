// Small DOM helpers. Elements are built from text nodes, never from HTML strings, so an
// agent's name or a command's payload can never become markup.

const SVG_NS = "http://www.w3.org/2000/svg";

function fill(node, attrs, children) {
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

/** h("a", {href: "#/x"}, "text", otherNode): an HTML element. */
export function h(tag, attrs = {}, ...children) {
  return fill(document.createElement(tag), attrs, children);
}

/** An SVG element (the chart). */
export function s(tag, attrs = {}, ...children) {
  return fill(document.createElementNS(SVG_NS, tag), attrs, children);
}

export function byId(id) {
  return document.getElementById(id);
}

/** Replace a node's children. */
export function replace(node, ...children) {
  node.replaceChildren();
  fill(node, {}, children);
}

/** [[name, value], ...] as the <dt>/<dd> pairs of a <dl>. */
export function terms(pairs) {
  return pairs.flatMap(([name, value]) => [h("dt", {}, name), h("dd", {}, value)]);
}

/** An ISO timestamp as the browser's local date and time, or a dash. */
export function when(iso) {
  if (!iso) return "—";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleString();
}

const NUMBER = new Intl.NumberFormat();

export function count(n) {
  return typeof n === "number" ? NUMBER.format(n) : "—";
}

/** Call fn at most once per animation frame, however often it is asked for. */
export function onceAFrame(fn) {
  let queued = false;
  return () => {
    if (queued) return;
    queued = true;
    requestAnimationFrame(() => {
      queued = false;
      fn();
    });
  };
}
