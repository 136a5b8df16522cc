// What a listener gets from a speaker, per language pair: the `pairs` matrix of /api/config
// (docs/protocol.md "Language pairs"), and the two rules the pickers mark their options by.

// From best to worst.
const RANK = ["same", "voice", "captions", "original"];

let matrix = {};

export function setPairs(pairs) {
  matrix = pairs && typeof pairs === "object" ? pairs : {};
}

function primary(code) {
  return String(code || "").split("-")[0].toLowerCase();
}

/** What a listener hearing `heard` gets from a speaker of `spoken`; null when unknown. */
export function pairGives(spoken, heard) {
  const s = primary(spoken);
  const h = primary(heard);
  if (s === h) return "same";
  const entry = matrix[s] && matrix[s][h];
  return entry && RANK.includes(entry.gives) ? entry.gives : null;
}

function pick(gives, better) {
  const known = gives.filter((g) => g !== null);
  if (known.length === 0) return null;
  const ranks = known.map((g) => RANK.indexOf(g));
  return RANK[better ? Math.min(...ranks) : Math.max(...ranks)];
}

/** In a call: the worst that hearing `heard` gives among these speakers' languages. */
export function worstGives(spokenLanguages, heard) {
  return pick(spokenLanguages.map((spoken) => pairGives(spoken, heard)), false);
}

/** Before joining: the best that hearing `heard` gives from any other language offered. */
export function bestGives(languageCodes, heard) {
  const others = languageCodes.filter((code) => primary(code) !== primary(heard));
  return pick(others.map((spoken) => pairGives(spoken, heard)), true);
}
