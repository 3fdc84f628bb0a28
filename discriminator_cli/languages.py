"""Language codes: MP4 `mdhd` boxes and presets use ISO 639-2 ("eng"), manifests use BCP 47
("en", "en-US"). One table pairs every ISO 639-1 code with its 639-2/T code (and 639-2/B where
that differs), from the iso-codes data; encode and validate both read it.
"""

from __future__ import annotations

import re
from functools import lru_cache

from discriminator_cli.errors import BadInputError

_ISO639_PAIRS = """
aa:aar ab:abk af:afr ak:aka am:amh ar:ara an:arg as:asm av:ava ae:ave ay:aym az:aze ba:bak
bm:bam be:bel bn:ben bh:bih bi:bis bo:bod:tib bs:bos br:bre bg:bul ca:cat cs:ces:cze ch:cha
ce:che cu:chu cv:chv kw:cor co:cos cr:cre cy:cym:wel da:dan de:deu:ger dv:div dz:dzo
el:ell:gre en:eng eo:epo et:est eu:eus:baq ee:ewe fo:fao fa:fas:per fj:fij fi:fin fr:fra:fre
fy:fry ff:ful gd:gla ga:gle gl:glg gv:glv gn:grn gu:guj ht:hat ha:hau he:heb hz:her hi:hin
ho:hmo hr:hrv hu:hun hy:hye:arm ig:ibo io:ido ii:iii iu:iku ie:ile ia:ina id:ind ik:ipk
is:isl:ice it:ita jv:jav ja:jpn kl:kal kn:kan ks:kas ka:kat:geo kr:kau kk:kaz km:khm ki:kik
rw:kin ky:kir kv:kom kg:kon ko:kor kj:kua ku:kur lo:lao la:lat lv:lav li:lim ln:lin lt:lit
lb:ltz lu:lub lg:lug mh:mah ml:mal mr:mar mk:mkd:mac mg:mlg mt:mlt mn:mon mi:mri:mao
ms:msa:may my:mya:bur na:nau nv:nav nr:nbl nd:nde ng:ndo ne:nep nl:nld:dut nn:nno nb:nob
no:nor ny:nya oc:oci oj:oji or:ori om:orm os:oss pa:pan pi:pli pl:pol pt:por ps:pus qu:que
rm:roh ro:ron:rum rn:run ru:rus sg:sag sa:san si:sin sk:slk:slo sl:slv se:sme sm:smo sn:sna
sd:snd so:som st:sot es:spa sq:sqi:alb sc:srd sr:srp ss:ssw su:sun sw:swa sv:swe ty:tah
ta:tam tt:tat te:tel tg:tgk tl:tgl th:tha ti:tir to:ton tn:tsn ts:tso tk:tuk tr:tur tw:twi
ug:uig uk:ukr ur:urd uz:uzb ve:ven vi:vie vo:vol wa:wln wo:wol xh:xho yi:yid yo:yor za:zha
zh:zho:chi zu:zul
"""

UNDETERMINED = "und"

# English names for the menu (HLS NAME); other languages show their code.
NAMES: dict[str, str] = {
    "ara": "Arabic", "ben": "Bengali", "bul": "Bulgarian", "cat": "Catalan", "ces": "Czech",
    "zho": "Chinese", "dan": "Danish", "deu": "German", "ell": "Greek", "eng": "English",
    "est": "Estonian", "fin": "Finnish", "fra": "French", "heb": "Hebrew", "hin": "Hindi",
    "hrv": "Croatian", "hun": "Hungarian", "ind": "Indonesian", "ita": "Italian",
    "jpn": "Japanese", "kor": "Korean", "lav": "Latvian", "lit": "Lithuanian", "nld": "Dutch",
    "nor": "Norwegian", "pol": "Polish", "por": "Portuguese", "ron": "Romanian",
    "rus": "Russian", "slk": "Slovak", "slv": "Slovenian", "spa": "Spanish", "srp": "Serbian",
    "swe": "Swedish", "tha": "Thai", "tur": "Turkish", "ukr": "Ukrainian", "vie": "Vietnamese",
}
_CODE3 = re.compile(r"^[a-z]{3}$")


@lru_cache(maxsize=1)
def _tables() -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    two_to_three: dict[str, str] = {}
    bibliographic_to_terminology: dict[str, str] = {}
    for entry in _ISO639_PAIRS.split():
        two, three, *bibliographic = entry.split(":")
        two_to_three[two] = three
        for code in bibliographic:
            bibliographic_to_terminology[code] = three
    three_to_two = {three: two for two, three in two_to_three.items()}
    return two_to_three, bibliographic_to_terminology, three_to_two


def normalize_language(tag: str | None) -> str | None:
    """'en', 'en-GB', 'eng' -> 'eng'; 'ger' -> 'deu'; None or '' -> None.

    Codes missing from the table pass through unchanged."""
    if not tag:
        return None
    primary = tag.strip().replace("_", "-").split("-", 1)[0].lower()
    if not primary:
        return None
    two_to_three, bibliographic, _ = _tables()
    if len(primary) == 2:
        return two_to_three.get(primary, primary)
    return bibliographic.get(primary, primary)


def check_language(code: str, *, where: str = "--language") -> str:
    code = code.strip().lower()
    if not _CODE3.match(code):
        raise BadInputError(f"{where} {code!r} is not a three-letter ISO 639-2 code",
                            hint="use e.g. eng, fra, deu, spa")
    if code == UNDETERMINED:
        # Bento4 drops an 'und' tag and Shaka Packager refuses it: a package needs a language.
        raise BadInputError(f"{where} 'und' (undetermined) cannot be packaged: players pick "
                            "audio by language", hint="give the narration's real language, "
                                                      "e.g. eng")
    return code


def two_letter(code3: str) -> str:
    """The manifest tag: ISO 639-1 where the language has one, else the 639-2 code."""
    terminology = normalize_language(code3) or code3
    return _tables()[2].get(terminology, code3)


def display_name(code3: str) -> str:
    return NAMES.get(normalize_language(code3) or code3, code3)


def is_known_language(code3: str) -> bool:
    """In the ISO 639 table (or named for the menu): a code players can show by name."""
    code = normalize_language(code3) or code3
    return code in _tables()[2] or code in NAMES
