// The languages this server offers (from /api/config) and the pickers that list them.

const languages = new Map(); // code -> {code, name, native}

export function setLanguages(list) {
  languages.clear();
  for (const lang of list) {
    if (lang && typeof lang.code === "string") languages.set(lang.code, lang);
  }
}

/** "Español (Spanish)"; a regional tag falls back to its language; unknown codes stay codes. */
export function languageLabel(code) {
  const lang = languages.get(code) || languages.get(String(code).split("-")[0]);
  if (!lang) return code;
  return lang.native === lang.name ? lang.name : `${lang.native} (${lang.name})`;
}

/** "Vietnamese": the language's English name; unknown codes stay codes. */
export function languageName(code) {
  const lang = languages.get(code) || languages.get(String(code).split("-")[0]);
  return lang ? lang.name : code;
}

export function fillLanguageSelect(select, selected) {
  select.replaceChildren();
  for (const lang of languages.values()) {
    const option = document.createElement("option");
    option.value = lang.code;
    option.textContent = languageLabel(lang.code);
    option.dataset.label = option.textContent;
    select.append(option);
  }
  select.value = languages.has(selected) ? selected : "en";
}

/** The browser's language when this server offers it, else English. */
export function defaultLanguage() {
  const primary = (navigator.language || "en").split("-")[0].toLowerCase();
  return languages.has(primary) ? primary : "en";
}
