// What the page remembers across visits (name, languages, the listener's mix) in localStorage.

const STORAGE_KEY = "callserver.prefs";

export function loadPrefs() {
  try {
    const raw = JSON.parse(localStorage.getItem(STORAGE_KEY) || "{}");
    return raw && typeof raw === "object" ? raw : {};
  } catch {
    return {};
  }
}

/** Merge `prefs` into what is stored. */
export function savePrefs(prefs) {
  try {
    localStorage.setItem(STORAGE_KEY, JSON.stringify({ ...loadPrefs(), ...prefs }));
  } catch {
    // Private mode or storage full: the page works without remembering.
  }
}
