// editor.js - the SQL editor (CodeMirror 6), loaded with the console only so
// that the first page stays small. Its look follows the page's colours.
import { EditorState, Prec } from "@codemirror/state";
import { EditorView, drawSelection, highlightActiveLine, highlightActiveLineGutter, keymap, lineNumbers } from "@codemirror/view";
import { defaultKeymap, history, historyKeymap, indentWithTab } from "@codemirror/commands";
import { HighlightStyle, bracketMatching, indentOnInput, syntaxHighlighting } from "@codemirror/language";
import { tags } from "@lezer/highlight";
import { closeBrackets, closeBracketsKeymap } from "@codemirror/autocomplete";
import { sql } from "@codemirror/lang-sql";
import { python } from "@codemirror/lang-python";

// Colours of the code from the page's variables (app.css), which follow light and dark
// and keep the contrast the page checks.
const highlight = HighlightStyle.define([
  { tag: [tags.keyword, tags.operatorKeyword, tags.modifier], color: "var(--code-keyword)" },
  { tag: [tags.string, tags.special(tags.string)], color: "var(--code-string)" },
  { tag: [tags.number, tags.bool, tags.null, tags.atom], color: "var(--code-number)" },
  { tag: [tags.comment, tags.lineComment, tags.blockComment], color: "var(--code-comment)", fontStyle: "italic" },
  { tag: [tags.typeName, tags.function(tags.variableName), tags.definition(tags.variableName)], color: "var(--code-name)" },
]);

// What a SQL editor needs, and no more (CodeMirror's basicSetup would double the download).
const setup = [
  lineNumbers(),
  highlightActiveLineGutter(),
  history(),
  drawSelection(),
  EditorState.allowMultipleSelections.of(true),
  indentOnInput(),
  syntaxHighlighting(highlight),
  bracketMatching(),
  closeBrackets(),
  highlightActiveLine(),
  keymap.of([...closeBracketsKeymap, ...defaultKeymap, ...historyKeymap, indentWithTab]),
];

const look = EditorView.theme({
  "&": { color: "var(--fg)", backgroundColor: "var(--bg)", border: "1px solid var(--line)", borderRadius: "6px", minHeight: "8rem" },
  ".cm-scroller": { minHeight: "8rem" },
  ".cm-content": { caretColor: "var(--fg)", fontFamily: "ui-monospace, Menlo, Consolas, monospace" },
  ".cm-gutters": { backgroundColor: "var(--card)", color: "var(--muted)", borderRight: "1px solid var(--line)" },
  ".cm-matchingBracket, &.cm-focused .cm-matchingBracket": { backgroundColor: "transparent", outline: "1px solid var(--muted)" },
  ".cm-activeLine, .cm-activeLineGutter": { backgroundColor: "color-mix(in srgb, var(--accent) 8%, transparent)" },
  "&.cm-focused": { outline: "3px solid var(--focus)" },
});

// An editor in parent holding doc, for `lang` ("sql" or "python"), named `label` for
// assistive technology; Ctrl+Enter (Cmd+Enter) calls onRun, each change onChange(text)
// (either may be null). It lives in a
// shadow root of parent: there CodeMirror styles itself through adopted style sheets,
// which the page's Content-Security-Policy allows (in the document it would add
// <style> elements, which a policy without 'unsafe-inline' refuses).
export function makeEditor(parent, doc, onRun, { lang = "sql", label = "SQL statement", onChange = null } = {}) {
  const root = parent.shadowRoot || parent.attachShadow({ mode: "open" });
  return new EditorView({
    doc,
    root,
    parent: root,
    extensions: [
      Prec.highest(keymap.of([{ key: "Mod-Enter", run: () => (onRun && onRun(), true) }])),
      setup,
      lang === "python" ? python() : sql(),
      look,
      EditorView.lineWrapping,
      EditorView.contentAttributes.of({ "aria-label": label }),
      EditorView.updateListener.of((u) => u.docChanged && onChange && onChange(u.state.doc.toString())),
    ],
  });
}

export function textOf(view) {
  return view.state.doc.toString();
}

export function setText(view, text) {
  view.dispatch({ changes: { from: 0, to: view.state.doc.length, insert: text } });
}
