"""Language tags: BCP-47 / ISO 639-1 in, NLLB-200 (FLORES-200) and Apertium codes out."""

from __future__ import annotations

import re

from models.errors import UnsupportedLanguage

_NLLB_CODES_TEXT = """
    ace_Arab ace_Latn acm_Arab acq_Arab aeb_Arab afr_Latn ajp_Arab aka_Latn amh_Ethi apc_Arab
    arb_Arab ars_Arab ary_Arab arz_Arab asm_Beng ast_Latn awa_Deva ayr_Latn azb_Arab azj_Latn
    bak_Cyrl bam_Latn ban_Latn bel_Cyrl bem_Latn ben_Beng bho_Deva bjn_Arab bjn_Latn bod_Tibt
    bos_Latn bug_Latn bul_Cyrl cat_Latn ceb_Latn ces_Latn cjk_Latn ckb_Arab crh_Latn cym_Latn
    dan_Latn deu_Latn dik_Latn dyu_Latn dzo_Tibt ell_Grek eng_Latn epo_Latn est_Latn eus_Latn
    ewe_Latn fao_Latn pes_Arab fij_Latn fin_Latn fon_Latn fra_Latn fur_Latn fuv_Latn gla_Latn
    gle_Latn glg_Latn grn_Latn guj_Gujr hat_Latn hau_Latn heb_Hebr hin_Deva hne_Deva hrv_Latn
    hun_Latn hye_Armn ibo_Latn ilo_Latn ind_Latn isl_Latn ita_Latn jav_Latn jpn_Jpan kab_Latn
    kac_Latn kam_Latn kan_Knda kas_Arab kas_Deva kat_Geor knc_Arab knc_Latn kaz_Cyrl kbp_Latn
    kea_Latn khm_Khmr kik_Latn kin_Latn kir_Cyrl kmb_Latn kon_Latn kor_Hang kmr_Latn lao_Laoo
    lvs_Latn lij_Latn lim_Latn lin_Latn lit_Latn lmo_Latn ltg_Latn ltz_Latn lua_Latn lug_Latn
    luo_Latn lus_Latn mag_Deva mai_Deva mal_Mlym mar_Deva min_Latn mkd_Cyrl plt_Latn mlt_Latn
    mni_Beng khk_Cyrl mos_Latn mri_Latn zsm_Latn mya_Mymr nld_Latn nno_Latn nob_Latn npi_Deva
    nso_Latn nus_Latn nya_Latn oci_Latn gaz_Latn ory_Orya pag_Latn pan_Guru pap_Latn pol_Latn
    por_Latn prs_Arab pbt_Arab quy_Latn ron_Latn run_Latn rus_Cyrl sag_Latn san_Deva sat_Beng
    scn_Latn shn_Mymr sin_Sinh slk_Latn slv_Latn smo_Latn sna_Latn snd_Arab som_Latn sot_Latn
    spa_Latn als_Latn srd_Latn srp_Cyrl ssw_Latn sun_Latn swe_Latn swh_Latn szl_Latn tam_Taml
    tat_Cyrl tel_Telu tgk_Cyrl tgl_Latn tha_Thai tir_Ethi taq_Latn taq_Tfng tpi_Latn tsn_Latn
    tso_Latn tuk_Latn tum_Latn tur_Latn twi_Latn tzm_Tfng uig_Arab ukr_Cyrl umb_Latn urd_Arab
    uzn_Latn vec_Latn vie_Latn war_Latn wol_Latn xho_Latn ydd_Hebr yor_Latn yue_Hant zho_Hans
    zho_Hant zul_Latn"""
#: Every language code NLLB-200 was trained with, in its tokenizer's order.
NLLB_CODES: tuple[str, ...] = tuple(_NLLB_CODES_TEXT.split())
_NLLB_SET = frozenset(NLLB_CODES)

#: ISO 639-1 code → the NLLB code of that language (its default script and variety).
ISO1_TO_NLLB: dict[str, str] = {
    "af": "afr_Latn", "ak": "aka_Latn", "am": "amh_Ethi", "ar": "arb_Arab", "as": "asm_Beng",
    "ay": "ayr_Latn", "az": "azj_Latn", "ba": "bak_Cyrl", "be": "bel_Cyrl", "bg": "bul_Cyrl",
    "bm": "bam_Latn", "bn": "ben_Beng", "bo": "bod_Tibt", "bs": "bos_Latn", "ca": "cat_Latn",
    "cs": "ces_Latn", "cy": "cym_Latn", "da": "dan_Latn", "de": "deu_Latn", "dz": "dzo_Tibt",
    "ee": "ewe_Latn", "el": "ell_Grek", "en": "eng_Latn", "eo": "epo_Latn", "es": "spa_Latn",
    "et": "est_Latn", "eu": "eus_Latn", "fa": "pes_Arab", "ff": "fuv_Latn", "fi": "fin_Latn",
    "fj": "fij_Latn", "fo": "fao_Latn", "fr": "fra_Latn", "ga": "gle_Latn", "gd": "gla_Latn",
    "gl": "glg_Latn", "gn": "grn_Latn", "gu": "guj_Gujr", "ha": "hau_Latn", "he": "heb_Hebr",
    "hi": "hin_Deva", "hr": "hrv_Latn", "ht": "hat_Latn", "hu": "hun_Latn", "hy": "hye_Armn",
    "id": "ind_Latn", "ig": "ibo_Latn", "is": "isl_Latn", "it": "ita_Latn", "ja": "jpn_Jpan",
    "jv": "jav_Latn", "ka": "kat_Geor", "kg": "kon_Latn", "ki": "kik_Latn", "kk": "kaz_Cyrl",
    "km": "khm_Khmr", "kn": "kan_Knda", "ko": "kor_Hang", "kr": "knc_Latn", "ks": "kas_Arab",
    "ku": "kmr_Latn", "ky": "kir_Cyrl", "lb": "ltz_Latn", "lg": "lug_Latn", "li": "lim_Latn",
    "ln": "lin_Latn", "lo": "lao_Laoo", "lt": "lit_Latn", "lv": "lvs_Latn", "mg": "plt_Latn",
    "mi": "mri_Latn", "mk": "mkd_Cyrl", "ml": "mal_Mlym", "mn": "khk_Cyrl", "mr": "mar_Deva",
    "ms": "zsm_Latn", "mt": "mlt_Latn", "my": "mya_Mymr", "nb": "nob_Latn", "ne": "npi_Deva",
    "nl": "nld_Latn", "nn": "nno_Latn", "no": "nob_Latn", "ny": "nya_Latn", "oc": "oci_Latn",
    "om": "gaz_Latn", "or": "ory_Orya", "pa": "pan_Guru", "pl": "pol_Latn", "ps": "pbt_Arab",
    "pt": "por_Latn", "qu": "quy_Latn", "rn": "run_Latn", "ro": "ron_Latn", "ru": "rus_Cyrl",
    "rw": "kin_Latn", "sa": "san_Deva", "sc": "srd_Latn", "sd": "snd_Arab", "sg": "sag_Latn",
    "si": "sin_Sinh", "sk": "slk_Latn", "sl": "slv_Latn", "sm": "smo_Latn", "sn": "sna_Latn",
    "so": "som_Latn", "sq": "als_Latn", "sr": "srp_Cyrl", "ss": "ssw_Latn", "st": "sot_Latn",
    "su": "sun_Latn", "sv": "swe_Latn", "sw": "swh_Latn", "ta": "tam_Taml", "te": "tel_Telu",
    "tg": "tgk_Cyrl", "th": "tha_Thai", "ti": "tir_Ethi", "tk": "tuk_Latn", "tl": "tgl_Latn",
    "tn": "tsn_Latn", "tr": "tur_Latn", "ts": "tso_Latn", "tt": "tat_Cyrl", "tw": "twi_Latn",
    "ug": "uig_Arab", "uk": "ukr_Cyrl", "ur": "urd_Arab", "uz": "uzn_Latn", "vi": "vie_Latn",
    "wo": "wol_Latn", "xh": "xho_Latn", "yi": "ydd_Hebr", "yo": "yor_Latn", "zh": "zho_Hans",
    "zu": "zul_Latn",
}  # fmt: skip

#: Deprecated or alternative primary tags still in use (Whisper says ``jw``; Java ``iw``/``in``).
_ALIASES: dict[str, str] = {
    "iw": "he", "in": "id", "ji": "yi", "jw": "jv", "mo": "ro", "fil": "tl", "zh-yue": "yue",
    "cmn": "zh", "per": "fa", "fas": "fa", "msa": "ms", "may": "ms", "swa": "sw", "nor": "no",
    "lav": "lv", "est": "et", "sqi": "sq", "alb": "sq", "mon": "mn", "uzb": "uz", "aze": "az",
    "pus": "ps", "nep": "ne", "ori": "or", "orm": "om", "mlg": "mg", "yid": "yi", "ara": "ar",
    "kur": "ku", "zho": "zh", "chi": "zh",
}  # fmt: skip

#: Regions whose Chinese is written in traditional characters.
_HANT_REGIONS = frozenset({"tw", "hk", "mo"})
#: ISO 639-3 code → NLLB codes of that language, for tags like ``yue`` or ``ast``.
_ISO3_TO_NLLB: dict[str, list[str]] = {}
for _code in NLLB_CODES:
    _ISO3_TO_NLLB.setdefault(_code[:3], []).append(_code)
#: NLLB code → the tag we publish it under (ISO 639-1 where one exists).
_PREFERRED_TAG: dict[str, str] = {}
for _iso1, _code in ISO1_TO_NLLB.items():
    _PREFERRED_TAG.setdefault(_code, _iso1)
_PREFERRED_TAG["zho_Hans"] = "zh-Hans"
_PREFERRED_TAG["zho_Hant"] = "zh-Hant"

_TAG = re.compile(r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{1,8})*$")


def _script_of(subtags: list[str]) -> str | None:
    for sub in subtags:
        if len(sub) == 4 and sub.isalpha():
            return sub.title()
    return None


def _region_of(subtags: list[str]) -> str | None:
    for sub in subtags:
        if (len(sub) == 2 and sub.isalpha()) or (len(sub) == 3 and sub.isdigit()):
            return sub.lower()
    return None


def to_nllb(tag: str) -> str:
    """Map a BCP-47 tag (``vi``, ``pt-BR``, ``zh-TW``, ``zh-Hans``) or NLLB code to NLLB's code.

    A script subtag picks that script's variety when NLLB has it (``ks-Deva`` → ``kas_Deva``)
    and is refused when NLLB lacks it (``sr-Latn``), rather than answering in another script.
    """
    if not isinstance(tag, str) or not _TAG.match(tag.strip()):
        raise UnsupportedLanguage(f"{tag!r} is not a language tag (expected e.g. 'vi' or 'pt-BR')")
    tag = tag.strip()
    if tag in _NLLB_SET:
        return tag
    lowered = tag.lower().replace("_", "-")
    lowered = _ALIASES.get(lowered, lowered)
    primary, *rest = lowered.split("-")
    primary = _ALIASES.get(primary, primary)
    script = _script_of(rest)
    region = _region_of(rest)
    if primary == "zh" and script is None:
        script = "Hant" if region in _HANT_REGIONS else "Hans"
    if primary in ISO1_TO_NLLB:
        default = ISO1_TO_NLLB[primary]
        candidates = [default, *(c for c in _ISO3_TO_NLLB[default[:3]] if c != default)]
    else:
        candidates = _ISO3_TO_NLLB.get(primary, [])
    if not candidates:
        raise UnsupportedLanguage(f"language {tag!r} is not one of NLLB-200's 202 languages")
    if script is None:
        return candidates[0]
    for code in candidates:
        if code.endswith("_" + script):
            return code
    raise UnsupportedLanguage(
        f"language {tag!r}: NLLB-200 has no {script} script for it (has {', '.join(candidates)})"
    )


def to_tag(nllb_code: str) -> str:
    """The tag a language is published under: ISO 639-1 where it has one, else the NLLB code."""
    return _PREFERRED_TAG.get(nllb_code, nllb_code)


def to_apertium(tag: str) -> str:
    """The ISO 639-3 code Apertium's modes use (``en`` → ``eng``, ``pt-BR`` → ``por``)."""
    return to_nllb(tag)[:3]


def from_apertium(code: str) -> str | None:
    """NLLB code for an Apertium mode's language (``eng``, ``en``, ``spa``); None if unknown."""
    base = code.split("_")[0].lower()
    if len(base) == 2:
        return ISO1_TO_NLLB.get(base)
    base = _ALIASES.get(base, base)
    if base in ISO1_TO_NLLB:
        return ISO1_TO_NLLB[base]
    codes = _ISO3_TO_NLLB.get(base)
    return codes[0] if codes else None


#: Targets written without spaces between sentences.
UNSPACED_SCRIPTS = frozenset({"Hans", "Hant", "Jpan", "Thai", "Laoo", "Khmr", "Mymr", "Tibt"})


def sentence_joiner(nllb_code: str) -> str:
    """What goes between translated sentences in this target language."""
    return "" if nllb_code.split("_")[-1] in UNSPACED_SCRIPTS else " "


# --- M2M-100 ----------------------------------------------------------------------------------

#: The 100 languages of M2M-100 (facebook/m2m100_418M), as its ``__xx__`` tokens name them.
_M2M_CODES_TEXT = """
    af am ar ast az ba be bg bn br bs ca ceb cs cy da de el en es et fa ff fi fr fy ga gd gl gu
    ha he hi hr ht hu hy id ig ilo is it ja jv ka kk km kn ko lb lg ln lo lt lv mg mk ml mn mr
    ms my ne nl no ns oc or pa pl ps pt ro ru sd si sk sl so sq sr ss su sv sw ta th tl tn tr uk
    ur uz vi wo xh yi yo zh zu"""
M2M_CODES: tuple[str, ...] = tuple(_M2M_CODES_TEXT.split())
_M2M_SET = frozenset(M2M_CODES)
#: M2M-100 codes that are not the tag NLLB's code for the language is published under.
_M2M_TO_NLLB = {
    "no": "nob_Latn", "ns": "nso_Latn", "zh": "zho_Hans", "ast": "ast_Latn", "ceb": "ceb_Latn",
    "ilo": "ilo_Latn",
}  # fmt: skip
_NLLB_TO_M2M = {**{nllb: m2m for m2m, nllb in _M2M_TO_NLLB.items()}, "nno_Latn": "no"}


def _nllb_of_m2m(code: str) -> str | None:
    if code in _M2M_TO_NLLB:
        return _M2M_TO_NLLB[code]
    try:
        return to_nllb(code)
    except UnsupportedLanguage:
        return None


#: M2M-100 languages NLLB lacks (Breton, Western Frisian): known only by their own code.
_M2M_ONLY = frozenset(code for code in M2M_CODES if _nllb_of_m2m(code) is None)


def to_m2m(tag: str) -> str:
    """Map a BCP-47 tag or NLLB code to M2M-100's language code (``vi``, ``no``, ``zh``).

    Chinese in traditional characters is refused: M2M-100 writes simplified Chinese only.
    """
    if isinstance(tag, str) and tag.strip().lower() in _M2M_ONLY:
        return tag.strip().lower()
    code = to_nllb(tag)
    if code == "zho_Hant":
        raise UnsupportedLanguage(f"language {tag!r}: M2M-100 writes only simplified Chinese")
    m2m = _NLLB_TO_M2M.get(code) or to_tag(code)
    if m2m not in _M2M_SET:
        raise UnsupportedLanguage(f"language {tag!r} is not one of M2M-100's 100 languages")
    return m2m


def m2m_tag(code: str) -> str:
    """The tag an M2M-100 language is published under: the same as NLLB's for that language."""
    nllb = _nllb_of_m2m(code)
    return to_tag(nllb) if nllb is not None else code


def m2m_joiner(code: str) -> str:
    """What goes between translated sentences in this M2M-100 target language."""
    nllb = _nllb_of_m2m(code)
    return sentence_joiner(nllb) if nllb is not None else " "
