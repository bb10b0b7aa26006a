// DOM helpers the views share: element lookup, buttons, error boxes and switching
// the screen shown. The ids are index.html's (and the end-to-end test's).
import { errorText, type AppError } from "../logic";
import { setView, VIEWS, type View } from "../state";

export const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;
export const input = (id: string) => $<HTMLInputElement>(id);

/** Shows one screen, hides the others and moves focus to its heading, so screen
 * readers and the keyboard follow the change. */
export function show(v: View) {
  setView(v);
  for (const name of VIEWS) {
    $(`view-${name}`).hidden = name !== v;
  }
  const heading = document.querySelector<HTMLElement>(`#view-${v} h2`);
  heading?.setAttribute("tabindex", "-1");
  heading?.focus();
}

/** Shows an error with its hint; the code goes to data-code (the e2e test reads it). */
export function showError(el: HTMLElement, e: AppError) {
  el.textContent = errorText(e);
  el.dataset.code = e.code;
  el.hidden = false;
}

export function clearError(el: HTMLElement) {
  el.textContent = "";
  el.hidden = true;
  delete el.dataset.code;
}

export function button(label: string, cls: string, onClick: () => void, ariaLabel?: string): HTMLButtonElement {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = label;
  b.className = cls;
  if (ariaLabel) b.setAttribute("aria-label", ariaLabel);
  b.addEventListener("click", onClick);
  return b;
}
