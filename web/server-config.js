// What /api/config says about this server, read once at start-up.

import { NAME_MAX_LENGTH } from "./generated.js";
import { requestJson } from "./http.js";
import { setLanguages } from "./languages.js";
import { setPairs } from "./pairs.js";

let nameMax = NAME_MAX_LENGTH;

/** Fetch the configuration; false when the server cannot be reached or its answer is odd. */
export async function loadServerConfig() {
  let config;
  try {
    config = await requestJson("/api/config");
  } catch {
    return false;
  }
  if (!config || typeof config !== "object" || !Array.isArray(config.languages)) return false;
  setLanguages(config.languages);
  setPairs(config.pairs);
  if (Number.isInteger(config.name_max_length)) nameMax = config.name_max_length;
  return true;
}

/** The longest display name this server accepts. */
export function nameMaxLength() {
  return nameMax;
}
