// Resolves (with [frames waited, DOM mutations seen]) after the first frame rendered once the page stopped
// changing: no DOM mutation while that frame was rendered, none within quietMs before it (counted from
// the start too), no finite animation or transition running that ends within maxMs, which bounds it,
// and the scroll a wheel started (scroll_mark.js) arrived, or 250 ms passed.
([quietMs, maxMs]) => new Promise(resolve => {
  const start = performance.now();
  const mark = window[Symbol.for('pixelpilot.scroll')];
  delete window[Symbol.for('pixelpilot.scroll')];
  const scrolling = now => mark && mark.el.scrollTop === mark.top && mark.el.scrollLeft === mark.left && now - start < 250;
  let mutations = 0, seen = 0, last = start, frames = 0;
  const observer = new MutationObserver(() => { mutations++; last = performance.now(); });
  observer.observe(document, {subtree: true, childList: true, attributes: true, characterData: true});
  // An animation that never ends (a spinner) or ends past the bound is not waited for: waiting cannot help.
  const moving = left => document.getAnimations().some(a => {
    if (a.playState !== 'running' || !a.effect) return false;
    const t = a.effect.getComputedTiming();
    const remaining = (t.endTime - (t.localTime ?? 0)) / Math.abs(a.playbackRate || 1);
    return remaining > 0 && remaining < left;
  });
  const check = () => {
    frames++;
    const now = performance.now(), left = maxMs - (now - start);
    if (left > 0 && (mutations !== seen || now - last < quietMs || scrolling(now) || moving(left))) return next();
    observer.disconnect();
    resolve([frames, mutations]);
  };
  // Mutations made before this frame's callbacks are in the frame. An intersection observer made
  // now reports after this frame's rendering, together with the page's own (which may start a
  // request, or mutate: then the next frame is waited for); a task queued then runs after them all.
  const next = () => requestAnimationFrame(() => {
    seen = mutations;
    const root = document.documentElement;
    if (!root) return setTimeout(check, 0);
    const io = new IntersectionObserver(() => { io.disconnect(); setTimeout(check, 0); });
    io.observe(root);
  });
  next();
})
