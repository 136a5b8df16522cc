// What each "I hear" choice gives, shown where it is chosen. Before joining, an option is
// marked by the best it gives from any other language the server offers (nothing translated
// into it: "original only"). In the call, by the worst it gives for the people in the room now,
// and a line per participant says what the current choice gets from them. Options and lines
// carry data-gives (same, voice, captions, original) for what they say.

import { languageName } from "./languages.js";
import { bestGives, pairGives, worstGives } from "./pairs.js";
import { onRosterChange, otherParticipants, self } from "./roster.js";
import { givesFromText, givesMark } from "./words.js";

const $ = (id) => document.getElementById(id);

/** Set each option's data-gives and label suffix from `givesFor(code)` (null: unmarked). */
function markOptions(select, givesFor) {
  for (const option of select.options) {
    const label = option.dataset.label || option.textContent;
    const gives = givesFor(option.value);
    const mark = gives ? givesMark(gives) : "";
    option.textContent = mark ? `${label} — ${mark}` : label;
    if (gives) option.dataset.gives = gives;
    else delete option.dataset.gives;
  }
}

/** The start form's "I want to hear" picker. */
export function markStartPicker() {
  const select = $("listen-select");
  const codes = [...select.options].map((option) => option.value);
  markOptions(select, (heard) => bestGives(codes, heard));
}

function renderSummary(me, others) {
  const list = $("pair-summary");
  list.replaceChildren();
  if (me) {
    for (const other of others) {
      const gives = pairGives(other.spoken, me.listen) || "original";
      const item = document.createElement("li");
      item.dataset.participant = other.id;
      item.dataset.gives = gives;
      item.textContent = givesFromText(other.name, languageName(other.spoken), gives);
      list.append(item);
    }
  }
  list.hidden = list.childElementCount === 0;
}

/** The call's "I hear" picker and the line per participant. */
export function renderCallPairs() {
  const me = self();
  const others = me ? otherParticipants() : [];
  const spoken = others.map((other) => other.spoken);
  markOptions($("call-listen-select"), (heard) =>
    spoken.length ? worstGives(spoken, heard) : null,
  );
  renderSummary(me, others);
}

export function setupPairView() {
  markStartPicker();
  renderCallPairs();
  onRosterChange(renderCallPairs);
}
