// Rating an answer: a 👍/👎 pair under each answered turn, then an optional comment, sent
// to POST /v1/feedback with the answer's request id, question, text and sources. The turn
// remembers a stored rating (t.feedback, kept with the thread), so a reload says "thanks"
// instead of asking again; a refused or failed send says why in the banner and can be
// sent again.
import { sendFeedback } from "./api.js";
import { el } from "./dom.js";
import { bannerText, feedbackSlot, showBanner } from "./render.js";
import { saveThread } from "./state.js";

/** @typedef {import("./state.js").Turn} Turn */

// The API's bounds (rag.feedback.store): a longer text would be refused, not cut.
const TEXT_MAX = 20000, COMMENT_MAX = 2000, SOURCES_MAX = 50;
const NOT_SENT = "The feedback was not sent: ";
const THANKS = { up: "Thanks: marked as a good answer.", down: "Thanks: marked as a bad answer." };

/**
 * What POST /v1/feedback is sent for `t` (rag.feedback.Feedback).
 * @param {Turn} t @param {"up" | "down"} rating @param {string} comment
 */
export function feedbackBody(t, rating, comment) {
  return {
    rating,
    question: t.question.slice(0, TEXT_MAX),
    answer: t.answer.slice(0, TEXT_MAX),
    comment: comment.slice(0, COMMENT_MAX),
    request_id: t.request_id || null,
    sources: t.sources.slice(0, SOURCES_MAX).map((s) => ({
      source: s.source, document_id: s.document_id, parent_id: s.parent_id, cited: !!(s.cited || s.attributed),
    })),
  };
}

/** Paint the rating control of `t`: offered once it answered, "thanks" once stored. @param {Turn} t */
export function paintFeedback(t) {
  const slot = feedbackSlot(t);
  slot.textContent = "";
  slot.hidden = !(t.outcome === "answered" && t.answer);
  if (slot.hidden) return;
  if (t.feedback) {
    slot.append(el("p", { class: "fb-thanks", role: "status" }, THANKS[t.feedback.rating]));
    return;
  }
  /** @type {"up" | "down" | null} */
  let rating = null;
  const comment = el("textarea", { class: "fb-comment", rows: "2", maxlength: String(COMMENT_MAX),
    "aria-label": "Comment (optional)", placeholder: "What was right or wrong? (optional)" });
  const send = el("button", { type: "submit", class: "fb-send" }, "Send");
  const form = el("form", { class: "fb-form", hidden: "" }, comment, send,
    el("button", { type: "button", class: "linkish", onclick: () => pick(null) }, "Cancel"));
  const button = (value, label, text) => el("button", { type: "button", class: "fb-rate", "data-rating": value,
    "aria-pressed": "false", "aria-label": label, title: label, onclick: () => pick(value) }, text);
  // the words too: a system without an emoji font shows the thumbs as boxes
  const up = button("up", "Good answer", "👍 Yes"), down = button("down", "Bad answer", "👎 No");
  function pick(value) {
    rating = value;
    up.setAttribute("aria-pressed", String(value === "up"));
    down.setAttribute("aria-pressed", String(value === "down"));
    form.hidden = !value;
    if (value) comment.focus();
  }
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    send.disabled = true;
    const result = await sendFeedback(feedbackBody(t, rating, comment.value.trim()));
    send.disabled = false;
    if (!result.ok) {
      showBanner(NOT_SENT + result.message, "error");
      return;
    }
    if (bannerText().startsWith(NOT_SENT)) showBanner(""); // an earlier try's error
    t.feedback = { rating, id: result.id };
    saveThread(); // (a turn a new conversation replaced is in no thread saved)
    paintFeedback(t);
  });
  slot.append(el("span", { class: "muted" }, "Was this answer useful?"), up, down, form);
}
