// The browser half of mlwidget.widgets.bigupload.ChunkedUpload: choose (or drop) files, send
// each in slices of chunk_bytes as custom widget messages with one binary buffer, one slice at
// a time (the kernel acknowledges each with the bytes it holds), and show that progress.
const MB = 1024 * 1024;
const ANSWER_MS = 120000; // a kernel that has not acknowledged a slice by then is gone

function sizeText(n) {
  return n < MB ? (n / 1024).toFixed(1) + " KB" : (n / MB).toFixed(1) + " MB";
}

function render({ model, el }) {
  el.classList.add("mlwidget-chunked-upload");
  Object.assign(el.style, { display: "inline-flex", alignItems: "center", gap: "8px", flexWrap: "wrap" });
  const input = document.createElement("input");
  input.type = "file";
  input.style.display = "none";
  const button = document.createElement("button");
  button.type = "button";
  button.className = "jupyter-widgets jupyter-button widget-button widget-upload mlwidget-upload-button";
  const bar = document.createElement("progress");
  bar.className = "mlwidget-upload-bar";
  bar.max = 1;
  bar.value = 0;
  bar.hidden = true;
  bar.style.width = "160px";
  bar.style.margin = "0 4px";
  const note = document.createElement("span");
  note.className = "mlwidget-upload-note";
  note.setAttribute("aria-live", "polite");
  note.style.marginRight = "12px";
  el.append(input, button, bar, note);

  let busy = false;
  let current = null; // the id of the upload under way
  let waiting = null; // {resolve, reject, timer} of the kernel's next answer

  function sync() {
    button.textContent = "⬆ " + model.get("description") + " (" + model.get("count") + ")";
    button.title = model.get("tooltip") || model.get("description");
    button.disabled = model.get("disabled") || busy;
    input.accept = model.get("accept");
    input.multiple = model.get("multiple");
  }

  function show(text, state) {
    note.textContent = text;
    note.dataset.state = state;
    note.style.color = state === "error" ? "#b71c1c" : "#444";
  }

  function answer() {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        waiting = null;
        reject(new Error("The kernel did not answer for 2 minutes: it may have stopped. Reload the page."));
      }, ANSWER_MS);
      waiting = { resolve, reject, timer };
    });
  }

  function settle(how, value) {
    const w = waiting;
    if (!w) return;
    waiting = null;
    clearTimeout(w.timer);
    w[how](value);
  }

  function onMessage(msg) {
    if (!msg || msg.id !== current) return;
    if (msg.event === "refused") settle("reject", new Error(msg.error));
    else settle("resolve", msg);
  }

  async function send(chosen) {
    let files = Array.from(chosen || []);
    if (!model.get("multiple")) files = files.slice(0, 1);
    if (!files.length || busy) return;
    const id = Date.now().toString(36) + Math.random().toString(36).slice(2);
    const names = files.map((f) => f.name).join(", ");
    const total = files.reduce((n, f) => n + f.size, 0);
    current = id;
    busy = true;
    sync();
    bar.value = 0;
    bar.hidden = false;
    show("Sending " + names + ": 0 of " + sizeText(total), "sending");
    try {
      let reply = answer();
      model.send({
        event: "begin",
        id: id,
        files: files.map((f) => ({ name: f.name, type: f.type, size: f.size, last_modified: f.lastModified })),
      });
      await reply;
      const step = model.get("chunk_bytes");
      for (let i = 0; i < files.length; i++) {
        for (let offset = 0; offset < files[i].size; offset += step) {
          const slice = await files[i].slice(offset, offset + step).arrayBuffer();
          reply = answer();
          model.send({ event: "chunk", id: id, file: i, offset: offset }, undefined, [slice]);
          const ack = await reply;
          bar.value = total ? ack.received / total : 1;
          show("Sending " + names + ": " + sizeText(ack.received) + " of " + sizeText(total) +
               " (" + Math.floor((100 * ack.received) / total) + "%)", "sending");
        }
      }
      reply = answer();
      model.send({ event: "end", id: id });
      await reply;
      bar.value = 1;
      show("Sent " + names + " (" + sizeText(total) + ")", "done");
    } catch (err) {
      bar.hidden = true;
      show(String(err.message || err), "error");
      model.send({ event: "abort", id: id }); // the kernel drops what it holds of it
    } finally {
      busy = false;
      input.value = "";
      sync();
    }
  }

  input.addEventListener("change", () => send(input.files));
  el.addEventListener("click", (ev) => {
    if (ev.target !== input && !button.disabled) input.click();
  });
  el.addEventListener("dragover", (ev) => ev.preventDefault());
  el.addEventListener("drop", (ev) => {
    ev.preventDefault();
    if (!button.disabled) send(ev.dataTransfer.files);
  });
  model.on("msg:custom", onMessage);
  model.on("change:description change:count change:tooltip change:disabled change:accept change:multiple", sync);
  sync();
  return () => {
    model.off("msg:custom", onMessage);
    model.off(null, sync);
  };
}

export default { render };
