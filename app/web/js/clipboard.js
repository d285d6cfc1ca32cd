// Copying a block of text for the user: the Clipboard API, or the selection where it is missing.

/** Copies the text of `element`; answers when done. */
export async function copyText(element) {
  const text = element.value ?? element.textContent;
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    // No clipboard API (a page not served from localhost or https): copy the selection instead.
    if (typeof element.select === "function") {
      element.select();
    } else {
      const range = document.createRange();
      range.selectNodeContents(element);
      const selection = window.getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
    }
    document.execCommand("copy");
  }
}
