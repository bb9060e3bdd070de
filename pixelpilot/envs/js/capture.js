// Readies the page for a screenshot the way Playwright's page.screenshot() does: hides the text caret
// of the focused field (in shadow roots and same-origin frames too; restore=true puts it back) and
// waits for web fonts. Returns the document's title. With settle = [settle.js, its arguments] it
// runs the settle script too, at once, and returns [title, what that resolved with] ([0, 0] while
// web fonts load: the frame then is no look to keep).
async (restore, settle) => {
  const key = Symbol.for('pixelpilot.caret');
  const hidden = window[key];
  if (hidden) {
    delete window[key];
    hidden.el.style.setProperty('caret-color', hidden.value, hidden.priority);
  }
  if (restore) return null;
  let el = document.activeElement;
  for (;;) {
    if (el && el.shadowRoot && el.shadowRoot.activeElement) el = el.shadowRoot.activeElement;
    else if (el && el.contentDocument && el.contentDocument.activeElement) el = el.contentDocument.activeElement;
    else break;
  }
  if (el && el.style && (el.matches('input, textarea') || el.isContentEditable)) {
    window[key] = {el, value: el.style.getPropertyValue('caret-color'), priority: el.style.getPropertyPriority('caret-color')};
    el.style.setProperty('caret-color', 'transparent', 'important');
  }
  const loading = document.fonts && document.fonts.status === 'loading';
  if (settle) {
    // Started before anything is awaited: the observer is in place when this evaluation returns.
    const settled = settle[0](settle[1]);
    return [document.title, loading ? [0, 0] : await settled];
  }
  if (loading) await document.fonts.ready;
  return document.title;
}
