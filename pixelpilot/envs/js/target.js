// What an action would act on: the element under the pointer (x, y in CSS pixels), or the focused
// one when x is null (typing, keys). The safety gate asks before typing into password fields or
// submitting forms.
([x, y]) => {
  const el = x === null ? document.activeElement : document.elementFromPoint(x, y);
  if (!el) return null;
  const control = el.closest('button, input, select, textarea, a, [contenteditable]') || el;
  const form = control.form || control.closest('form');
  const type = (control.type || control.getAttribute('type') || '').toLowerCase();
  const submit = !!form && ((control.tagName === 'BUTTON' && type === 'submit') ||
                            (control.tagName === 'INPUT' && (type === 'submit' || type === 'image')));
  return {tag: control.tagName.toLowerCase(), type, form: !!form, submit};
}
