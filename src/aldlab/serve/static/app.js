// aldlab web UI: plain JS, no build step.
// SECURITY: every piece of model output and document text is put on the page with
// textContent or as DOM nodes built from it (never innerHTML), so a document containing
// HTML is shown as text; answers' Markdown is rendered the same way (renderMarkdown).
"use strict";

const HISTORY_KEY = "aldlab.history";
const LANG_KEY = "aldlab.lang";
const HISTORY_MAX = 200;
const CHAT_TURNS_SENT = 3; // earlier question/answer pairs sent as context

const $ = (sel, root = document) => root.querySelector(sel);
// `turns`: this chat's questions ({question, answer, done}); `current`: the AbortController
// of the answer streaming now (null when idle).
const state = { turns: [], current: null, admin: { token: "", actor: "" }, editing: null, lang: "ko" };

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

// ---------------------------------------------------------------- language (issue 25)
// Every label exists in Korean and English and one is shown at a time: Korean unless the
// browser prefers English, then whatever the switch last chose (localStorage). A node made
// with `say` keeps both words (data-ko / data-en), so a switch relabels the whole page,
// earlier answer cards included, without re-rendering. Answers, documents and names are
// data, never translated.

const LANG_ATTRS = ["title", "placeholder", "aria-label"];

function initialLanguage() {
  const saved = localStorage.getItem(LANG_KEY);
  if (saved === "ko" || saved === "en") return saved;
  const preferred = (navigator.languages && navigator.languages[0]) || navigator.language || "";
  return preferred.toLowerCase().startsWith("en") ? "en" : "ko";
}

// The word for now, for text that is read once (a confirm dialog, a document's error text).
function t(ko, en) {
  return state.lang === "en" ? en : ko;
}

function say(node, ko, en) {
  node.dataset.ko = ko;
  node.dataset.en = en;
  node.textContent = t(ko, en);
  return node;
}

function sayAttr(node, attr, ko, en) {
  node.setAttribute(`data-ko-${attr}`, ko);
  node.setAttribute(`data-en-${attr}`, en);
  node.setAttribute(attr, t(ko, en));
  return node;
}

// `el` with a label in both languages.
function label(tag, className, ko, en) {
  return say(el(tag, className), ko, en);
}

function localize(root) {
  const lang = state.lang;
  root.querySelectorAll("[data-ko]").forEach((node) => { node.textContent = node.dataset[lang]; });
  for (const attr of LANG_ATTRS) {
    root.querySelectorAll(`[data-ko-${attr}]`).forEach((node) => node.setAttribute(attr, node.getAttribute(`data-${lang}-${attr}`)));
  }
  root.querySelectorAll("[data-lang]").forEach((node) => { node.hidden = node.dataset.lang !== lang; });
}

function setLanguage(lang, remember = false) {
  state.lang = lang;
  if (remember) localStorage.setItem(LANG_KEY, lang);
  document.documentElement.lang = lang;  // screen readers and hyphenation follow the labels
  localize(document);
  document.querySelectorAll("[data-set-lang]").forEach((b) => b.setAttribute("aria-pressed", String(b.dataset.setLang === lang)));
}

// ---------------------------------------------------------------- errors

// An error with the server's words in both languages (`{"error": {"message_ko", "message_en"}}`).
function apiError(body, status) {
  const detail = body && body.error ? body.error : {};
  const error = new Error(detail.message || `HTTP ${status}`);
  error.ko = detail.message_ko || error.message;
  error.en = detail.message_en || error.message;
  error.code = detail.code;
  return error;
}

function bilingualError(ko, en) {
  const error = new Error(`${ko} / ${en}`);
  Object.assign(error, { ko, en });
  return error;
}

function errorWords(err) {
  if (err instanceof TypeError) return ["서버에 연결할 수 없습니다", "cannot reach the server"];
  return [err.ko || err.message, err.en || err.message];
}

// "오류: ..." / "Error: ..." on `node`, following the language switch.
function sayError(node, err, ko = "오류", en = "Error") {
  const [koText, enText] = errorWords(err);
  return say(node, `${ko}: ${koText}`, `${en}: ${enText}`);
}

// With ALDLAB_API_KEY set on the server, the model and feedback routes need it.
function keyHeaders(headers = {}) {
  const key = sessionStorage.getItem("aldlab.api_key") || "";
  return key ? { ...headers, Authorization: `Bearer ${key}` } : headers;
}

async function api(path, options = {}) {
  const response = await fetch(path, options);
  let body = null;
  try { body = await response.json(); } catch (_) { body = null; }
  if (!response.ok) throw apiError(body, response.status);
  return body;
}

// ---------------------------------------------------------------- tabs

function showTab(name) {
  document.querySelectorAll(".tab").forEach((t) => t.classList.toggle("active", t.dataset.tab === name));
  document.querySelectorAll(".panel").forEach((p) => p.classList.toggle("active", p.id === `panel-${name}`));
  if (name === "history") renderHistory();
}

// ---------------------------------------------------------------- models

async function loadModels() {
  const select = $("#model-select");
  try {
    const health = await api("/api/health").catch(() => ({}));
    $("#api-key-label").hidden = !health.api_key_required;
    const body = await api("/v1/models", { headers: keyHeaders() });
    select.replaceChildren();
    for (const model of body.data) {
      const option = model.id === "base"
        ? label("option", null, "기본 모델", "base model")
        : label("option", null, `파인튜닝: ${model.id}`, `fine-tuned: ${model.id}`);
      option.value = model.id;
      select.append(option);
    }
    // The trained assistant is the default: the server says which (first adapter, else base).
    const fallback = body.data.find((m) => m.id !== "base");
    select.value = health.default_model || (fallback ? fallback.id : "base");
    $("#base-warning").hidden = !health.base_model_warning;
  } catch (err) {
    const option = el("option", null, "base");
    option.value = "base";
    select.replaceChildren(option);
  }
}

// ---------------------------------------------------------------- SSE

async function* readSSE(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      const data = block.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trimStart()).join("\n");
      if (data) yield JSON.parse(data);
    }
  }
}

// ---------------------------------------------------------------- Markdown (a small, safe subset)
// Paragraphs, line breaks, **bold**, `code`, ``` fences, bullet and numbered lists, headings.
// Every node is built with createElement/textContent, so no answer text is ever parsed as
// HTML: "escape first" holds by construction, and a passage quoting <script> stays text.

const MD_INLINE = /(`[^`\n]+`)|(\*\*[^*\n]+?\*\*)|\[([\w가-힣.:-]{1,128})\]/g;
const MD_BULLET = /^\s*[-*•]\s+(.*)$/;
const MD_NUMBERED = /^\s*(\d{1,3})[.)]\s+(.*)$/;
const MD_HEADING = /^\s*#{1,6}\s+(.*)$/;
const MD_FENCE = /^\s*```/;

// `cite(id)` gives a node for a known document id (a link to the passage) or null.
function renderInline(parent, text, cite) {
  let last = 0;
  for (const m of text.matchAll(MD_INLINE)) {
    if (m.index > last) parent.append(text.slice(last, m.index));
    if (m[1]) parent.append(el("code", null, m[1].slice(1, -1)));
    else if (m[2]) {
      const strong = el("strong");
      renderInline(strong, m[2].slice(2, -2), cite);
      parent.append(strong);
    }
    else parent.append(cite(m[3]) || m[0]);
    last = m.index + m[0].length;
  }
  if (last < text.length) parent.append(text.slice(last));
}

function listItem(line) {
  const bullet = MD_BULLET.exec(line);
  if (bullet) return { tag: "ul", text: bullet[1] };
  const numbered = MD_NUMBERED.exec(line);
  if (numbered) return { tag: "ol", text: numbered[2], start: Number(numbered[1]) };
  return null;
}

function renderMarkdown(text, cite = () => null) {
  const root = document.createDocumentFragment();
  let para = null;
  let list = null;
  let code = null;
  for (const line of String(text).replace(/\r\n?/g, "\n").split("\n")) {
    if (code) {  // inside a fence: verbatim until the closing fence
      if (MD_FENCE.test(line)) code = null;
      else code.append(code.childNodes.length ? `\n${line}` : line);
      continue;
    }
    if (MD_FENCE.test(line)) {
      code = el("code");
      const pre = el("pre");
      pre.append(code);
      root.append(pre);
      para = list = null;
      continue;
    }
    if (!line.trim()) { para = list = null; continue; }
    const item = listItem(line);
    const heading = MD_HEADING.exec(line);
    if (item) {
      if (!list || list.tagName.toLowerCase() !== item.tag) {
        list = el(item.tag);
        if (item.start && item.start !== 1) list.start = item.start;
        root.append(list);
      }
      const li = el("li");
      renderInline(li, item.text, cite);
      list.append(li);
      para = null;
    } else if (heading) {
      const h = el("p", "md-heading");
      const strong = el("strong");
      renderInline(strong, heading[1], cite);
      h.append(strong);
      root.append(h);
      para = list = null;
    } else {
      if (para) para.append(el("br"));
      else { para = el("p"); root.append(para); list = null; }
      renderInline(para, line.trim(), cite);
    }
  }
  return root;
}

// ---------------------------------------------------------------- chat

// What the badge measures: how sure retrieval is that a relevant passage was found.
// It says nothing about the answer's wording, hence the separate support badge.
const CONFIDENCE_LABELS = {
  high: ["검색 신뢰도 높음", "retrieval confidence high"],
  medium: ["검색 신뢰도 보통", "retrieval confidence medium"],
  low: ["검색 신뢰도 낮음", "retrieval confidence low"],
};
const CONTEXT_NOTES = {
  model: ["— 모델에게 준 문서 (인용과 별개)", "— given to the model, cited or not"],
  refusedEarly: ["— 검색된 문서 (모델 호출 전 거절)", "— retrieved passages (refused before generation)"],
  contextsOnly: ["— 검색된 문서 (모델 없음)", "— retrieved passages (no model)"],
};

function newAnswerCard(question, model, replacing) {
  const card = $("#answer-template").content.firstElementChild.cloneNode(true);
  localize(card);
  $(".question-bubble", card).textContent = question;
  $(".model-tag", card).textContent = model;
  if (replacing) replacing.replaceWith(card);
  else $("#messages").append(card);
  card.scrollIntoView({ block: "end" });
  return card;
}

// One answer being shown: its card, the raw text so far and the passages it may cite.
function answerView(card, turn) {
  const view = { card, turn, raw: "", contexts: new Map(), contextNote: "model" };
  card.view = view;
  return view;
}

function citeLink(view, id) {
  if (!view.contexts.has(id)) return null;  // "[sccm]" and unknown ids stay text
  const link = el("a", "cite-link", `[${id}]`);
  link.href = `#doc-${encodeURIComponent(id)}`;
  link.dataset.docId = id;
  sayAttr(link, "title", "문서 보기", "Open the passage");
  link.addEventListener("click", (event) => {
    event.preventDefault();
    openDocument(id, view.contexts.get(id));
  });
  return link;
}

function renderAnswer(view) {
  $(".answer-text", view.card).replaceChildren(renderMarkdown(view.raw, (id) => citeLink(view, id)));
}

function showContexts(view, contexts) {
  const box = $(".contexts", view.card);
  const list = $(".context-list", box);
  list.replaceChildren();
  for (const context of contexts) {
    view.contexts.set(context.id, context);
    const li = el("li");
    const button = el("button", "context-open", `[${context.id}] ${context.title || ""}`.trim());
    button.type = "button";
    button.dataset.docId = context.id;
    sayAttr(button, "title", `검색 점수 ${context.score}`, `Retrieval score ${context.score}`);
    button.addEventListener("click", () => openDocument(context.id, context));
    const text = context.text || "";
    li.append(button, el("span", "context-snippet", text.length > 140 ? `${text.slice(0, 140)}…` : text));
    list.append(li);
  }
  $(".contexts-count", box).textContent = `(${contexts.length})`;
  say($(".contexts-note", box), ...CONTEXT_NOTES[view.contextNote]);
  box.hidden = contexts.length === 0;
}

function citationBasis(citation) {
  if (citation.how === "passage") return ["1위 문서 그대로", "best passage verbatim"];
  if (citation.how === "later_part") return ["질문 뒷부분의 문서 그대로", "for the question's later part, verbatim"];
  if (citation.how === "overlap") {
    const support = Number(citation.support || 0).toFixed(2);
    return [`근거 일치 ${support}`, `supported ${support}`];
  }
  return ["인용", "cited"];
}

// Whether the best-ranked passage backs the answer: a separate question from retrieval
// confidence (issue 25: a 0.97 badge sat on an answer to a different question).
function supportVerdict(result, contextsOnly) {
  const answered = !contextsOnly && !result.refused && result.used_retrieval && result.model && result.contexts.length;
  if (!answered) return null;
  const best = result.contexts[0];
  const cited = result.citations.find((c) => c.id === best.id);
  if (cited && cited.how === "passage") return { level: "ok", text: ["1위 문서를 그대로 보여 줌", "best passage shown verbatim"] };
  if (cited && cited.support > 0) {
    const support = cited.support.toFixed(2);
    return { level: "ok", text: [`1위 문서가 뒷받침함 ${support}`, `supported by the best passage ${support}`] };
  }
  if (cited) return { level: "ok", text: ["1위 문서를 인용함", "cites the best passage"] };
  if (result.citations.length) return { level: "warn", text: ["1위 문서의 뒷받침 없음 (다른 문서 인용)", "not backed by the best passage (cites another)"] };
  return { level: "warn", text: ["어느 문서도 뒷받침하지 않음", "no passage supports it"] };
}

function showConfidence(card, result, contextsOnly) {
  const badge = $(".confidence-badge", card);
  const [ko, en] = CONFIDENCE_LABELS[result.confidence_label] || [result.confidence_label, result.confidence_label];
  const score = result.confidence.toFixed(2);
  say(badge, `${ko} ${score}`, `${en} ${score}`);
  badge.className = `confidence-badge conf-${result.confidence_label}`;
  const why = result.confidence_explanation || {};
  sayAttr(badge, "title", why.ko || "", why.en || "");
  badge.hidden = false;
  const explanation = $(".confidence-explanation", card);
  say(explanation, why.ko || "", why.en || "");
  explanation.hidden = false;
  const verdict = supportVerdict(result, contextsOnly);
  const support = $(".support-badge", card);
  support.hidden = !verdict;
  if (verdict) {
    say(support, ...verdict.text);
    support.className = `support-badge support-${verdict.level}`;
  }
}

// Citations are only what the answer cites or is supported by; the contexts it was
// given are listed separately, so a context is never shown as a citation.
function showCitations(view, result) {
  const citations = $(".citations", view.card);
  citations.replaceChildren(label("span", "muted", "인용:", "Citations:"));
  for (const citation of result.citations) {
    const button = el("button", "citation", `[${citation.id}] ${citation.title || ""}`.trim());
    button.type = "button";
    button.dataset.docId = citation.id;
    button.append(label("span", "basis", ...citationBasis(citation)));
    button.addEventListener("click", () => openDocument(citation.id, view.contexts.get(citation.id)));
    citations.append(button);
  }
  const answered = view.contextNote !== "contextsOnly" && !result.refused && result.used_retrieval && result.model;
  if (!result.citations.length && answered) {
    citations.append(label("span", "no-citation",
      "인용 없음 — 답변이 문서를 인용하지 않았고 어느 문서도 문장을 뒷받침하지 않습니다",
      "No citation: the answer cites no document and no context supports it"));
  }
  citations.hidden = !result.citations.length && !answered;
}

function fillAnswerCard(view, result) {
  const { card } = view;
  card.dataset.answerId = result.answer_id;
  $(".model-tag", card).textContent = result.model || "contexts";
  showContexts(view, result.contexts);
  view.raw = result.answer;
  renderAnswer(view);
  showConfidence(card, result, view.contextNote === "contextsOnly");
  if (result.fallback_note) {
    $(".answer-text", card).after(label("p", "fallback-note", result.fallback_note.ko, result.fallback_note.en));
  }
  if (result.later_part_note) {
    $(".answer-text", card).after(label("p", "fallback-note", `${result.later_part_note.ko} (${result.later_part})`,
      `${result.later_part_note.en} (${result.later_part})`));
  }
  showCitations(view, result);
  const cited = new Set(result.citations.map((c) => c.id));
  card.querySelectorAll(".context-open").forEach((b) => b.classList.toggle("cited", cited.has(b.dataset.docId)));
  setupFeedback(card, result.answer_id, result.answer_token);
}

// ---------------------------------------------------------------- waiting status

function startStatus(card) {
  const line = $(".status-line", card);
  const started = Date.now();
  const status = { state: "queued", ahead: 0 };
  const render = () => {
    const seconds = Math.round((Date.now() - started) / 1000);
    if (status.state === "generating") {
      say(line, `답변 생성 중 · ${seconds}초`, `Generating · ${seconds} s`);
    } else if (status.ahead > 0) {
      say(line, `대기 중: 앞에 ${status.ahead}개 질문 (${status.ahead + 1}번째) · ${seconds}초`,
        `Queued at position ${status.ahead + 1} · ${seconds} s`);
    } else {
      say(line, `준비 중 · ${seconds}초`, `Starting · ${seconds} s`);
    }
  };
  line.hidden = false;
  render();
  const timer = setInterval(render, 1000);
  return {
    update(event) { status.state = event.state; status.ahead = event.ahead || 0; render(); },
    stop() { clearInterval(timer); line.hidden = true; },
  };
}

function setupFeedback(card, answerId, answerToken) {
  const box = $(".feedback", card);
  box.hidden = false;
  const status = $(".fb-status", box);
  let rating = null;
  const send = async () => {
    say(status, "전송 중…", "Sending…");
    try {
      await api("/api/feedback", {
        method: "POST",
        headers: keyHeaders({ "Content-Type": "application/json" }),
        body: JSON.stringify({
          answer_id: answerId,
          answer_token: answerToken,
          rating,
          comment: $(".fb-comment", box).value,
          correction: $(".fb-correction", box).value,
        }),
      });
      say(status, "피드백 감사합니다 — 관리자 검토 후 학습에 쓰입니다", "Thanks: it is used for training after an admin reviews it");
      updateHistory(answerId, { feedback: rating });
    } catch (err) {
      sayError(status, err, "피드백 실패", "Feedback failed");
    }
  };
  for (const [cls, value] of [[".fb-like", "like"], [".fb-dislike", "dislike"]]) {
    $(cls, box).addEventListener("click", () => {
      rating = value;
      $(".fb-like", box).classList.toggle("chosen", value === "like");
      $(".fb-dislike", box).classList.toggle("chosen", value === "dislike");
      $(".fb-detail", box).hidden = false;
      send();
    });
  }
  $(".fb-submit", box).addEventListener("click", () => { if (rating) send(); });
}

// ---------------------------------------------------------------- asking, stopping, regenerating

function chatHistory(turn) {
  const earlier = state.turns.slice(0, state.turns.indexOf(turn)).filter((t) => t.done);
  return earlier.slice(-CHAT_TURNS_SENT).flatMap((t) => [
    { role: "user", content: t.question },
    { role: "assistant", content: t.answer },
  ]);
}

// While an answer streams, "Ask" is a Stop button (Open WebUI's habit), and the other
// cards' regenerate buttons wait: one question at a time per page.
function setGenerating(on) {
  const button = $("#ask-button");
  if (on) say(button, "정지", "Stop");
  else say(button, "질문", "Ask");
  button.classList.toggle("stop", on);
  if (on) sayAttr(button, "aria-label", "답변 생성 정지", "Stop generating");
  else sayAttr(button, "aria-label", "질문 보내기", "Ask");
  document.querySelectorAll(".regenerate").forEach((b) => { b.disabled = on; });
}

function stopAnswer() {
  if (state.current) state.current.abort();
}

async function postQuestion(turn, model, signal) {
  const response = await fetch("/api/ask?stream=true", {
    method: "POST",
    signal,
    headers: keyHeaders({ "Content-Type": "application/json" }),
    body: JSON.stringify({
      question: turn.question, model, history: chatHistory(turn),
      use_retrieval: $("#use-retrieval").checked,
      context_only: $("#context-only").checked,
    }),
  });
  if (!response.ok) {
    let body = null;
    try { body = await response.json(); } catch (_) { body = null; }
    throw apiError(body, response.status);
  }
  return response;
}

// Reads the event stream into the card; returns the final answer event.
async function streamInto(view, response, status) {
  let result = null;
  for await (const event of readSSE(response)) {
    if (event.type === "token") {
      status.stop();
      view.raw += event.text;
      renderAnswer(view);
    } else if (event.type === "status") status.update(event);
    else if (event.type === "contexts") {
      // Settled before the model (the refusal gate): these passages were never given to it.
      if (event.generates === false && view.contextNote === "model") view.contextNote = "refusedEarly";
      showContexts(view, event.contexts);
    } else if (event.type === "answer") result = event;
    else if (event.type === "error") throw apiError(event, 500);
  }
  if (!result) throw bilingualError("응답이 끊겼습니다", "the answer stream ended early");
  return result;
}

function showStopped(view) {
  renderAnswer(view);  // the partial text stays
  $(".stopped-note", view.card).hidden = false;
  view.card.classList.add("stopped");
}

function showFailed(view, err) {
  const errorBox = $("#chat-error");
  sayError(errorBox, err);
  errorBox.hidden = false;
  view.card.classList.add("failed");
}

function setupAnswerActions(view) {
  const box = $(".answer-actions", view.card);
  box.hidden = false;
  const copy = $(".copy-answer", box);
  copy.addEventListener("click", async () => {
    const ok = await copyText(view.raw);
    if (ok) say(copy, "복사됨", "Copied");
    else say(copy, "복사 실패", "Copy failed");
    setTimeout(() => say(copy, "복사", "Copy"), 2000);
  });
  copy.hidden = !view.raw;
  const regenerate = $(".regenerate", box);
  regenerate.disabled = Boolean(state.current);
  regenerate.addEventListener("click", () => {
    if (!state.current) ask(view.turn, view.card);
  });
}

// The Clipboard API exists only in secure contexts (https, localhost); a server reached
// over the LAN by plain http falls back to the old selection copy.
async function copyText(text) {
  try {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(text);
      return true;
    }
  } catch (_) { /* fall through to the selection copy */ }
  const area = el("textarea", "offscreen");
  area.value = text;
  document.body.append(area);
  area.select();
  let ok = false;
  try { ok = document.execCommand("copy"); } catch (_) { ok = false; }
  area.remove();
  return ok;
}

async function ask(turn, replacing = null) {
  const model = $("#model-select").value || "base";
  const view = answerView(newAnswerCard(turn.question, model, replacing), turn);
  turn.done = false;  // until this answer completes, it is not history for later questions
  if ($("#context-only").checked) view.contextNote = "contextsOnly";
  const answerText = $(".answer-text", view.card);
  answerText.classList.add("streaming");
  $("#chat-error").hidden = true;
  const controller = new AbortController();
  state.current = controller;
  setGenerating(true);
  const status = startStatus(view.card);
  try {
    const response = await postQuestion(turn, model, controller.signal);
    const result = await streamInto(view, response, status);
    fillAnswerCard(view, result);
    Object.assign(turn, { answer: result.answer, done: true });
    saveHistory({
      answer_id: result.answer_id, question: turn.question, answer: result.answer, model: result.model,
      confidence_label: result.confidence_label, citations: result.citations, time: new Date().toISOString(),
    });
  } catch (err) {
    if (controller.signal.aborted) showStopped(view);
    else showFailed(view, err);
  } finally {
    status.stop();
    answerText.classList.remove("streaming");
    state.current = null;
    setGenerating(false);
    setupAnswerActions(view);
  }
}

function askNew(question) {
  const turn = { question, answer: "", done: false };
  state.turns.push(turn);
  return ask(turn);
}

// ---------------------------------------------------------------- documents

async function openDocument(docId, context) {
  let doc = context && context.text ? context : null;
  try {
    doc = await api(`/api/documents/${encodeURIComponent(docId)}`, { headers: keyHeaders() });
  } catch (err) {
    const [ko, en] = errorWords(err);
    if (!doc) doc = { id: docId, title: "", text: t(`문서를 불러오지 못했습니다: ${ko}`, `Could not load the document: ${en}`) };
  }
  $("#doc-title").textContent = doc.title || doc.id;
  $("#doc-id").textContent = doc.id;
  $("#doc-topic").textContent = doc.topic ? `· ${doc.topic}` : "";
  $("#doc-text").textContent = doc.text;
  const dialog = $("#doc-dialog");
  if (!dialog.open) dialog.showModal();
}

// ---------------------------------------------------------------- history (localStorage)

function loadHistory() {
  try { return JSON.parse(localStorage.getItem(HISTORY_KEY) || "[]"); } catch (_) { return []; }
}

function saveHistory(entry) {
  const items = [entry, ...loadHistory()].slice(0, HISTORY_MAX);
  localStorage.setItem(HISTORY_KEY, JSON.stringify(items));
}

function updateHistory(answerId, changes) {
  const items = loadHistory().map((h) => (h.answer_id === answerId ? { ...h, ...changes } : h));
  localStorage.setItem(HISTORY_KEY, JSON.stringify(items));
}

function renderHistory() {
  const list = $("#history-list");
  list.replaceChildren();
  const items = loadHistory();
  if (!items.length) list.append(label("li", "muted", "기록이 없습니다", "No history yet"));
  for (const item of items) {
    const li = el("li", "history-item");
    const q = el("button", "history-question", item.question);
    q.type = "button";
    sayAttr(q, "title", "다시 묻기", "Ask again");
    q.addEventListener("click", () => { $("#question").value = item.question; showTab("chat"); $("#question").focus(); });
    const meta = el("span", "muted", ` ${item.model} · ${new Date(item.time).toLocaleString()}${item.feedback ? ` · ${item.feedback === "like" ? "👍" : "👎"}` : ""}`);
    li.append(q, meta, el("p", "history-answer", item.answer));
    list.append(li);
  }
}

// ---------------------------------------------------------------- admin

function adminHeaders(json = false) {
  const headers = { Authorization: `Bearer ${state.admin.token}` };
  // Header values must be ISO-8859-1: a Korean name ("김공정") is sent percent-encoded
  // and decoded by the server (aldlab.serve.deps.actor_name).
  if (state.admin.actor) headers["X-Aldlab-Actor"] = encodeURIComponent(state.admin.actor);
  if (json) headers["Content-Type"] = "application/json";
  return headers;
}

async function adminConnect(event) {
  event.preventDefault();
  state.admin.token = $("#admin-token").value.trim();
  state.admin.actor = $("#admin-actor").value.trim();
  sessionStorage.setItem("aldlab.admin.token", state.admin.token);
  sessionStorage.setItem("aldlab.admin.actor", state.admin.actor);
  await refreshDocuments();
  await refreshReview();
  await refreshImprove();
}

async function refreshDocuments() {
  const status = $("#admin-status");
  const q = $("#kb-search").value.trim();
  try {
    const body = await api(`/api/admin/documents?limit=500&q=${encodeURIComponent(q)}`, { headers: adminHeaders() });
    say(status, "연결됨", "Connected");
    $("#admin-area").hidden = false;
    say($("#kb-total"), `문서 ${body.total}개`, `${body.total} documents`);
    const list = $("#kb-list");
    list.replaceChildren();
    for (const doc of body.documents) {
      const li = el("li", "kb-item");
      const button = el("button", "kb-open", `[${doc.id}] ${doc.title}`);
      button.type = "button";
      button.dataset.docId = doc.id;
      button.addEventListener("click", () => editDocument(doc));
      li.append(button);
      list.append(li);
    }
  } catch (err) {
    $("#admin-area").hidden = true;
    sayError(status, err);
  }
}

function editDocument(doc) {
  state.editing = doc ? doc.id : null;
  if (doc) say($("#kb-form-title"), `문서 편집: ${doc.id}`, `Edit ${doc.id}`);
  else say($("#kb-form-title"), "새 문서", "New document");
  $("#kb-id").value = doc ? doc.id : "";
  $("#kb-id").readOnly = Boolean(doc);
  $("#kb-title").value = doc ? doc.title : "";
  $("#kb-topic").value = doc ? doc.topic : "general";
  $("#kb-keywords").value = doc ? doc.keywords.join(", ") : "";
  $("#kb-text").value = doc ? doc.text : "";
  $("#kb-questions").value = doc && doc.questions ? doc.questions.join("\n") : "";
  $("#kb-delete").hidden = !doc;
  say($("#kb-form-status"), "", "");
}

async function saveDocument(event) {
  event.preventDefault();
  const status = $("#kb-form-status");
  const fields = {
    title: $("#kb-title").value.trim(),
    topic: $("#kb-topic").value.trim() || "general",
    keywords: $("#kb-keywords").value.split(",").map((k) => k.trim()).filter(Boolean),
    text: $("#kb-text").value,
    questions: $("#kb-questions").value.split("\n").map((q) => q.trim()).filter(Boolean),
  };
  say(status, "저장 중… (색인 갱신 포함)", "Saving… (reindexing)");
  try {
    let body;
    if (state.editing) {
      body = await api(`/api/admin/documents/${encodeURIComponent(state.editing)}`, {
        method: "PUT", headers: adminHeaders(true), body: JSON.stringify(fields),
      });
    } else {
      body = await api("/api/admin/documents", {
        method: "POST", headers: adminHeaders(true), body: JSON.stringify({ id: $("#kb-id").value.trim(), ...fields }),
      });
    }
    editDocument(body.document);
    say(status, "저장됨", "Saved");
    await refreshDocuments();
    watchReindex(body.reload);
  } catch (err) {
    sayError(status, err);
  }
}

async function deleteDocument() {
  if (!state.editing) return;
  if (!window.confirm(t(`문서 ${state.editing} 을(를) 삭제할까요?`, `Delete ${state.editing}?`))) return;
  const status = $("#kb-form-status");
  try {
    const body = await api(`/api/admin/documents/${encodeURIComponent(state.editing)}`, { method: "DELETE", headers: adminHeaders() });
    editDocument(null);
    say(status, "삭제됨", "Deleted");
    await refreshDocuments();
    watchReindex(body.reload);
  } catch (err) {
    sayError(status, err);
  }
}

async function reloadIndex() {
  const status = $("#admin-status");
  say(status, "색인 갱신 중… (수 분 걸릴 수 있음)", "Reloading… (may take minutes)");
  try {
    const body = await api("/api/admin/reload", { method: "POST", headers: adminHeaders() });
    const r = body.reload || {};
    if (r.ok === false) say(status, `색인 갱신 실패: ${r.error}`, `Reload failed: ${r.error}`);
    else say(status, `색인 갱신 완료 (${r.seconds}초)`, `Reloaded (${r.seconds} s)`);
  } catch (err) {
    sayError(status, err);
  }
}

async function exportFeedback() {
  const status = $("#admin-status");
  try {
    const response = await fetch("/api/admin/feedback/export", { headers: adminHeaders() });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const url = URL.createObjectURL(await response.blob());
    const link = el("a");
    link.href = url;
    link.download = "aldlab-feedback.jsonl";
    link.click();
    URL.revokeObjectURL(url);
  } catch (err) {
    sayError(status, err);
  }
}

// ---------------------------------------------------------------- reindex status and upload

// An edit returns at once and the index rebuilds in the background (minutes for the
// shipped KB on a CPU box); until it is done the new text cannot be retrieved. So the
// admin is told when it is: /api/health's `reload` is polled until no rebuild runs.
const INDEX_POLL_MS = 700;
// The server caps request bodies at 64 KiB (ServeSettings.max_body_bytes), JSON included.
const UPLOAD_MAX_BYTES = 60 * 1024;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function watchReindex(reload) {
  if (!reload || !reload.scheduled) return;
  const line = $("#kb-index-status");
  const watch = Symbol("reindex");
  state.indexWatch = watch;  // a later edit's watcher takes over the line
  const started = Date.now();
  let current = reload;
  line.hidden = false;
  while (current.running && state.indexWatch === watch) {
    line.className = "index-status running";
    const seconds = Math.round((Date.now() - started) / 1000);
    say(line, `색인 중… ${seconds}초 — 끝나면 새 내용이 검색됩니다`, `Indexing… ${seconds} s: the new text is searchable once this is done`);
    await sleep(INDEX_POLL_MS);
    try { current = (await api("/api/health")).reload; } catch (_) { /* server busy: ask again */ }
  }
  if (state.indexWatch !== watch) return;
  const failed = current.ok === false;
  line.className = `index-status ${failed ? "failed" : "done"}`;
  if (failed) {
    say(line, `색인 실패 — 이전 색인으로 답합니다: ${current.error || ""}`,
      `Indexing failed, answers use the previous index: ${current.error || ""}`);
  } else {
    say(line, "색인 완료 — 이제 검색됩니다", "Indexed: the new text is now searchable");
  }
}

// [ko, en] for what an upload did.
function uploadSummary(name, body) {
  const parts = [
    [body.added.length, "추가", "added"],
    [body.unchanged.length, "이미 있음", "already there"],
    [body.duplicates.length, "중복이라 건너뜀", "duplicates skipped"],
    [body.near_duplicates.length, "유사 중복이라 건너뜀", "near-duplicates skipped"],
    [body.id_conflicts.length, "id 충돌 (기존 유지)", "id conflicts, existing kept"],
    [body.conflicts.length, "정의 충돌이라 건너뜀", "definition conflicts skipped"],
  ].filter(([n]) => n > 0);
  const ko = parts.map(([n, k]) => `${k} ${n}개`).join(", ");
  const en = parts.map(([n, , e]) => `${n} ${e}`).join(", ");
  const ids = body.added.map((d) => d.id).join(", ");
  const tail = ids ? ` — ${ids}` : "";
  return [`${name}: 문서 ${ko}${tail}`, `${name}: documents ${en}${tail}`];
}

async function uploadDocuments() {
  const input = $("#kb-upload");
  const file = input.files[0];
  if (!file) return;
  const status = $("#kb-upload-status");
  try {
    if (file.size > UPLOAD_MAX_BYTES) {
      throw bilingualError(`파일이 너무 큽니다 (${Math.ceil(file.size / 1024)} KB, 최대 60 KB): 서버에서 aldlab kb import 를 쓰세요`,
        `file too large (${Math.ceil(file.size / 1024)} KB, max 60 KB): use aldlab kb import on the server`);
    }
    say(status, `올리는 중… ${file.name}`, `Uploading ${file.name}…`);
    const body = await api("/api/admin/documents/import", {
      method: "POST", headers: adminHeaders(true), body: JSON.stringify({ filename: file.name, content: await file.text() }),
    });
    say(status, ...uploadSummary(file.name, body));
    await refreshDocuments();
    await watchReindex(body.reload);
  } catch (err) {
    sayError(status, err);
  } finally {
    input.value = "";  // choosing the same file again uploads it again
  }
}

// ---------------------------------------------------------------- feedback review

// `value` is data (shown as it is) or, for a label of ours, [ko, en].
function reviewField(list, [ko, en], value, className) {
  if (value === null || value === undefined || value === "") return;
  list.append(label("dt", null, ko, en));
  list.append(Array.isArray(value) ? label("dd", className || null, ...value) : el("dd", className || null, value));
}

// Which model answered: the registry version when the answer came from a registered model.
function modelVersionTag(item) {
  return item.model_version
    ? label("span", "model-version", `모델 버전 ${item.model_version}`, `model version ${item.model_version}`)
    : label("span", "model-version unregistered", "미등록 모델", "unregistered model");
}

const REVIEW_STATUS = { pending: ["대기", "pending"], approved: ["승인", "approved"], rejected: ["거절", "rejected"] };

function reviewItem(item) {
  const li = el("li", "review-item");
  li.dataset.feedbackId = item.feedback_id;
  li.dataset.revision = item.revisions;
  const review = item.review || {};
  const head = el("div", "review-head");
  const rating = item.feedback === "like" ? ["좋아요", "like"] : ["싫어요", "dislike"];
  head.append(
    el("strong", null, `#${item.feedback_id}`),
    label("span", null, rating[0], rating[1]),
    label("span", "muted", `수정본 ${item.revisions}`, `revision ${item.revisions}`),
    el("span", "model-tag", item.model),
    modelVersionTag(item),
    el("span", "muted", item.timestamp.slice(0, 19)),
  );
  li.append(head);
  const dl = el("dl");
  for (const turn of item.history || []) reviewField(dl, [`기록 (${turn.role})`, `history (${turn.role})`], turn.content);
  if ((item.history || []).length) {
    reviewField(dl, ["참고", "note"], ["대화 기록에 의존한 답변: 승인해도 학습 데이터에서는 제외됩니다",
      "Depends on chat history: left out of training even if approved"]);
  }
  reviewField(dl, ["질문", "question"], item.question);
  reviewField(dl, ["답변", "answer"], item.answer);
  reviewField(dl, ["의견", "comment"], item.comment);
  reviewField(dl, ["정정", "correction"], item.correction, "correction");
  reviewField(dl, ["참고 문서", "contexts"], (item.contexts || []).map((c) => `[${c.id}] ${c.title || ""}`).join("\n"));
  if (review.reviewer) {
    const [ko, en] = REVIEW_STATUS[review.status] || [review.status, review.status];
    const rest = `${review.reviewer} · ${review.reviewed_at}${review.note ? ` · ${review.note}` : ""}`;
    dl.append(label("dt", null, "검토", "review"), label("dd", null, `${ko} · ${rest}`, `${en} · ${rest}`));
  }
  li.append(dl);
  const row = el("div", "row");
  if (review.status === "pending") {  // a decision stands: decided items have no buttons
    row.append(
      decisionButton(item, "approve", label("button", "review-approve", "승인", "Approve")),
      decisionButton(item, "reject", label("button", "review-reject danger", "거절", "Reject")),
    );
  }
  li.append(row);
  return li;
}

// The decision names the revision shown here: if the asker changed the feedback since,
// the server refuses (409) and the list is reloaded to show the new text. A cited
// document edited since the answer (409 kb_changed): the reviewer decides knowingly, and
// the approval is resent with accept_kb_change.
function decisionButton(item, decision, button) {
  button.type = "button";
  const decide = (extra = {}) => api(`/api/admin/feedback/${item.feedback_id}/${decision}`, {
    method: "POST", headers: adminHeaders(true), body: JSON.stringify({ revision: item.revisions, ...extra }),
  });
  button.addEventListener("click", async () => {
    try {
      try {
        await decide();
      } catch (err) {
        const [ko, en] = errorWords(err);
        const ask = t(`${ko}\n\n그래도 승인할까요?`, `${en}\n\nApprove anyway?`);
        if (err.code !== "kb_changed" || !window.confirm(ask)) throw err;
        await decide({ accept_kb_change: true });
      }
      await refreshReview();
    } catch (err) {
      await refreshReview();
      sayError($("#review-total"), err);
    }
    await refreshImprove();
  });
  return button;
}

async function refreshReview() {
  const status = $("#review-status").value;
  const list = $("#review-list");
  try {
    const body = await api(`/api/admin/feedback?status=${encodeURIComponent(status)}&limit=100`, { headers: adminHeaders() });
    say($("#review-total"), `${body.total}개`, `${body.total} items`);
    list.replaceChildren(...body.items.map(reviewItem));
  } catch (err) {
    sayError($("#review-total"), err);
  }
}

// ---------------------------------------------------------------- improve now (issue 23)

// While `aldlab improve` runs on the server (minutes to hours on a CPU), its status is
// polled; the button is offered only when the server says enough approved feedback waits.
const IMPROVE_POLL_MS = 2000;

function showImproveRun(run) {
  const line = $("#improve-status");
  const reasons = $("#improve-reasons");
  line.hidden = run.state === "idle";
  line.className = `improve-status ${run.state}`;
  const by = run.started_by || "";
  if (run.state === "running") {
    const seconds = Math.round(Date.now() / 1000 - run.started_at);
    say(line, `개선 실행 중 (${by}, ${seconds}초) — 학습·평가·게이트가 끝나면 여기에 결과가 나옵니다`,
      `Improving (${by}, ${seconds} s): the result shows here after training, evaluation and the gate`);
  } else if (run.state === "promoted") {
    say(line, `승격됨: ${run.model_id} — 서버가 재시작 없이 새 모델로 답합니다`,
      `Promoted: ${run.model_id}. The server answers with it without a restart`);
  } else if (run.state === "kept") {
    const candidate = run.model_id || "-";
    say(line, `현재 모델 유지 (후보 ${candidate}) — 이유:`, `Kept the current model (candidate ${candidate}). Why:`);
  } else if (run.state === "failed") {
    say(line, "개선 실패 — 현재 모델 유지:", "Improve failed, the current model stays:");
  }
  // The reasons are the gate's and improve's own words (already Korean / English).
  reasons.replaceChildren(...run.reasons.map((r) => el("li", null, r)));
  if (run.log && run.state !== "running") reasons.append(label("li", "improve-log", `기록: ${run.log}`, `Log: ${run.log}`));
  reasons.hidden = !reasons.children.length || run.state === "running";
}

async function refreshImprove() {
  const waiting = $("#improve-waiting");
  const button = $("#improve-start");
  try {
    const body = await api("/api/admin/improve", { headers: adminHeaders() });
    say(waiting, `학습 안 된 승인 피드백 ${body.waiting}개 (개선에 ${body.threshold}개 필요) · 서비스 중인 모델: ${body.promoted || "없음"}`,
      `${body.waiting} approved feedback items not yet trained on (${body.threshold} needed to improve) · serving: ${body.promoted || "none"}`);
    button.hidden = !body.ready;
    button.disabled = false;
    showImproveRun(body.run);
    if (body.run.state === "running") watchImprove();
  } catch (err) {
    button.hidden = true;
    sayError(waiting, err);
  }
}

function watchImprove() {
  clearTimeout(state.improveTimer);
  state.improveTimer = setTimeout(refreshImprove, IMPROVE_POLL_MS);
}

async function startImprove() {
  const button = $("#improve-start");
  button.disabled = true;
  try {
    const body = await api("/api/admin/improve", { method: "POST", headers: adminHeaders() });
    button.hidden = !body.ready;
    showImproveRun(body.run);
    watchImprove();
  } catch (err) {
    // 409: another run is going, or the feedback was trained on meanwhile; the server says which.
    const line = $("#improve-status");
    line.hidden = false;
    line.className = "improve-status failed";
    sayError(line, err);
    $("#improve-reasons").hidden = true;
  } finally {
    button.disabled = false;
  }
}

// ---------------------------------------------------------------- wiring

function init() {
  setLanguage(initialLanguage());
  document.querySelectorAll("[data-set-lang]").forEach((b) => b.addEventListener("click", () => setLanguage(b.dataset.setLang, true)));
  document.querySelectorAll(".tab").forEach((t) => t.addEventListener("click", () => showTab(t.dataset.tab)));
  $("#ask-form").addEventListener("submit", (event) => {
    event.preventDefault();
    if (state.current) { stopAnswer(); return; }
    const question = $("#question").value.trim();
    if (!question) return;
    $("#question").value = "";
    askNew(question).finally(() => $("#question").focus());
  });
  $("#question").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      if (!state.current) $("#ask-form").requestSubmit();  // Enter never stops an answer
    }
  });
  $("#new-chat").addEventListener("click", () => { stopAnswer(); state.turns = []; $("#messages").replaceChildren(); });
  $("#clear-history").addEventListener("click", () => { localStorage.removeItem(HISTORY_KEY); renderHistory(); });
  $("#doc-close").addEventListener("click", () => $("#doc-dialog").close());
  $("#admin-login").addEventListener("submit", adminConnect);
  $("#kb-search").addEventListener("input", () => { clearTimeout(state.searchTimer); state.searchTimer = setTimeout(refreshDocuments, 250); });
  $("#kb-new").addEventListener("click", () => editDocument(null));
  $("#kb-form").addEventListener("submit", saveDocument);
  $("#kb-delete").addEventListener("click", deleteDocument);
  $("#kb-reload").addEventListener("click", reloadIndex);
  $("#kb-export").addEventListener("click", exportFeedback);
  $("#kb-upload").addEventListener("change", uploadDocuments);
  $("#review-refresh").addEventListener("click", refreshReview);
  $("#review-status").addEventListener("change", refreshReview);
  $("#improve-start").addEventListener("click", startImprove);
  $("#admin-token").value = sessionStorage.getItem("aldlab.admin.token") || "";
  $("#api-key").value = sessionStorage.getItem("aldlab.api_key") || "";
  $("#api-key").addEventListener("change", () => {
    sessionStorage.setItem("aldlab.api_key", $("#api-key").value.trim());
    loadModels();
  });
  $("#admin-actor").value = sessionStorage.getItem("aldlab.admin.actor") || "";
  loadModels();
}

document.addEventListener("DOMContentLoaded", init);
