// The settings screen (#view-settings): upload and check intervals, notifications.
import * as api from "../api";
import { asError } from "../logic";
import { $, input, show } from "./dom";

/** Loads the settings into the form, then shows it. */
export async function openSettings() {
  const s = await api.getSettings();
  input("set-sync").value = String(s.sync_interval_ms);
  input("set-monitor").value = String(s.monitor_interval_ms);
  input("set-notify").checked = s.notifications;
  $("settings-result").textContent = "";
  show("settings");
}

export function wireSettings() {
  $("settings-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      await api.saveSettings({
        sync_interval_ms: Number(input("set-sync").value),
        monitor_interval_ms: Number(input("set-monitor").value),
        notifications: input("set-notify").checked,
      });
      $("settings-result").textContent = "✓ Saved.";
    } catch (e) {
      // The message only: the form says what to fix, and no code needs a hint here.
      $("settings-result").textContent = `⚠ ${asError(e).message}`;
    }
  });
}
