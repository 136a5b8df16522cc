// Display names and room ids: the same rules as the server's (signaling/names.py and
// signaling/rooms.py); tests/test_names.py runs these in Chromium against the server's.

// Unicode general categories a name may not contain: control, invisible formatting, lone
// surrogates, line and paragraph separators (FORBIDDEN_CATEGORIES in signaling/names.py).
const FORBIDDEN = /[\p{Cc}\p{Cf}\p{Cs}\p{Zl}\p{Zp}]/u;

export const ROOM_ID = /^[A-Za-z0-9_-]{6,64}$/;

// { name, problem }: the name as the server will store it, and null, "characters", "empty" or
// "long" (more than maxLength code points; String.length would count UTF-16 units).
export function checkName(raw, maxLength) {
  const normal = String(raw).normalize("NFC");
  if (FORBIDDEN.test(normal)) return { name: normal, problem: "characters" };
  // With those refused, trim() drops exactly the Zs spaces, as Python's strip() does.
  const name = normal.trim();
  if (!name) return { name, problem: "empty" };
  if ([...name].length > maxLength) return { name, problem: "long" };
  return { name, problem: null };
}
