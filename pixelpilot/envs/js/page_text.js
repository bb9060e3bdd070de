// The visible text of the page.
() => document.body ? document.body.innerText : ''
