// The in-window confirmation box (#confirm), used before removing a database and
// before restoring in place or undoing a restore.
import { $ } from "./dom";

/** Asks a question; resolves true for the `yes` button. Keyboard: Enter/Space on the
 * focused button, Escape cancels; focus returns to where it was. */
export function ask(question: string, yes: string): Promise<boolean> {
  const box = $("confirm");
  const back = document.activeElement as HTMLElement | null;
  $("confirm-text").textContent = question;
  $("confirm-yes").textContent = yes;
  box.hidden = false;
  $("confirm-yes").focus();
  return new Promise((resolve) => {
    const done = (answer: boolean) => {
      box.hidden = true;
      $("confirm-yes").removeEventListener("click", onYes);
      $("confirm-no").removeEventListener("click", onNo);
      box.removeEventListener("keydown", onKey);
      back?.focus();
      resolve(answer);
    };
    const onYes = () => done(true);
    const onNo = () => done(false);
    const onKey = (e: KeyboardEvent) => {
      if (e.key === "Escape") done(false);
    };
    $("confirm-yes").addEventListener("click", onYes);
    $("confirm-no").addEventListener("click", onNo);
    box.addEventListener("keydown", onKey);
  });
}
