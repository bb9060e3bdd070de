// The element whose visible text (or label, placeholder, value, alt) matches `needle`; prefers exact
// matches, then interactive elements, then the smallest box. When the match is a label (or text
// inside one) that names a control (for=, a wrapping <label>, aria-labelledby), the control is what
// is meant: a script's `type: {into: Username}` must click the input, not its label. Returns the
// box [left, top, width, height] in CSS pixels of the viewport, or null.
(needle) => {
  const norm = s => (s || '').replace(/\s+/g, ' ').trim().toLowerCase();
  const want = norm(needle);
  if (!want) return null;
  const INTERACTIVE = 'a,button,input,select,textarea,label,summary,[role=button],[role=link],[onclick],[tabindex]';
  const shown = el => {
    const r = el.getBoundingClientRect();
    if (r.width < 1 || r.height < 1) return null;
    const st = getComputedStyle(el);
    if (st.visibility === 'hidden' || st.display === 'none' || st.opacity === '0') return null;
    return r;
  };
  const labelled = el => {
    const label = el.closest('label');
    if (label && label.control) return label.control;
    for (let node = el; node && node !== document.body; node = node.parentElement) {
      if (!node.id) continue;
      const control = document.querySelector(`[aria-labelledby~="${CSS.escape(node.id)}"]`);
      if (control) return control;
    }
    return null;
  };
  let best = null, bestRect = null, bestScore = Infinity;
  for (const el of document.querySelectorAll('body *')) {
    const cands = [el.getAttribute('aria-label'), el.getAttribute('placeholder'), el.getAttribute('title'), el.getAttribute('alt')];
    if (el.tagName === 'INPUT' && ['submit', 'button', 'reset'].includes(el.type)) cands.push(el.value);
    else if (!['INPUT', 'TEXTAREA', 'SELECT', 'SCRIPT', 'STYLE'].includes(el.tagName)) cands.push(el.innerText);
    let tier = -1;
    for (const c of cands) {
      const n = norm(c);
      if (!n) continue;
      if (n === want) { tier = 0; break; }
      if (n.includes(want)) tier = 2;
    }
    if (tier < 0) continue;
    const r = shown(el);
    if (!r) continue;
    if (!el.closest(INTERACTIVE)) tier += 1;
    const score = tier * 1e9 + r.width * r.height;
    if (score < bestScore) { bestScore = score; best = el; bestRect = r; }
  }
  if (!best) return null;
  const control = labelled(best);
  const r = (control && shown(control)) || bestRect;
  return [r.left, r.top, r.width, r.height];
}
