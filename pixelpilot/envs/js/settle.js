// Resolves once the DOM has been quiet for quietMs (or maxMs have passed) and two frames have rendered.
([quietMs, maxMs]) => new Promise(resolve => {
  const start = performance.now();
  let timer;
  const done = () => { obs.disconnect(); requestAnimationFrame(() => requestAnimationFrame(() => resolve(true))); };
  const obs = new MutationObserver(() => {
    clearTimeout(timer);
    timer = setTimeout(done, performance.now() - start > maxMs ? 0 : quietMs);
  });
  obs.observe(document, {subtree: true, childList: true, attributes: true, characterData: true});
  timer = setTimeout(done, quietMs);
})
