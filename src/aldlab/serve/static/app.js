// aldlab web UI: plain JS, no build step.
// SECURITY: every piece of model output and document text is put on the page with
// textContent or as DOM nodes built from it (never innerHTML), so a document containing
// HTML is shown as text; answers' Markdown is rendered the same way (renderMarkdown).
"use strict";

const HISTORY_KEY = "aldlab.history";
const HISTORY_MAX = 200;
const CHAT_TURNS_SENT = 3; // earlier question/answer pairs sent as context

const $ = (sel, root = document) => root.querySelector(sel);
// `turns`: this chat's questions ({question, answer, done}); `current`: the AbortController
// of the answer streaming now (null when idle).
const state = { turns: [], current: null, admin: { token: "", actor: "" }, editing: null };

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

function errorMessage(body, fallback) {
  if (body && body.error) return body.error.message || fallback;
  return fallback;
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
  if (!response.ok) {
    const error = new Error(errorMessage(body, `HTTP ${response.status}`));
    error.code = body && body.error ? body.error.code : undefined;
    throw error;
  }
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
      const label = model.id === "base" ? "기본 모델 / base" : `파인튜닝 / fine-tuned: ${model.id}`;
      const option = el("option", null, label);
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
  high: "검색 신뢰도 높음 / retrieval confidence high",
  medium: "검색 신뢰도 보통 / retrieval confidence medium",
  low: "검색 신뢰도 낮음 / retrieval confidence low",
};
const CONTEXT_NOTES = {
  model: "— 모델에게 준 문서 (인용과 별개) / given to the model, cited or not",
  refusedEarly: "— 검색된 문서 (모델 호출 전 거절) / retrieved passages (refused before generation)",
  contextsOnly: "— 검색된 문서 (모델 없음) / retrieved passages (no model)",
};

function newAnswerCard(question, model, replacing) {
  const card = $("#answer-template").content.firstElementChild.cloneNode(true);
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
  link.title = "문서 보기 / open the passage";
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
    button.title = `검색 점수 / score ${context.score}`;
    button.addEventListener("click", () => openDocument(context.id, context));
    const text = context.text || "";
    li.append(button, el("span", "context-snippet", text.length > 140 ? `${text.slice(0, 140)}…` : text));
    list.append(li);
  }
  $(".contexts-count", box).textContent = `(${contexts.length})`;
  $(".contexts-note", box).textContent = CONTEXT_NOTES[view.contextNote];
  box.hidden = contexts.length === 0;
}

function citationBasis(citation) {
  if (citation.how === "passage") return "1위 문서 그대로 / best passage verbatim";
  if (citation.how === "overlap") return `근거 일치 / supported ${Number(citation.support || 0).toFixed(2)}`;
  return "인용 / cited";
}

// Whether the best-ranked passage backs the answer: a separate question from retrieval
// confidence (issue 25: a 0.97 badge sat on an answer to a different question).
function supportVerdict(result, contextsOnly) {
  const answered = !contextsOnly && !result.refused && result.used_retrieval && result.model && result.contexts.length;
  if (!answered) return null;
  const best = result.contexts[0];
  const cited = result.citations.find((c) => c.id === best.id);
  if (cited && cited.how === "passage") return { level: "ok", text: "1위 문서를 그대로 보여 줌 / best passage shown verbatim" };
  if (cited && cited.support > 0) {
    return { level: "ok", text: `1위 문서가 뒷받침함 ${cited.support.toFixed(2)} / supported by the best passage` };
  }
  if (cited) return { level: "ok", text: "1위 문서를 인용함 / cites the best passage" };
  if (result.citations.length) return { level: "warn", text: "1위 문서의 뒷받침 없음 (다른 문서 인용) / not backed by the best passage" };
  return { level: "warn", text: "어느 문서도 뒷받침하지 않음 / no passage supports it" };
}

function showConfidence(card, result, contextsOnly) {
  const badge = $(".confidence-badge", card);
  badge.textContent = `${CONFIDENCE_LABELS[result.confidence_label] || result.confidence_label} ${result.confidence.toFixed(2)}`;
  badge.className = `confidence-badge conf-${result.confidence_label}`;
  const why = result.confidence_explanation || {};
  badge.title = `${why.ko || ""}\n${why.en || ""}`;
  badge.hidden = false;
  const explanation = $(".confidence-explanation", card);
  explanation.textContent = `${why.ko || ""} / ${why.en || ""}`;
  explanation.hidden = false;
  const verdict = supportVerdict(result, contextsOnly);
  const support = $(".support-badge", card);
  support.hidden = !verdict;
  if (verdict) {
    support.textContent = verdict.text;
    support.className = `support-badge support-${verdict.level}`;
  }
}

// Citations are only what the answer cites or is supported by; the contexts it was
// given are listed separately, so a context is never shown as a citation.
function showCitations(view, result) {
  const citations = $(".citations", view.card);
  citations.replaceChildren(el("span", "muted", "인용 / Citations:"));
  for (const citation of result.citations) {
    const button = el("button", "citation", `[${citation.id}] ${citation.title || ""}`.trim());
    button.type = "button";
    button.dataset.docId = citation.id;
    button.append(el("span", "basis", citationBasis(citation)));
    button.addEventListener("click", () => openDocument(citation.id, view.contexts.get(citation.id)));
    citations.append(button);
  }
  const answered = view.contextNote !== "contextsOnly" && !result.refused && result.used_retrieval && result.model;
  if (!result.citations.length && answered) {
    citations.append(el("span", "no-citation",
      "인용 없음 — 답변이 문서를 인용하지 않았고 어느 문서도 문장을 뒷받침하지 않습니다 / no citation: the answer cites no document and no context supports it"));
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
    $(".answer-text", card).after(el("p", "fallback-note", `${result.fallback_note.ko} / ${result.fallback_note.en}`));
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
      line.textContent = `답변 생성 중 / generating · ${seconds}초 / s`;
    } else if (status.ahead > 0) {
      line.textContent = `대기 중: 앞에 ${status.ahead}개 질문 (${status.ahead + 1}번째) / queued at position ${status.ahead + 1} · ${seconds}초 / s`;
    } else {
      line.textContent = `준비 중 / starting · ${seconds}초 / s`;
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
    status.textContent = "전송 중… / sending…";
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
      status.textContent = "피드백 감사합니다 — 관리자 검토 후 학습에 쓰입니다 / Thanks: it is used for training after an admin reviews it";
      updateHistory(answerId, { feedback: rating });
    } catch (err) {
      status.textContent = `피드백 실패 / failed: ${err.message}`;
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
  button.textContent = on ? "정지 / Stop" : "질문 / Ask";
  button.classList.toggle("stop", on);
  button.setAttribute("aria-label", on ? "답변 생성 정지 / stop generating" : "질문 보내기 / ask");
  document.querySelectorAll(".regenerate").forEach((b) => { b.disabled = on; });
}

function stopAnswer() {
  if (state.current) state.current.abort();
}

function friendlyError(err) {
  if (err instanceof TypeError) return "서버에 연결할 수 없습니다 / cannot reach the server";
  return err.message;
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
    throw new Error(errorMessage(body, `HTTP ${response.status}`));
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
    else if (event.type === "error") throw new Error(errorMessage(event, "오류 / error"));
  }
  if (!result) throw new Error("응답이 끊겼습니다 / the answer stream ended early");
  return result;
}

function showStopped(view) {
  renderAnswer(view);  // the partial text stays
  $(".stopped-note", view.card).hidden = false;
  view.card.classList.add("stopped");
}

function showFailed(view, err) {
  const errorBox = $("#chat-error");
  errorBox.textContent = `오류 / error: ${friendlyError(err)}`;
  errorBox.hidden = false;
  view.card.classList.add("failed");
}

function setupAnswerActions(view) {
  const box = $(".answer-actions", view.card);
  box.hidden = false;
  const copy = $(".copy-answer", box);
  copy.addEventListener("click", async () => {
    const ok = await copyText(view.raw);
    copy.textContent = ok ? "복사됨 / Copied" : "복사 실패 / Copy failed";
    setTimeout(() => { copy.textContent = "복사 / Copy"; }, 2000);
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
    if (!doc) doc = { id: docId, title: "", text: `문서를 불러오지 못했습니다 / could not load: ${err.message}` };
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
  if (!items.length) list.append(el("li", "muted", "기록이 없습니다 / No history yet"));
  for (const item of items) {
    const li = el("li", "history-item");
    const q = el("button", "history-question", item.question);
    q.type = "button";
    q.title = "다시 묻기 / ask again";
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
}

async function refreshDocuments() {
  const status = $("#admin-status");
  const q = $("#kb-search").value.trim();
  try {
    const body = await api(`/api/admin/documents?limit=500&q=${encodeURIComponent(q)}`, { headers: adminHeaders() });
    status.textContent = "연결됨 / connected";
    $("#admin-area").hidden = false;
    $("#kb-total").textContent = `문서 ${body.total}개 / ${body.total} documents`;
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
    status.textContent = `오류 / error: ${err.message}`;
  }
}

function editDocument(doc) {
  state.editing = doc ? doc.id : null;
  $("#kb-form-title").textContent = doc ? `문서 편집 / Edit ${doc.id}` : "새 문서 / New document";
  $("#kb-id").value = doc ? doc.id : "";
  $("#kb-id").readOnly = Boolean(doc);
  $("#kb-title").value = doc ? doc.title : "";
  $("#kb-topic").value = doc ? doc.topic : "general";
  $("#kb-keywords").value = doc ? doc.keywords.join(", ") : "";
  $("#kb-text").value = doc ? doc.text : "";
  $("#kb-delete").hidden = !doc;
  $("#kb-form-status").textContent = "";
}

async function saveDocument(event) {
  event.preventDefault();
  const status = $("#kb-form-status");
  const fields = {
    title: $("#kb-title").value.trim(),
    topic: $("#kb-topic").value.trim() || "general",
    keywords: $("#kb-keywords").value.split(",").map((k) => k.trim()).filter(Boolean),
    text: $("#kb-text").value,
  };
  status.textContent = "저장 중… (색인 갱신 포함) / saving… (reindexing)";
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
    status.textContent = "저장됨 / saved";
    await refreshDocuments();
    watchReindex(body.reload);
  } catch (err) {
    status.textContent = `오류 / error: ${err.message}`;
  }
}

async function deleteDocument() {
  if (!state.editing) return;
  if (!window.confirm(`문서 ${state.editing} 을(를) 삭제할까요? / Delete ${state.editing}?`)) return;
  const status = $("#kb-form-status");
  try {
    const body = await api(`/api/admin/documents/${encodeURIComponent(state.editing)}`, { method: "DELETE", headers: adminHeaders() });
    editDocument(null);
    status.textContent = "삭제됨 / deleted";
    await refreshDocuments();
    watchReindex(body.reload);
  } catch (err) {
    status.textContent = `오류 / error: ${err.message}`;
  }
}

async function reloadIndex() {
  const status = $("#admin-status");
  status.textContent = "색인 갱신 중… (수 분 걸릴 수 있음) / reloading… (may take minutes)";
  try {
    const body = await api("/api/admin/reload", { method: "POST", headers: adminHeaders() });
    const r = body.reload || {};
    status.textContent = r.ok === false
      ? `색인 갱신 실패 / reload failed: ${r.error}`
      : `색인 갱신 완료 / reloaded (${r.seconds}s)`;
  } catch (err) {
    status.textContent = `오류 / error: ${err.message}`;
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
    status.textContent = `오류 / error: ${err.message}`;
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
    line.textContent = `색인 중… ${Math.round((Date.now() - started) / 1000)}초 — 끝나면 새 내용이 검색됩니다 / indexing… the new text is searchable once this is done`;
    await sleep(INDEX_POLL_MS);
    try { current = (await api("/api/health")).reload; } catch (_) { /* server busy: ask again */ }
  }
  if (state.indexWatch !== watch) return;
  const failed = current.ok === false;
  line.className = `index-status ${failed ? "failed" : "done"}`;
  line.textContent = failed
    ? `색인 실패 — 이전 색인으로 답합니다 / indexing failed, answers use the previous index: ${current.error || ""}`
    : "색인 완료 — 이제 검색됩니다 / indexed: the new text is now searchable";
}

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
  return `${name}: 문서 ${ko} / ${en}${ids ? ` — ${ids}` : ""}`;
}

async function uploadDocuments() {
  const input = $("#kb-upload");
  const file = input.files[0];
  if (!file) return;
  const status = $("#kb-upload-status");
  try {
    if (file.size > UPLOAD_MAX_BYTES) {
      throw new Error(`파일이 너무 큽니다 (${Math.ceil(file.size / 1024)} KB, 최대 60 KB): 서버에서 aldlab kb import 를 쓰세요`
        + ` / file too large (max 60 KB): use aldlab kb import on the server`);
    }
    status.textContent = `올리는 중… ${file.name} / uploading…`;
    const body = await api("/api/admin/documents/import", {
      method: "POST", headers: adminHeaders(true), body: JSON.stringify({ filename: file.name, content: await file.text() }),
    });
    status.textContent = uploadSummary(file.name, body);
    await refreshDocuments();
    await watchReindex(body.reload);
  } catch (err) {
    status.textContent = `오류 / error: ${friendlyError(err)}`;
  } finally {
    input.value = "";  // choosing the same file again uploads it again
  }
}

// ---------------------------------------------------------------- feedback review

function reviewField(list, label, value, className) {
  if (value === null || value === undefined || value === "") return;
  list.append(el("dt", null, label));
  list.append(el("dd", className || null, value));
}

async function refreshReview() {
  const status = $("#review-status").value;
  const list = $("#review-list");
  try {
    const body = await api(`/api/admin/feedback?status=${encodeURIComponent(status)}&limit=100`, { headers: adminHeaders() });
    $("#review-total").textContent = `${body.total}개 / ${body.total} items`;
    list.replaceChildren();
    for (const item of body.items) {
      const li = el("li", "review-item");
      li.dataset.feedbackId = item.feedback_id;
      li.dataset.revision = item.revisions;
      const review = item.review || {};
      li.append(el("strong", null, `#${item.feedback_id} ${item.feedback === "like" ? "좋아요 / like" : "싫어요 / dislike"} · 수정본 / revision ${item.revisions} · ${item.model} · ${item.timestamp.slice(0, 19)}`));
      const dl = el("dl");
      for (const turn of item.history || []) reviewField(dl, `기록 / history (${turn.role})`, turn.content);
      if ((item.history || []).length) {
        reviewField(dl, "참고 / note", "대화 기록에 의존한 답변: 승인해도 학습 데이터에서는 제외됩니다 / depends on chat history: left out of training even if approved");
      }
      reviewField(dl, "질문 / question", item.question);
      reviewField(dl, "답변 / answer", item.answer);
      reviewField(dl, "의견 / comment", item.comment);
      reviewField(dl, "정정 / correction", item.correction, "correction");
      reviewField(dl, "참고 문서 / contexts", (item.contexts || []).map((c) => `[${c.id}] ${c.title || ""}`).join("\n"));
      if (review.reviewer) reviewField(dl, "검토 / review", `${review.status} · ${review.reviewer} · ${review.reviewed_at}${review.note ? ` · ${review.note}` : ""}`);
      li.append(dl);
      const row = el("div", "row");
      const decisions = review.status === "pending"  // a decision stands: decided items have no buttons
        ? [["approve", "승인 / Approve", "review-approve"], ["reject", "거절 / Reject", "review-reject danger"]]
        : [];
      for (const [decision, label, cls] of decisions) {
        const button = el("button", cls, label);
        button.type = "button";
        // The decision names the revision shown here: if the asker changed the feedback
        // since, the server refuses (409) and the list is reloaded to show the new text.
        // A cited document edited since the answer (409 kb_changed): the reviewer decides
        // knowingly, and the approval is resent with accept_kb_change.
        const decide = (extra = {}) => api(`/api/admin/feedback/${item.feedback_id}/${decision}`, {
          method: "POST", headers: adminHeaders(true), body: JSON.stringify({ revision: item.revisions, ...extra }),
        });
        button.addEventListener("click", async () => {
          try {
            try {
              await decide();
            } catch (err) {
              const ask = `${err.message}\n\n그래도 승인할까요? / Approve anyway?`;
              if (err.code !== "kb_changed" || !window.confirm(ask)) throw err;
              await decide({ accept_kb_change: true });
            }
            await refreshReview();
          } catch (err) {
            await refreshReview();
            $("#review-total").textContent = `오류 / error: ${err.message}`;
          }
        });
        row.append(button);
      }
      li.append(row);
      list.append(li);
    }
  } catch (err) {
    $("#review-total").textContent = `오류 / error: ${err.message}`;
  }
}

// ---------------------------------------------------------------- wiring

function init() {
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
