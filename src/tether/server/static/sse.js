// Server-sent events over fetch(): EventSource cannot send an Authorization header.
//
// parser() follows the HTML spec's event-stream interpretation (fields, comments, ids, retry,
// CR/LF/CRLF line ends); EventStream reconnects after a dropped connection with Last-Event-ID,
// so the service resends only what this page has not seen.

/** A push parser: feed() text as it arrives, onMessage({id, event, data}) per complete event. */
export function parser(onMessage, onRetry = () => {}) {
  let buffer = "";
  let data = [];
  let event = "";
  let lastId = "";

  function line(text) {
    if (text === "") {
      if (data.length) onMessage({ id: lastId, event: event || "message", data: data.join("\n") });
      data = [];
      event = "";
      return;
    }
    if (text.startsWith(":")) return;
    const colon = text.indexOf(":");
    const field = colon < 0 ? text : text.slice(0, colon);
    let value = colon < 0 ? "" : text.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "data") data.push(value);
    else if (field === "event") event = value;
    else if (field === "id" && !value.includes("\0")) lastId = value;
    else if (field === "retry" && /^\d+$/.test(value)) onRetry(Number(value));
  }

  return {
    feed(chunk) {
      buffer += chunk;
      for (;;) {
        const end = buffer.search(/[\r\n]/);
        if (end < 0) return;
        // A CR at the very end may be the first half of a CRLF: wait for the next chunk.
        if (buffer[end] === "\r" && end === buffer.length - 1) return;
        const width = buffer[end] === "\r" && buffer[end + 1] === "\n" ? 2 : 1;
        line(buffer.slice(0, end));
        buffer = buffer.slice(end + width);
      }
    },
  };
}

const sleep = (ms, signal) =>
  new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => { clearTimeout(timer); resolve(); }, { once: true });
  });

/**
 * One run's event stream, kept open until close() or until the owner says the run is over
 * (finished = true) and the service ends the stream. open() again to read what follows.
 */
export class EventStream {
  /**
   * @param {() => Promise<Response>} connect makes the request; receives the Last-Event-ID to send
   * @param {(message: {id: string, event: string, data: string}) => void} onMessage
   * @param {(state: "open" | "retrying" | "closed", error?: Error) => void} onState
   */
  constructor(connect, onMessage, onState = () => {}) {
    this.connect = connect;
    this.onMessage = onMessage;
    this.onState = onState;
    this.lastId = "";
    this.retry = 1000;
    this.finished = false;
    this.running = false;
    this.controller = new AbortController();
  }

  open() {
    this.finished = false;
    if (!this.running) this.#loop();
  }

  close() {
    this.controller.abort();
  }

  async #loop() {
    this.running = true;
    const signal = this.controller.signal;
    let failures = 0;
    while (!signal.aborted) {
      try {
        const response = await this.connect(this.lastId, signal);
        failures = 0;
        if (response.status === 204) break; // the service has nothing more to send
        this.onState("open");
        await this.#read(response.body, signal);
      } catch (error) {
        if (signal.aborted) break;
        if (error.status && error.status < 500 && error.status !== 429) {
          this.onState("closed", error);
          break;
        }
        failures += 1;
        this.onState("retrying", error);
      }
      if (this.finished || signal.aborted) break;
      await sleep(Math.min(this.retry * 2 ** Math.max(failures - 1, 0), 15000), signal);
    }
    this.running = false;
    this.onState("closed");
  }

  async #read(body, signal) {
    const parse = parser(
      (message) => {
        if (message.id) this.lastId = message.id;
        this.onMessage(message);
      },
      (ms) => { this.retry = ms; },
    );
    const reader = body.pipeThrough(new TextDecoderStream()).getReader();
    signal.addEventListener("abort", () => reader.cancel().catch(() => {}), { once: true });
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      parse.feed(value);
    }
  }
}
