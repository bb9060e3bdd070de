// Describes the element an action acts on (`this`), for the safety gate, which asks before
// typing into password fields or submitting forms. It runs in an isolated world (see
// BrowserEnv.describe_target), so a page that redefines its own prototypes cannot change the
// answer. A field that masks what is typed (-webkit-text-security) or that the page marks as a
// password (autocomplete) counts as a password field.
function () {
  const el = this;
  const control = el.closest('button, input, select, textarea, a, [contenteditable]') || el;
  const form = control.form || control.closest('form');
  let type = (control.type || control.getAttribute('type') || '').toLowerCase();
  const takesText = control.tagName === 'INPUT' || control.tagName === 'TEXTAREA' || control.isContentEditable;
  if (takesText && type !== 'password') {
    const masked = getComputedStyle(control).webkitTextSecurity;
    const autocomplete = (control.getAttribute('autocomplete') || '').toLowerCase().split(/\s+/);
    if ((masked && masked !== 'none') || autocomplete.includes('current-password') || autocomplete.includes('new-password')) {
      type = 'password';
    }
  }
  const submit = !!form && ((control.tagName === 'BUTTON' && type === 'submit') ||
                            (control.tagName === 'INPUT' && (type === 'submit' || type === 'image')));
  return {tag: control.tagName.toLowerCase(), type, form: !!form, submit};
}
