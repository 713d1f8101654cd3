// aldlab web UI: plain JS, no build step.
// SECURITY: every piece of model output and document text is put on the page with
// textContent (never innerHTML), so a document containing HTML is shown as text.
"use strict";

const HISTORY_KEY = "aldlab.history";
const HISTORY_MAX = 200;
const CHAT_TURNS_SENT = 3; // earlier question/answer pairs sent as context

const $ = (sel, root = document) => root.querySelector(sel);
const state = { turns: [], admin: { token: "", actor: "" }, editing: null };

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
  if (!response.ok) throw new Error(errorMessage(body, `HTTP ${response.status}`));
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

// ---------------------------------------------------------------- chat

const CONFIDENCE_LABELS = { high: "신뢰도 높음 / high", medium: "신뢰도 보통 / medium", low: "신뢰도 낮음 / low" };

function newAnswerCard(question, model) {
  const card = $("#answer-template").content.firstElementChild.cloneNode(true);
  $(".question-bubble", card).textContent = question;
  $(".model-tag", card).textContent = model;
  $("#messages").append(card);
  card.scrollIntoView({ block: "end" });
  return card;
}

function showContexts(card, contexts) {
  const box = $(".contexts", card);
  const list = $(".context-list", box);
  list.replaceChildren();
  for (const context of contexts) {
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
  box.hidden = contexts.length === 0;
}

function citationBasis(citation) {
  if (citation.how === "overlap") return `근거 일치 / supported ${Number(citation.support || 0).toFixed(2)}`;
  return "인용 / cited";
}

function fillAnswerCard(card, result) {
  card.dataset.answerId = result.answer_id;
  $(".answer-text", card).textContent = result.answer;
  $(".model-tag", card).textContent = result.model || "contexts";
  const badge = $(".confidence-badge", card);
  badge.textContent = `${CONFIDENCE_LABELS[result.confidence_label] || result.confidence_label} (${result.confidence.toFixed(2)})`;
  badge.className = `confidence-badge conf-${result.confidence_label}`;
  const why = result.confidence_explanation || {};
  badge.title = `${why.ko || ""}\n${why.en || ""}`;
  badge.hidden = false;
  const explanation = $(".confidence-explanation", card);
  explanation.textContent = `${why.ko || ""} / ${why.en || ""}`;
  explanation.hidden = false;

  // Citations are only what the answer cites or is supported by; the contexts it was
  // given are listed separately, so a context is never shown as a citation.
  const contexts = new Map(result.contexts.map((c) => [c.id, c]));
  const citations = $(".citations", card);
  citations.replaceChildren(el("span", "muted", "인용 / Citations:"));
  for (const citation of result.citations) {
    const button = el("button", "citation", `[${citation.id}] ${citation.title || ""}`.trim());
    button.type = "button";
    button.dataset.docId = citation.id;
    button.append(el("span", "basis", citationBasis(citation)));
    button.addEventListener("click", () => openDocument(citation.id, contexts.get(citation.id)));
    citations.append(button);
  }
  if (result.fallback_note) {
    const note = el("p", "fallback-note", `${result.fallback_note.ko} / ${result.fallback_note.en}`);
    $(".answer-text", card)?.after(note);
  }
  const answered = !result.refused && result.used_retrieval && result.model;
  if (!result.citations.length && answered) {
    citations.append(el("span", "no-citation",
      "인용 없음 — 답변이 문서를 인용하지 않았고 어느 문서도 문장을 뒷받침하지 않습니다 / no citation: the answer cites no document and no context supports it"));
  }
  citations.hidden = !result.citations.length && !answered;
  showContexts(card, result.contexts);
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

async function ask(question) {
  const model = $("#model-select").value || "base";
  const card = newAnswerCard(question, model);
  const answerText = $(".answer-text", card);
  answerText.classList.add("streaming");
  const errorBox = $("#chat-error");
  errorBox.hidden = true;
  const history = state.turns.slice(-CHAT_TURNS_SENT).flatMap((t) => [
    { role: "user", content: t.question },
    { role: "assistant", content: t.answer },
  ]);
  let result = null;
  const status = startStatus(card);
  try {
    const response = await fetch("/api/ask?stream=true", {
      method: "POST",
      headers: keyHeaders({ "Content-Type": "application/json" }),
      body: JSON.stringify({
        question, model, history,
        use_retrieval: $("#use-retrieval").checked,
        context_only: $("#context-only").checked,
      }),
    });
    if (!response.ok) {
      let body = null;
      try { body = await response.json(); } catch (_) { body = null; }
      throw new Error(errorMessage(body, `HTTP ${response.status}`));
    }
    for await (const event of readSSE(response)) {
      if (event.type === "token") {
        status.stop();
        answerText.textContent += event.text;
      } else if (event.type === "status") status.update(event);
      else if (event.type === "contexts") showContexts(card, event.contexts);
      else if (event.type === "answer") result = event;
      else if (event.type === "error") throw new Error(errorMessage(event, "error"));
    }
    if (!result) throw new Error("응답이 끊겼습니다 / the answer stream ended early");
    fillAnswerCard(card, result);
    state.turns.push({ question, answer: result.answer });
    saveHistory({
      answer_id: result.answer_id, question, answer: result.answer, model: result.model,
      confidence_label: result.confidence_label, citations: result.citations, time: new Date().toISOString(),
    });
  } catch (err) {
    answerText.textContent = "";
    errorBox.textContent = `오류 / error: ${err.message}`;
    errorBox.hidden = false;
    card.classList.add("failed");
  } finally {
    status.stop();
    answerText.classList.remove("streaming");
  }
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
  if (state.admin.actor) headers["X-Aldlab-Actor"] = state.admin.actor;
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
    status.textContent = "저장됨 — 검색 색인은 백그라운드에서 갱신됩니다 / saved; the index rebuilds in the background";
    await refreshDocuments();
  } catch (err) {
    status.textContent = `오류 / error: ${err.message}`;
  }
}

async function deleteDocument() {
  if (!state.editing) return;
  if (!window.confirm(`문서 ${state.editing} 을(를) 삭제할까요? / Delete ${state.editing}?`)) return;
  const status = $("#kb-form-status");
  try {
    await api(`/api/admin/documents/${encodeURIComponent(state.editing)}`, { method: "DELETE", headers: adminHeaders() });
    editDocument(null);
    status.textContent = "삭제됨 — 검색 색인은 백그라운드에서 갱신됩니다 / deleted; the index rebuilds in the background";
    await refreshDocuments();
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
        button.addEventListener("click", async () => {
          try {
            await api(`/api/admin/feedback/${item.feedback_id}/${decision}`, {
              method: "POST", headers: adminHeaders(true), body: JSON.stringify({ revision: item.revisions }),
            });
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
    const question = $("#question").value.trim();
    if (!question) return;
    $("#question").value = "";
    const button = $("#ask-button");
    button.disabled = true;
    ask(question).finally(() => { button.disabled = false; $("#question").focus(); });
  });
  $("#question").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      $("#ask-form").requestSubmit();
    }
  });
  $("#new-chat").addEventListener("click", () => { state.turns = []; $("#messages").replaceChildren(); });
  $("#clear-history").addEventListener("click", () => { localStorage.removeItem(HISTORY_KEY); renderHistory(); });
  $("#doc-close").addEventListener("click", () => $("#doc-dialog").close());
  $("#admin-login").addEventListener("submit", adminConnect);
  $("#kb-search").addEventListener("input", () => { clearTimeout(state.searchTimer); state.searchTimer = setTimeout(refreshDocuments, 250); });
  $("#kb-new").addEventListener("click", () => editDocument(null));
  $("#kb-form").addEventListener("submit", saveDocument);
  $("#kb-delete").addEventListener("click", deleteDocument);
  $("#kb-reload").addEventListener("click", reloadIndex);
  $("#kb-export").addEventListener("click", exportFeedback);
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
