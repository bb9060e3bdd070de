// Just before a wheel at (x, y) by (dx, dy): notes where the scroller it will move stands (the
// nearest one under the point that can still move that way, else none), for settle.js to wait until
// the scroll reaches the page: the compositor scrolls first and tells the page frames later.
([x, y, dx, dy]) => {
  const root = document.scrollingElement;
  const movable = (el, scrollable) =>
    (dy > 0 && scrollable(el, 'overflowY') && el.scrollTop + el.clientHeight < el.scrollHeight - 1) ||
    (dy < 0 && scrollable(el, 'overflowY') && el.scrollTop > 0) ||
    (dx > 0 && scrollable(el, 'overflowX') && el.scrollLeft + el.clientWidth < el.scrollWidth - 1) ||
    (dx < 0 && scrollable(el, 'overflowX') && el.scrollLeft > 0);
  const scrollable = (el, axis) => el === root || ['auto', 'scroll', 'overlay'].includes(getComputedStyle(el)[axis]);
  let el = document.elementFromPoint(x, y);
  while (el && !movable(el, scrollable)) el = el === root ? null : (el.parentElement || root);
  if (!el && root && movable(root, scrollable)) el = root;
  window[Symbol.for('pixelpilot.scroll')] = el ? {el, top: el.scrollTop, left: el.scrollLeft} : undefined;
}
