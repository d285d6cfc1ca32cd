// A row of tabs sharing one panel (the WAI-ARIA tabs pattern): the arrow keys, Home and End move
// between tabs, Tab moves into the panel. `onSelect(tab)` fills the panel.

export function setupTabs(tablist, panel, onSelect) {
  const tabs = [...tablist.querySelectorAll('[role="tab"]')];
  const select = (tab, focus) => {
    for (const other of tabs) {
      const selected = other === tab;
      other.setAttribute("aria-selected", String(selected));
      other.tabIndex = selected ? 0 : -1;
    }
    panel.setAttribute("aria-labelledby", tab.id);
    if (focus) tab.focus();
    onSelect(tab);
  };
  tablist.addEventListener("click", (event) => {
    const tab = event.target.closest('[role="tab"]');
    if (tab) select(tab, false);
  });
  tablist.addEventListener("keydown", (event) => {
    const index = tabs.indexOf(document.activeElement);
    if (index < 0) return;
    const moves = { ArrowRight: index + 1, ArrowLeft: index - 1, Home: 0, End: tabs.length - 1 };
    if (!(event.key in moves)) return;
    event.preventDefault();
    select(tabs[(moves[event.key] + tabs.length) % tabs.length], true);
  });
  return {
    selected: () => tabs.find((tab) => tab.getAttribute("aria-selected") === "true"),
    select: (tab) => select(tab, false),
  };
}
