// Readies the page for a screenshot the way Playwright's page.screenshot() does: hides the text caret
// of the focused field (in shadow roots and same-origin frames too; restore=true puts it back) and
// waits for web fonts. Returns the document's title.
async (restore) => {
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
  if (document.fonts && document.fonts.status === 'loading') await document.fonts.ready;
  return document.title;
}
