// A Server-Sent Events parser for a fetch() body. EventSource cannot send an
// Authorization header, so the dashboard reads the stream itself (WHATWG HTML § 9.2.6).

/** Feeds text in, calls onEvent({type, data, id}) for each complete event. */
export class SseParser {
  constructor(onEvent) {
    this.onEvent = onEvent;
    this.buffer = "";
    this.lastId = "";
    this.retry = null;
    this.reset();
  }

  reset() {
    this.data = [];
    this.type = "";
  }

  push(text) {
    this.buffer += text;
    // Lines end with CRLF, LF or CR; a CR that ends the buffer may be half of a CRLF.
    const lines = this.buffer.split(/\r\n|\r(?!$)|\n/);
    this.buffer = lines.pop();
    for (const line of lines) this.line(line);
  }

  line(line) {
    if (line === "") {
      this.dispatch();
      return;
    }
    if (line.startsWith(":")) return; // a comment: ": ping", ": connected"
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "data") this.data.push(value);
    else if (field === "event") this.type = value;
    else if (field === "id" && !value.includes("\0")) this.lastId = value;
    else if (field === "retry" && /^\d+$/.test(value)) this.retry = Number(value);
  }

  dispatch() {
    if (this.data.length > 0) {
      this.onEvent({ type: this.type || "message", data: this.data.join("\n"), id: this.lastId });
    }
    this.reset();
  }
}

/**
 * Read a response body to its end through the parser. Resolves when the server ends the
 * stream; rejects when it breaks, or when nothing (not even a ping) arrived for idleMs.
 */
export async function readEvents(body, parser, idleMs) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  try {
    for (;;) {
      const { value, done } = await within(reader.read(), idleMs);
      if (done) return;
      parser.push(value);
    }
  } finally {
    reader.cancel().catch(() => {});
  }
}

function within(promise, ms) {
  let timer;
  const late = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`nothing arrived for ${ms / 1000} s`)), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}
