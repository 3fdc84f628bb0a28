"""Language tags: manifests use BCP 47 ("en", "en-US"), MP4 `mdhd` uses ISO 639-2 ("eng").

Both sides are reduced to one ISO 639-2/T code before comparing. The table pairs every
ISO 639-1 code with its 639-2/T code (and 639-2/B where that differs), from the iso-codes data.
"""

from __future__ import annotations

from functools import lru_cache

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


@lru_cache(maxsize=1)
def _tables() -> tuple[dict[str, str], dict[str, str]]:
    two_to_three: dict[str, str] = {}
    bibliographic_to_terminology: dict[str, str] = {}
    for entry in _ISO639_PAIRS.split():
        two, three, *bibliographic = entry.split(":")
        two_to_three[two] = three
        for code in bibliographic:
            bibliographic_to_terminology[code] = three
    return two_to_three, bibliographic_to_terminology


def normalize_language(tag: str | None) -> str | None:
    """'en', 'en-GB', 'eng' -> 'eng'; 'ger' -> 'deu'; None or '' -> None.

    Codes missing from the table pass through unchanged."""
    if not tag:
        return None
    primary = tag.strip().replace("_", "-").split("-", 1)[0].lower()
    if not primary:
        return None
    two_to_three, bibliographic = _tables()
    if len(primary) == 2:
        return two_to_three.get(primary, primary)
    return bibliographic.get(primary, primary)
