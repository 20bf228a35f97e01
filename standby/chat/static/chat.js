// Standby's chat page: conversations on the left, the branch on show on the right, answers
// streamed from /chat/api/messages.  Text is only ever put in the page as text
// (textContent), never as HTML.  No framework, no CDN.
"use strict";

const $ = (id) => document.getElementById(id);
const state = {
  key: sessionStorage.getItem("standby-chat-key") || "",
  conversation: null, // {conversation, messages: Map, branch: [ids]}
  streaming: null, // {answerId, controller}
  next: null, // the sidebar's next page
  polling: null,
};

function headers(extra) {
  const out = Object.assign({}, extra || {});
  if (state.key) out["Authorization"] = "Bearer " + state.key;
  return out;
}

async function api(path, options) {
  const opts = Object.assign({}, options || {});
  opts.headers = headers(opts.headers);
  if (opts.json !== undefined) {
    opts.method = opts.method || "POST";
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(opts.json);
    delete opts.json;
  }
  const response = await fetch("/chat/api/" + path, opts);
  if (response.status === 401) {
    askForKey();
    throw new Error("a key is needed");
  }
  if (!response.ok) {
    let message = response.statusText;
    try {
      message = (await response.json()).error.message;
    } catch (e) { /* not JSON */ }
    throw new Error(message);
  }
  return response;
}

function askForKey() {
  const dialog = $("key-dialog");
  if (!dialog.open) dialog.showModal();
}

function notice(text) {
  const box = $("notice");
  box.textContent = text || "";
  box.hidden = !text;
}

function el(tag, attrs, text) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (name === "class") node.className = value;
    else node.setAttribute(name, value);
  }
  if (text !== undefined) node.textContent = text;
  return node;
}

// -- the sidebar ------------------------------------------------------------------------
async function loadConversations(more) {
  const query = more && state.next ? "?before=" + encodeURIComponent(state.next) : "";
  const data = await (await api("conversations" + query)).json();
  const list = $("conversations");
  if (!more) list.replaceChildren();
  for (const c of data.conversations) list.append(conversationItem(c));
  state.next = data.next;
  $("more").hidden = !data.next;
}

function conversationItem(c) {
  const item = el("li");
  const button = el("button", { type: "button", "data-id": c.id }, c.title || "Untitled");
  if (c.source !== "chat") button.append(el("span", { class: "source" }, " · " + c.source));
  if (state.conversation && state.conversation.conversation.id === c.id) {
    button.setAttribute("aria-current", "true");
  }
  button.addEventListener("click", () => openConversation(c.id));
  item.append(button);
  return item;
}

// -- one conversation -----------------------------------------------------------------
async function openConversation(id, keepFocus) {
  const data = await (await api("conversations/" + encodeURIComponent(id))).json();
  state.conversation = {
    conversation: data.conversation,
    messages: new Map(data.messages.map((m) => [m.id, m])),
    branch: data.branch,
  };
  history.replaceState(null, "", "#" + id);
  render();
  await loadConversations(false);
  if (!keepFocus) $("question").focus();
  const last = lastMessage();
  if (last && last.state === "streaming" && !state.streaming) follow(last.id);
  pollIfQueued();
}

function lastMessage() {
  const c = state.conversation;
  return c && c.branch.length ? c.messages.get(c.branch[c.branch.length - 1]) : null;
}

function siblings(message) {
  const all = [...state.conversation.messages.values()].filter(
    (m) => m.parent_id === message.parent_id,
  );
  all.sort((a, b) => a.created_at - b.created_at || (a.id < b.id ? -1 : 1));
  return all;
}

function render() {
  const c = state.conversation;
  $("title").textContent = c ? c.conversation.title || "Untitled" : "New conversation";
  $("conversation-actions").hidden = !c;
  const list = $("messages");
  list.replaceChildren();
  if (!c) return;
  const id = encodeURIComponent(c.conversation.id);
  $("export-md").href = "/chat/api/conversations/" + id + "/export?format=markdown";
  $("export-json").href = "/chat/api/conversations/" + id + "/export?format=json";
  for (const mid of c.branch) list.append(messageItem(c.messages.get(mid)));
}

function messageItem(m) {
  const item = el("li", { class: "message " + m.role, id: "m-" + m.id, "data-state": m.state });
  const head = el("div", { class: "head" });
  head.append(el("span", { class: "role" }, m.role === "user" ? "You" : m.role));
  if (m.role === "assistant") head.append(...badges(m));
  const versions = siblings(m);
  if (versions.length > 1) head.append(switcher(m, versions));
  if (m.role === "user") {
    const edit = el("button", { type: "button", class: "edit" }, "Edit");
    edit.setAttribute("aria-label", "Edit this question and send it again");
    edit.addEventListener("click", () => editQuestion(item, m));
    head.append(edit);
  }
  item.append(head, el("div", { class: "content" }, m.content));
  return item;
}

function badges(m) {
  const out = [];
  if (m.model) {
    const who = m.provider ? m.model + " · " + m.provider : m.model;
    out.push(el("span", { class: "badge model", title: "The model that wrote this answer" }, who));
  }
  if (m.continued) {
    const began = (m.extra && m.extra.began_on) || m.began_on;
    const where = began ? "It began on " + began + ", which" : "The first provider";
    out.push(el("span", {
      class: "badge continued",
      title: where + " broke off mid-answer; " + (m.provider || "another") + " continued it",
    }, "continued"));
  }
  const words = { queued: "queued: waiting for a provider", stopped: "stopped", failed: "failed" };
  if (words[m.state]) out.push(el("span", { class: "badge state " + m.state }, words[m.state]));
  return out;
}

function switcher(m, versions) {
  const box = el("span", { class: "versions" });
  const at = versions.findIndex((v) => v.id === m.id);
  const previous = el("button", { type: "button", "aria-label": "Previous version" }, "‹");
  const next = el("button", { type: "button", "aria-label": "Next version" }, "›");
  previous.disabled = at === 0;
  next.disabled = at === versions.length - 1;
  previous.addEventListener("click", () => showVersion(versions[at - 1]));
  next.addEventListener("click", () => showVersion(versions[at + 1]));
  box.append(previous, el("span", {}, at + 1 + " / " + versions.length), next);
  return box;
}

async function showVersion(message) {
  const c = state.conversation;
  const data = await (
    await api("conversations/" + encodeURIComponent(c.conversation.id) + "/current", {
      json: { message_id: message.id },
    })
  ).json();
  c.branch = data.branch;
  render();
}

function editQuestion(item, m) {
  const content = item.querySelector(".content");
  const box = el("textarea", { class: "edit-box", "aria-label": "Edited question" });
  box.value = m.content;
  const send = el("button", { type: "button", class: "primary" }, "Send edited");
  const cancel = el("button", { type: "button" }, "Cancel");
  const form = el("div", { class: "edit-form" });
  form.append(box, send, cancel);
  content.replaceWith(form);
  box.focus();
  cancel.addEventListener("click", () => render());
  send.addEventListener("click", () => {
    if (box.value.trim()) ask(box.value, m.parent_id);
  });
  box.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      send.click();
    } else if (event.key === "Escape") {
      render();
    }
  });
}

// -- asking and streaming ----------------------------------------------------------------
async function ask(text, parentId) {
  if (state.streaming) return;
  notice("");
  const c = state.conversation;
  const body = { content: text, model: $("model").value || undefined };
  if (c) {
    body.conversation_id = c.conversation.id;
    body.parent_id = parentId === undefined ? c.branch[c.branch.length - 1] || null : parentId;
  }
  const controller = new AbortController();
  state.streaming = { answerId: null, controller };
  setStreaming(true);
  try {
    const response = await api("messages", { json: body, signal: controller.signal });
    $("question").value = "";
    await readEvents(response, async (kind, data) => {
      if (kind === "start") {
        state.streaming.answerId = data.answer_id;
        await openConversation(data.conversation_id, true);
        if (state.streaming.stopWanted) await stop();
      } else {
        applyEvent(kind, data);
      }
    });
  } catch (error) {
    if (error.name !== "AbortError") notice("Could not send: " + error.message);
  } finally {
    state.streaming = null;
    setStreaming(false);
  }
  if (state.conversation) await openConversation(state.conversation.conversation.id, true);
}

async function follow(answerId) {
  const controller = new AbortController();
  state.streaming = { answerId, controller };
  setStreaming(true);
  try {
    const response = await api("messages/" + encodeURIComponent(answerId) + "/events", {
      signal: controller.signal,
    });
    await readEvents(response, async (kind, data) => applyEvent(kind, data));
  } catch (error) {
    /* the answer ended meanwhile */
  } finally {
    state.streaming = null;
    setStreaming(false);
  }
  if (state.conversation) await openConversation(state.conversation.conversation.id, true);
}

async function readEvents(response, handle) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let kind = "message";
      let data = "";
      for (const line of block.split("\n")) {
        if (line.startsWith("event: ")) kind = line.slice(7);
        else if (line.startsWith("data: ")) data += line.slice(6);
      }
      if (data) await handle(kind, JSON.parse(data));
    }
  }
}

function answerNode() {
  const id = state.streaming && state.streaming.answerId;
  return id ? document.getElementById("m-" + id) : null;
}

function applyEvent(kind, data) {
  const c = state.conversation;
  const id = state.streaming && state.streaming.answerId;
  const message = c && id ? c.messages.get(id) : null;
  if (!message) return;
  if (kind === "snapshot") {
    message.content = data.text;
    message.model = data.model || message.model;
    message.provider = data.provider || message.provider;
    message.continued = data.continued;
  } else if (kind === "target") {
    message.model = data.model;
    message.provider = data.provider;
  } else if (kind === "delta") {
    message.content += data.text;
    const node = answerNode();
    if (node) {
      node.querySelector(".content").textContent = message.content;
      return;
    }
  } else if (kind === "continued") {
    message.began_on = message.began_on || message.provider + "/" + message.model;
    message.continued = true;
    message.provider = data.provider;
    message.model = data.model;
  } else if (kind === "queued") {
    message.state = "queued";
    notice(data.message);
  } else if (kind === "error") {
    notice(data.message);
  } else if (kind === "end") {
    message.state = data.state;
    message.content = data.text;
    message.continued = data.continued;
  }
  const node = answerNode();
  if (node) node.replaceWith(messageItem(message));
}

function setStreaming(on) {
  $("send").disabled = on;
  $("stop").hidden = !on;
  if (!on && document.activeElement === $("stop")) $("question").focus();
}

async function stop() {
  const streaming = state.streaming;
  if (!streaming) return;
  if (!streaming.answerId) {
    streaming.stopWanted = true; // asked before the answer had an id: stop it then
    return;
  }
  try {
    await api("messages/" + encodeURIComponent(streaming.answerId) + "/stop", { json: {} });
  } catch (error) {
    notice("Could not stop: " + error.message);
  }
}

function pollIfQueued() {
  clearTimeout(state.polling);
  const waiting = state.conversation &&
    [...state.conversation.messages.values()].some((m) => m.state === "queued");
  if (!waiting) return;
  state.polling = setTimeout(async () => {
    if (!state.streaming && state.conversation) {
      await openConversation(state.conversation.conversation.id, true);
    } else {
      pollIfQueued();
    }
  }, 2000);
}

// -- search, status, models -----------------------------------------------------------------
async function search(query) {
  const box = $("search-results");
  if (!query.trim()) {
    box.hidden = true;
    box.replaceChildren();
    return;
  }
  const data = await (await api("search?q=" + encodeURIComponent(query))).json();
  box.replaceChildren();
  box.hidden = false;
  if (!data.hits.length) box.append(el("p", {}, "Nothing found."));
  const list = el("ul", { "aria-label": "Search results" });
  for (const hit of data.hits) {
    const button = el("button", { type: "button", class: "hit" });
    button.append(el("strong", {}, hit.conversation.title || "Untitled"), el("br"));
    for (const [text, matched] of hit.segments) {
      button.append(matched ? el("mark", {}, text) : document.createTextNode(text));
    }
    button.addEventListener("click", () => openConversation(hit.conversation.id));
    const item = el("li");
    item.append(button);
    list.append(item);
  }
  box.append(list);
}

async function loadStatus() {
  try {
    const data = await (await api("status")).json();
    const box = $("providers");
    box.replaceChildren();
    for (const p of data.providers) {
      const dot = el("span", { class: "provider " + p.state, title: p.detail || p.state });
      dot.textContent = p.name + ": " + p.state;
      box.append(dot);
    }
    const select = $("model");
    if (!select.options.length) {
      for (const name of data.models) select.append(el("option", { value: name }, name));
      if (data.default_model) select.value = data.default_model;
    }
  } catch (error) {
    /* shown again at the next round */
  }
}

// -- wiring ------------------------------------------------------------------------------
function start() {
  $("composer").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = $("question").value;
    if (text.trim()) ask(text);
  });
  $("question").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      $("composer").requestSubmit();
    }
  });
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && state.streaming) stop();
    if (event.key === "/" && document.activeElement.tagName !== "TEXTAREA" &&
        document.activeElement.tagName !== "INPUT") {
      event.preventDefault();
      $("search").focus();
    }
  });
  $("stop").addEventListener("click", stop);
  $("new-chat").addEventListener("click", () => {
    state.conversation = null;
    history.replaceState(null, "", "#");
    render();
    loadConversations(false);
    $("question").focus();
  });
  $("more").addEventListener("click", () => loadConversations(true));
  let searching = null;
  $("search").addEventListener("input", (event) => {
    clearTimeout(searching);
    searching = setTimeout(() => search(event.target.value).catch(() => {}), 150);
  });
  $("search-form").addEventListener("submit", (event) => {
    event.preventDefault();
    search($("search").value).catch(() => {});
  });
  $("rename").addEventListener("click", async () => {
    const c = state.conversation;
    const title = prompt("New title", c.conversation.title);
    if (!title) return;
    await api("conversations/" + encodeURIComponent(c.conversation.id), {
      method: "PATCH",
      json: { title },
    });
    await openConversation(c.conversation.id, true);
  });
  $("delete").addEventListener("click", async () => {
    const c = state.conversation;
    if (!confirm("Delete this conversation?")) return;
    await api("conversations/" + encodeURIComponent(c.conversation.id), { method: "DELETE" });
    state.conversation = null;
    render();
    await loadConversations(false);
  });
  $("key-form").addEventListener("submit", () => {
    state.key = $("key").value;
    sessionStorage.setItem("standby-chat-key", state.key);
    boot();
  });
  for (const id of ["export-md", "export-json", "export-all-md", "export-all-json"]) {
    $(id).addEventListener("click", async (event) => {
      if (!state.key) return; // a plain link works where no key is needed
      event.preventDefault();
      const response = await api($(id).getAttribute("href").replace("/chat/api/", ""));
      const link = el("a", { href: URL.createObjectURL(await response.blob()), download: "" });
      link.click();
    });
  }
  boot();
}

async function boot() {
  try {
    await loadConversations(false);
    await loadStatus();
    setInterval(loadStatus, 5000);
    const wanted = location.hash.slice(1);
    if (wanted) await openConversation(wanted);
    else $("question").focus();
  } catch (error) {
    if (error.message !== "a key is needed") notice(error.message);
  }
}

document.addEventListener("DOMContentLoaded", start);
