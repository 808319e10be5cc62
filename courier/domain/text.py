"""Text at the boundary: the ONE set of rules every piece of text passes before it is stored,
whoever sent it (the JSON API, the CSV import, a courier's scan).

* **Refused** (a field error naming the field, for what a person or the office's system sent):
  lone surrogates (no UTF-8 encoder, and so no database, takes them), control characters (C0,
  DEL, C1; a newline is allowed in free text only), the line and paragraph separators, and the
  explicit direction overrides, embeddings and isolates (U+202A-U+202E, U+2066-U+2069: they make
  a name read backwards on a screen or in a spreadsheet, and no name or note needs them).
* **Normalised**: NFC, so the same name typed on two keyboards is the same name.
* A **name** must have at least one visible character: one made only of spaces, zero-width or
  other invisible characters is refused.
* **Courier text** is never refused (a scan is a fact we must keep): :func:`sanitise` replaces
  what would be refused, and :func:`mask_personal` hides the receiver's and applicant's names,
  phones and streets before the text reaches an exception item, a delivery's reason or a page.
* **CSV export**: :func:`csv_cell` neutralises a value a spreadsheet would run as a formula.

The JSON Schemas in ``schemas/`` use the very same character classes (:data:`NAME_PATTERN`,
:data:`LINE_PATTERN`, :data:`FREE_TEXT_PATTERN`, :func:`free_text_pattern`): the schema and the
server agree on every text field (tests/unit/domain/test_text.py checks it field by field).
Patterns are written for both regex dialects (ECMA-262, which JSON Schema uses, and Python's):
plain ``\\uXXXX`` classes, no ``\\p{…}``, ``\\w`` or ``\\d``.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

from schemas import FieldError

# ---------------------------------------------------------------------------------------------
# Character classes (the inside of a [...]): shared with the JSON Schemas, see the module doc

CONTROLS = "\\u0000-\\u0009\\u000b-\\u001f\\u007f-\\u009f"  # C0 without "\n", DEL, C1
NEWLINE = "\\u000a"
SEPARATORS = "\\u2028\\u2029"  # line and paragraph separators: newlines in disguise
BIDI_CONTROLS = "\\u202a-\\u202e\\u2066-\\u2069"  # explicit overrides, embeddings, isolates
# allowed, but not visible: spaces of every width, zero-width and other invisible characters
BLANKS = (
    "\\u0020\\u00a0\\u1680\\u2000-\\u200a\\u202f\\u205f\\u3000"  # spaces (Zs)
    "\\u00ad\\u034f\\u061c\\u115f\\u1160\\u17b4\\u17b5\\u180b-\\u180f\\u200b-\\u200f"
    "\\u2060-\\u2064\\u206a-\\u206f\\u2800\\u3164\\ufe00-\\ufe0f\\ufeff\\uffa0\\ufff9-\\ufffb"
)

_REFUSED_LINE = CONTROLS + NEWLINE + SEPARATORS + BIDI_CONTROLS
_REFUSED_FREE = CONTROLS + SEPARATORS + BIDI_CONTROLS


def text_pattern(*, visible: int = 0, multiline: bool = False) -> str:
    """The JSON Schema pattern of a text field: no refused character (a newline only when
    ``multiline``) and at least ``visible`` visible characters. Linear to match: each part's
    character class excludes the next part's, so nothing backtracks."""
    refused = _REFUSED_FREE if multiline else _REFUSED_LINE
    if visible == 0:
        return f"^[^{refused}]*$"
    blank = f"[{BLANKS}{NEWLINE if multiline else ''}]*"
    one = f"[^{refused}{BLANKS}{NEWLINE}]"
    more = f"(?:{blank}{one}){{{visible - 1}}}" if visible > 1 else ""
    return f"^{blank}{one}{more}[^{refused}]*$"


LINE_PATTERN = text_pattern()  # one line of text
FREE_TEXT_PATTERN = text_pattern(multiline=True)  # a note: newlines allowed
NAME_PATTERN = text_pattern(visible=1)  # a name or a street: one line, something visible


def _python(pattern: str) -> re.Pattern[str]:
    # JSON Schema's "$" is the end of the text; Python's also matches before a final "\n"
    return re.compile(pattern.removeprefix("^").removesuffix("$"))


_LINE = _python(LINE_PATTERN)
_FREE = _python(FREE_TEXT_PATTERN)
_VISIBLE = re.compile(f"[^{_REFUSED_FREE}{BLANKS}{NEWLINE}]")
_SURROGATE = re.compile("[\ud800-\udfff]")
_BIDI = re.compile(f"[{BIDI_CONTROLS}]")

LONE_SURROGATE = "must not contain lone surrogates (text that is not valid Unicode)"
CONTROL = "must not contain control characters"
CONTROL_OR_NEWLINE = "must not contain control characters or line breaks"
DIRECTION = "must not contain direction-override characters"
INVISIBLE = "must contain at least one visible character"


def problem(value: str, *, multiline: bool = False) -> str | None:
    """Why ``value`` may not be stored as text (a message without the value), or None."""
    if _SURROGATE.search(value):
        return LONE_SURROGATE
    if (_FREE if multiline else _LINE).fullmatch(value):
        return None
    if _BIDI.search(value):
        return DIRECTION
    return CONTROL if multiline else CONTROL_OR_NEWLINE


def clean(value: str, path: str, *, multiline: bool = False) -> tuple[str, list[FieldError]]:
    """``value`` NFC-normalised, or the field error at ``path`` saying what is wrong."""
    why = problem(value, multiline=multiline)
    if why is not None:
        return value, [FieldError(path, why)]
    return unicodedata.normalize("NFC", value), []


def visible_count(value: str) -> int:
    return len(_VISIBLE.findall(value))


def clean_name(value: str, path: str) -> tuple[str, list[FieldError]]:
    """A person's name: one line, at least one visible character, NFC, spaces collapsed."""
    text, errors = clean(value, path)
    if errors:
        return value, errors
    if not visible_count(text):
        return value, [FieldError(path, INVISIBLE)]
    return " ".join(text.split()), []


def clean_tree(
    node: object, path: str = "$", *, free_text: frozenset[str] = frozenset()
) -> tuple[object, list[FieldError]]:
    """Every string of a parsed JSON body through :func:`clean` (one line unless its path is in
    ``free_text``); keys too. The body back NFC-normalised, with every error by path."""
    if isinstance(node, str):
        return clean(node, path, multiline=path in free_text)
    errors: list[FieldError] = []
    if isinstance(node, dict):
        out: dict[str, object] = {}
        for key, value in node.items():
            at = f"{path}.{key}"
            why = problem(key)
            if why is not None:
                errors.append(FieldError(path, f"a field name {why.removeprefix('must ')}"))
                continue
            out[key], found = clean_tree(value, at, free_text=free_text)
            errors += found
        return out, errors
    if isinstance(node, list):
        items: list[object] = []
        for i, value in enumerate(node):
            item, found = clean_tree(value, f"{path}[{i}]", free_text=free_text)
            items.append(item)
            errors += found
        return items, errors
    return node, []


# ---------------------------------------------------------------------------------------------
# Courier text: kept, never refused; made storable and stripped of personal data

_REPLACEMENT = "\ufffd"


def sanitise(value: str, *, multiline: bool = True) -> str:
    """Courier text made storable: lone surrogates become U+FFFD, refused characters a space
    (a newline stays in free text), then NFC."""
    text = _SURROGATE.sub(_REPLACEMENT, value)
    text = re.sub(f"[{_REFUSED_FREE if multiline else _REFUSED_LINE}]", " ", text)
    return unicodedata.normalize("NFC", text)


MASK = "[…]"
# Indonesian mobiles (0812…, +62 812…, 62812…) and landlines with their area code ((0342) 80…)
_PHONE = re.compile(
    r"(?<![\w+])(?:(?:\+62|62|0)[\s.-]?8[0-9](?:[\s.-]?[0-9]){6,11}"
    r"|\(?0[2-9][0-9]{1,3}\)?[\s.-]?[0-9]{5,8})(?!\w)"
)
_BRACKETED = re.compile(r"【[^】]*】")
_STREET = re.compile(
    r"(?i)(?<!\w)(?:(?:jl|jln|jalan|gg|gang|perum|perumahan|komplek|kompleks|dusun|dsn)\.?\s"
    r"[^,;()\[\]|\n]*"
    r"|(?:rt|rw)\.?\s*[0-9]{1,3}(?:\s*/\s*(?:rw\.?\s*)?[0-9]{1,3})?"
    r"|no\.\s*[0-9]+[a-z]?|blok\s+[\w-]+)"
)
_NAMED = re.compile(
    r"(?<!\w)(?i:diterima(?:\s+oleh)?|penerima(?:nya)?|yang\s+menerima|received\s+by|"
    r"signed\s+by|receiver|ttd|a/n|atas\s+nama|bapak|bpk|pak|ibu|bu|sdr|sdri|saudara|"
    r"saudari|mr|mrs|ms|hubungi|contact|telp|hp|wa)(?!\w)\.?[\s:=-]*"
    r"(?:[A-Z][\w'.-]*(?:\s+[A-Z][\w'.-]*){0,4}|\+?[0-9][0-9 ()+.-]{5,})"
)


def _known_parts(known: Iterable[str]) -> list[str]:
    parts: set[str] = set()
    for value in known:
        text = " ".join(value.split())
        if len(text) >= 3:
            parts.add(text)
        parts.update(word.strip(".,") for word in text.split() if len(word.strip(".,")) >= 3)
    return sorted(parts, key=len, reverse=True)  # longest first: a full name before its words


def mask_personal(text: str, known: Iterable[str] = ()) -> str:
    """Courier free text without the personal data it may carry: every ``known`` value (the
    applicant's and receiver's names, the street: whole and word by word, any case), anything
    shaped like a phone number, a street line (``Jl. …``, ``RT 03/RW 05``), a name in J&T's
    【brackets】 or after a word such as *diterima oleh*, *Bpk*, *Ibu*, *hubungi*."""
    out = sanitise(text)
    for part in _known_parts(known):
        out = re.sub(rf"(?i)(?<!\w){re.escape(part)}(?!\w)", MASK, out)
    out = _BRACKETED.sub(f"【{MASK}】", out)
    out = _NAMED.sub(_keep_marker, out)
    out = _PHONE.sub(MASK, out)
    out = _STREET.sub(MASK, out)
    return out


def _keep_marker(match: re.Match[str]) -> str:
    """The marker word (*diterima oleh*) stays; what follows it is masked."""
    whole = match.group(0)
    marker = re.match(r"(?is)[^\s:=-]+(?:\s+(?:oleh|by|menerima|nama))?\.?[\s:=-]*", whole)
    kept = marker.group(0) if marker else ""
    return f"{kept}{MASK}"


# ---------------------------------------------------------------------------------------------
# CSV export

FORMULA_LEADS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: object) -> str:
    """A value for a CSV cell that a spreadsheet shows as text, never runs as a formula
    (``=cmd|…``, ``+1+1``, ``@SUM(…)``): such a value gets a leading apostrophe (OWASP)."""
    text = "" if value is None else str(value)
    return f"'{text}" if text.startswith(FORMULA_LEADS) else text


def search_key(value: str) -> str:
    """``value`` as the console searches names: accents dropped (NFKD, combining marks removed),
    case folded, every run of spaces and punctuation one space. "  Siti  RAHAYU" and "siti rahayu"
    meet; so do "Nur'aini" and "Nur aini", "José" and "jose". Stored beside the name
    (``applications.search_name``) so an index serves a prefix search."""
    decomposed = unicodedata.normalize("NFKD", value)
    plain = "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()
    return " ".join("".join(c if c.isalnum() else " " for c in plain).split())
