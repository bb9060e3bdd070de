// Every element whose visible text (or aria-label, placeholder, title, alt, a button's value) matches
// `needle`, in document order: [{box: [left, top, width, height] in CSS pixels of the viewport, text,
// exact, visible, role}]. Hidden elements (no size, display/visibility hidden, opacity 0) are left out.
// One thing on screen is one candidate: an element with a match as good inside it is left out (the
// inner one stays), text inside a button or link stands for the button or link, and a label (or text
// inside one) that names a control (for=, a wrapping <label>, aria-labelledby) stands for the control:
// `type: {into: Username}` must click the input, not its label. `visible` is false when the element
// is partly outside the viewport or something else covers its centre (a list scrolled away, an overlay).
(needle) => {
  const norm = s => (s || '').replace(/\s+/g, ' ').trim().toLowerCase();
  const want = norm(needle);
  if (!want) return [];
  // Controls whose text is their name: text inside one stands for the control.
  const NAMED_BY_TEXT = 'a[href],button,summary,[role=button],[role=link],[role=menuitem],[role=tab],[role=option]';
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
  const role = el => {
    const explicit = (el.getAttribute('role') || '').trim().split(/\s+/)[0];
    if (explicit) return explicit;
    if (el.tagName === 'INPUT') {
      if (['submit', 'button', 'reset', 'image'].includes(el.type)) return 'button';
      if (['checkbox', 'radio'].includes(el.type)) return el.type;
      return 'textbox';
    }
    return el.tagName.toLowerCase();
  };
  const visible = (el, r) => {
    if (r.left < 0 || r.top < 0 || r.right > innerWidth || r.bottom > innerHeight) return false;
    const hit = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
    return !!hit && (el.contains(hit) || labelled(hit) === el);
  };

  const found = [];
  for (const el of document.querySelectorAll('body *')) {
    const texts = [el.getAttribute('aria-label'), el.getAttribute('placeholder'), el.getAttribute('title'), el.getAttribute('alt')];
    if (el.tagName === 'INPUT' && ['submit', 'button', 'reset'].includes(el.type)) texts.push(el.value);
    else if (!['INPUT', 'TEXTAREA', 'SELECT', 'SCRIPT', 'STYLE'].includes(el.tagName)) texts.push(el.innerText);
    let match = null;
    for (const t of texts) {
      const n = norm(t);
      if (n === want) { match = {el, text: t, exact: true}; break; }
      if (!match && n.includes(want)) match = {el, text: t, exact: false};
    }
    if (match && shown(el)) found.push(match);
  }
  // A match with a match as good inside it is the same thing on screen: the inner one stands for it.
  // `found` is in document order, so the matches inside one follow it.
  const covered = i => {
    for (let j = i + 1; j < found.length && found[i].el.contains(found[j].el); j++) {
      if (found[j].exact >= found[i].exact) return true;
    }
    return false;
  };
  const out = new Map();  // the element acted on -> its best match
  for (const [i, m] of found.entries()) {
    if (covered(i)) continue;
    const target = labelled(m.el) || m.el.closest(NAMED_BY_TEXT) || m.el;
    const r = shown(target) || shown(m.el);
    const prev = out.get(target);
    if (prev && (prev.exact || !m.exact)) continue;
    out.set(target, {
      box: [r.left, r.top, r.width, r.height],
      text: m.text.replace(/\s+/g, ' ').trim().slice(0, 100),
      exact: m.exact,
      visible: visible(target, r),
      role: role(target),
    });
  }
  return [...out.values()];
}
