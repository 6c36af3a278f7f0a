// Helpers shared by the visualizer pages: safe text rendering, reading dropped
// files, and showing messages. Every piece of text that comes from a data file
// goes through escapeHtml (directly or via renderMarkdown), so a conversation
// can never inject markup into the page.
"use strict";

const OChat = (() => {
  const HTML_ESCAPES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

  function escapeHtml(value) {
    return String(value ?? "").replace(/[&<>"']/g, (ch) => HTML_ESCAPES[ch]);
  }

  function escapeRegExp(value) {
    return value.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  }

  // Escape `raw`, wrapping case-insensitive occurrences of `term` in <mark>.
  // The split happens before escaping, so a term can never match inside an entity.
  function escapeWithHighlight(raw, term) {
    if (!term) return escapeHtml(raw);
    return String(raw)
      .split(new RegExp("(" + escapeRegExp(term) + ")", "gi"))
      .map((piece, i) => (i % 2 === 1 ? "<mark>" + escapeHtml(piece) + "</mark>" : escapeHtml(piece)))
      .join("");
  }

  // Inline `code` spans inside one paragraph.
  function renderInline(raw, term) {
    return String(raw)
      .split(/(`[^`\n]+`)/g)
      .map((piece, i) =>
        i % 2 === 1 ? "<code>" + escapeWithHighlight(piece.slice(1, -1), term) + "</code>" : escapeWithHighlight(piece, term)
      )
      .join("");
  }

  // A deliberately small Markdown subset: fenced code blocks become <pre><code>,
  // inline `code` becomes <code>, blank lines separate paragraphs, and line breaks
  // inside a paragraph are kept (CSS white-space: pre-wrap). Lists, headings and
  // tables read fine as plain text that way.
  function renderMarkdown(text, term) {
    const lines = String(text ?? "").split("\n");
    const html = [];
    let paragraph = [];
    const flushParagraph = () => {
      const body = paragraph.join("\n").replace(/^\n+|\n+$/g, "");
      if (body) html.push('<p class="md-p">' + renderInline(body, term) + "</p>");
      paragraph = [];
    };
    for (let i = 0; i < lines.length; i++) {
      const fence = lines[i].match(/^\s*(`{3,}|~{3,})\s*([\w+#.-]*)/);
      if (fence) {
        flushParagraph();
        const code = [];
        i++;
        while (i < lines.length && !lines[i].trim().startsWith(fence[1])) code.push(lines[i++]);
        const language = fence[2] ? ' data-language="' + escapeHtml(fence[2]) + '"' : "";
        html.push("<pre" + language + "><code>" + escapeWithHighlight(code.join("\n"), term) + "</code></pre>");
      } else if (lines[i].trim() === "") {
        flushParagraph();
      } else {
        paragraph.push(lines[i]);
      }
    }
    flushParagraph();
    return html.join("");
  }

  function parseJson(text, fileName) {
    try {
      return JSON.parse(text);
    } catch (error) {
      throw new Error(`${fileName} is not valid JSON (${error.message}).`);
    }
  }

  // JSON Lines: one JSON value per non-empty line; the error names the line.
  function parseJsonLines(text, fileName) {
    const rows = [];
    String(text)
      .split("\n")
      .forEach((line, i) => {
        if (!line.trim()) return;
        try {
          rows.push(JSON.parse(line));
        } catch (error) {
          throw new Error(`${fileName}, line ${i + 1}, is not valid JSON (${error.message}).`);
        }
      });
    return rows;
  }

  function showMessage(element, kind, text) {
    element.hidden = !text;
    element.className = "message message-" + kind;
    element.textContent = text || "";
  }

  // Files from an <input type=file> and from anything dropped on the page.
  function onFilesChosen(input, callback) {
    input.addEventListener("change", () => {
      if (input.files.length) callback(Array.from(input.files));
      input.value = "";
    });
    document.addEventListener("dragover", (event) => {
      event.preventDefault();
      document.body.classList.add("dragging");
    });
    document.addEventListener("dragleave", (event) => {
      if (!event.relatedTarget) document.body.classList.remove("dragging");
    });
    document.addEventListener("drop", (event) => {
      event.preventDefault();
      document.body.classList.remove("dragging");
      if (event.dataTransfer.files.length) callback(Array.from(event.dataTransfer.files));
    });
  }

  // Data inlined by the Python side into a self-contained copy of the page, or null.
  function embeddedData() {
    const slot = document.getElementById("embedded-data");
    const text = slot ? slot.textContent.trim() : "";
    return text ? JSON.parse(text) : null;
  }

  const PLOTLY_MISSING =
    "plotly.js is not installed next to this page. Run `python -m visualization.install_plotly` once " +
    "(it copies plotly.min.js from the installed plotly Python package), or make a self-contained page " +
    "with the --html option of the command that wrote your data.";

  function plotlyAvailable() {
    return typeof window.Plotly !== "undefined";
  }

  const PALETTE = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
    "#393b79", "#e6550d", "#31a354", "#ad494a", "#756bb1", "#843c39", "#de9ed6", "#636363", "#8ca252", "#3182bd",
  ];

  return {
    escapeHtml, escapeWithHighlight, renderMarkdown, parseJson, parseJsonLines, showMessage,
    onFilesChosen, embeddedData, plotlyAvailable, PLOTLY_MISSING, PALETTE,
  };
})();
