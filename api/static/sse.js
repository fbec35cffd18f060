// Server-sent events: a text/event-stream body parsed into events, nothing else.

/** @typedef {{event: string, data: any}} SseEvent  `data` is the event's JSON, parsed */

/**
 * The events of `stream` in order, up to the `done` event or the end of the stream. A line
 * "event: NAME" names the event ("message" when absent); its "data:" lines are one JSON value.
 * Rejects when reading the stream fails (an AbortError when the request was aborted) or a
 * data field is not JSON.
 * @param {ReadableStream<Uint8Array>} stream
 * @returns {AsyncGenerator<SseEvent>}
 */
export async function* sseEvents(stream) {
  const reader = stream.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      let event = "message", data = "";
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) event = line.slice(6).trim();
        else if (line.startsWith("data:")) data += line.slice(5).trim();
      }
      if (event === "done") return;
      yield { event, data: JSON.parse(data) };
    }
  }
}
