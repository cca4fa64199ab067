// gwh serve: progressive enhancement only; every page works without JavaScript.
// Controls marked data-autosubmit re-submit their form when changed (stretch, mask).
document.addEventListener("change", (event) => {
  const el = event.target;
  if (el instanceof HTMLElement && el.hasAttribute("data-autosubmit") && el.form) {
    el.form.submit();
  }
});
// Ctrl+Enter (Cmd+Enter) in the SQL box runs the query.
document.addEventListener("keydown", (event) => {
  const el = event.target;
  if (el instanceof HTMLTextAreaElement && el.name === "q" && event.key === "Enter" &&
      (event.ctrlKey || event.metaKey) && el.form) {
    event.preventDefault();
    el.form.submit();
  }
});
