"""ISO 639-2 (three-letter, as MP4 boxes store it) to ISO 639-1 and a display name.

Manifests use the two-letter code where one exists (DASH @lang and HLS LANGUAGE are BCP 47).
"""

from __future__ import annotations

import re

from discriminator_cli.errors import BadInputError

# code3: (code2, English name). Terminology and bibliographic variants both listed.
LANGUAGES: dict[str, tuple[str, str]] = {
    "ara": ("ar", "Arabic"), "ben": ("bn", "Bengali"), "bul": ("bg", "Bulgarian"),
    "cat": ("ca", "Catalan"), "ces": ("cs", "Czech"), "cze": ("cs", "Czech"),
    "chi": ("zh", "Chinese"), "zho": ("zh", "Chinese"), "dan": ("da", "Danish"),
    "deu": ("de", "German"), "ger": ("de", "German"), "ell": ("el", "Greek"),
    "gre": ("el", "Greek"), "eng": ("en", "English"), "est": ("et", "Estonian"),
    "fin": ("fi", "Finnish"), "fra": ("fr", "French"), "fre": ("fr", "French"),
    "heb": ("he", "Hebrew"), "hin": ("hi", "Hindi"), "hrv": ("hr", "Croatian"),
    "hun": ("hu", "Hungarian"), "ind": ("id", "Indonesian"), "ita": ("it", "Italian"),
    "jpn": ("ja", "Japanese"), "kor": ("ko", "Korean"), "lav": ("lv", "Latvian"),
    "lit": ("lt", "Lithuanian"), "nld": ("nl", "Dutch"), "dut": ("nl", "Dutch"),
    "nor": ("no", "Norwegian"), "pol": ("pl", "Polish"), "por": ("pt", "Portuguese"),
    "ron": ("ro", "Romanian"), "rum": ("ro", "Romanian"), "rus": ("ru", "Russian"),
    "slk": ("sk", "Slovak"), "slo": ("sk", "Slovak"), "slv": ("sl", "Slovenian"),
    "spa": ("es", "Spanish"), "srp": ("sr", "Serbian"), "swe": ("sv", "Swedish"),
    "tha": ("th", "Thai"), "tur": ("tr", "Turkish"), "ukr": ("uk", "Ukrainian"),
    "vie": ("vi", "Vietnamese"),
}
_CODE3 = re.compile(r"^[a-z]{3}$")


def check_language(code: str, *, where: str = "--language") -> str:
    code = code.strip().lower()
    if not _CODE3.match(code):
        raise BadInputError(f"{where} {code!r} is not a three-letter ISO 639-2 code",
                            hint="use e.g. eng, fra, deu, spa")
    return code


def two_letter(code3: str) -> str:
    return LANGUAGES.get(code3, (code3, code3))[0]


def display_name(code3: str) -> str:
    return LANGUAGES.get(code3, (code3, code3))[1]
