// Display names and room ids: the same rules as the server's (signaling/names.py and
// signaling/rooms.py); tests/test_names.py runs these in Chromium against the server's.
// The patterns themselves come from the server's definitions through generated.js.

import { NAME_FORBIDDEN, ROOM_ID } from "./generated.js";

export { ROOM_ID };

// { name, problem }: the name as the server will store it, and null, "characters", "empty" or
// "long" (more than maxLength code points; String.length would count UTF-16 units).
export function checkName(raw, maxLength) {
  const normal = String(raw).normalize("NFC");
  if (NAME_FORBIDDEN.test(normal)) return { name: normal, problem: "characters" };
  // With those refused, trim() drops exactly the Zs spaces, as Python's strip() does.
  const name = normal.trim();
  if (!name) return { name, problem: "empty" };
  if ([...name].length > maxLength) return { name, problem: "long" };
  return { name, problem: null };
}
