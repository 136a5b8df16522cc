// What /api/config says about this server, read once at start-up.

import { NAME_MAX_LENGTH } from "./generated.js";
import { requestJson } from "./http.js";
import { setLanguages } from "./languages.js";
import { setPairs } from "./pairs.js";

// Until the server says otherwise: a two-person call, rooms for up to eight, titles as
// signaling/http.py's default.
let nameMax = NAME_MAX_LENGTH;
let titleMax = 80;
let defaultCapacity = 2;
let maxCapacity = 8;

function positiveInteger(value) {
  return Number.isInteger(value) && value > 0;
}

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
  if (positiveInteger(config.name_max_length)) nameMax = config.name_max_length;
  if (positiveInteger(config.title_max_length)) titleMax = config.title_max_length;
  if (positiveInteger(config.room_capacity)) defaultCapacity = config.room_capacity;
  if (positiveInteger(config.room_max_capacity)) maxCapacity = config.room_max_capacity;
  return true;
}

/** The longest display name this server accepts. */
export function nameMaxLength() {
  return nameMax;
}

/** The longest room title this server accepts. */
export function titleMaxLength() {
  return titleMax;
}

/** The size of a call nobody chose a size for (a two-person call). */
export function roomDefaultCapacity() {
  return defaultCapacity;
}

/** The largest room this server makes (`room_max_capacity`). */
export function roomMaxCapacity() {
  return maxCapacity;
}
