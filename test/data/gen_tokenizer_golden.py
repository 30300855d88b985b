#!/usr/bin/env python3
"""test/data/gen_tokenizer_golden.py — regenerates the tokenizer goldens that test_tokenizer_parity
checks, with Hugging Face `tokenizers` (pip install tokenizers) as the reference:

    python3 test/data/gen_tokenizer_golden.py ../shared test/data/golden

Settings are BertTokenizerFast's for bert-base-uncased: BertWordPieceTokenizer(vocab, lowercase=True,
strip_accents follows lowercase, clean_text, handle_chinese_chars), [CLS] A [SEP] (B [SEP]),
longest-first truncation. Writes
  tokenizer_hard.txt  the hand-written hard cases: "KDTOKGOLD 1" then one case per line, tab-separated:
                      mode (U uncased, C cased), max_len (0 = none), hex(text A), hex(text B) or '-',
                      ids (space-separated), type ids (a string of 0/1). Texts are hex so that any
                      byte (invalid UTF-8, tabs, NUL) survives; invalid UTF-8 is decoded with
                      errors='replace', as kd reads it.
  tokenizer_sst2.txt  "KDTOKSST2 1", then per file "F <name> <lines> <ids|hash>", then per sentence of
                      that file (column 1 of each data row, in order) its ids, space-separated (dev), or
                      to keep the file small (train) the low 32 bits of FNV-1a 64 over that same
                      space-separated text, as 8 hex digits.
"""
import os
import random
import sys

from tokenizers import BertWordPieceTokenizer


def cases():
    c = []
    add = c.append
    # --- plain and published-style
    for s in ["", " ", "   \t\n  ", "\n", "\t", "\r\n", "a", "A", "Hello, world!", "This is a test.",
              "I can't believe it's not butter!", "don't stop", "e-mail me at foo@bar.com",
              "https://www.example.com/path?q=1&r=2#frag", "http://x.y/z_(w)", "C:\\Users\\me\\file.txt",
              "3.14159 is pi", "1,000,000 dollars", "$12.50", "50%", "#hashtag @mention", "2024-01-15T10:30:00Z",
              "+1 (555) 123-4567", "v1.2.3-beta+build.5", "x^2 + y^2 = z^2", "a<b>c", "~tilde~", "`backtick`",
              "under_score", "pipe|pipe", "{brace}", "[bracket]", "semi;colon", "quote\"d", "it's", "'single'",
              "...", "?!?!", "--", "—em dash—", "–en dash–", "“curly quotes”", "‘single curly’", "«guillemets»",
              "¡Hola! ¿Qué tal?", "0123456789", "00000000000000000000000000000000", "1st 2nd 3rd 4th"]:
        add(('U', 0, s, None))
    # --- accents in many scripts
    for s in ["café", "naïve", "résumé", "Crème Brûlée", "Ångström", "São Paulo", "Zürich", "Łódź", "Dvořák",
              "Ærøskøbing", "Straße", "ﬁne ﬂow", "Ǆemal", "Ĳssel", "İstanbul", "ıi", "Σίσυφος", "ΟΔΥΣΣΕΥΣ",
              "Ελληνικά", "Москва", "Ёлка", "Йод", "Україна", "ї є ґ", "Tiếng Việt", "dấu nặng", "Hà Nội",
              "Ṭhākur", "Ā ā Ē ē", "ǖǘǚǜ", "ḍḥḷṃṇṛṣṭ", "a\u0301", "e\u0300\u0323", "o\u0323\u0302",
              "\u1e69", "q\u0307\u0323", "\u0041\u030a", "\u212b", "\u2126", "\u212a", "ﾊﾝｶｸ", "ｆｕｌｌｗｉｄｔｈ",
              "①②③", "²³¹", "½ ¼", "™ ® ©", "µ", "ǅ ǈ ǋ", "ΐ ΰ", "ᾮ ᾯ ῼ", "Ꭰ Ꭱ", "ꭰ"]:
        add(('U', 0, s, None))
    # --- non-Latin scripts
    for s in ["中文分词测试", "我爱北京天安门", "日本語のテキスト", "ひらがな カタカナ", "한국어 텍스트", "안녕하세요",
              "漢字とかな", "𠀀𠀁 𪜀 𫝀 𫠠 𬺰", "豈 更 車", "丽 丸", "〇 々 〆", "ไทยภาษา", "สวัสดีครับ",
              "العربية", "مرحبا بالعالم", "السَّلَامُ عَلَيْكُمْ", "עברית", "שָׁלוֹם", "हिन्दी", "नमस्ते दुनिया",
              "বাংলা", "தமிழ்", "తెలుగు", "ಕನ್ನಡ", "മലയാളം", "ગુજરાતી", "ਪੰਜਾਬੀ", "ଓଡ଼ିଆ", "සිංහල", "မြန်မာ",
              "ខ្មែរ", "ລາວ", "ქართული", "Հայերեն", "አማርኛ", "ᠮᠣᠩᠭᠣᠯ", "ᐃᓄᒃᑎᑐᑦ", "ᚠᛇᚻ", "𐌰𐌱𐌲", "Ⲁⲃⲅ",
              "ꦗꦮ", "ᜋᜇ᜴", "ᮞᮥᮔ᮪ᮓ", "𑇉", "᙭", "ᢅᢆ", "ꦽ", "𑤸", "ⸯ", "꙲"]:
        add(('U', 0, s, None))
    # --- emoji and symbols
    for s in ["🙂", "I love it 😍😍😍", "👍🏽", "👨‍👩‍👧‍👦 family", "🇺🇸🇫🇷", "❤️", "☺︎", "🤔 ?", "★☆", "→ ← ↑ ↓",
              "∑ ∫ √ ∞", "€ £ ¥ ₹ ₿", "§ ¶ † ‡", "° ± × ÷", "♠♣♥♦", "☃", "⌘ ⌥", "🏳️‍🌈", "🧑🏿‍💻",
              "a😀b", "😀a", "a😀", "x🙂y🙂z"]:
        add(('U', 0, s, None))
    # --- control, format and zero-width characters
    for s in ["a\u200bb", "zero\u200cwidth\u200djoiner", "\ufeffbom", "soft\u00adhyphen", "a\u2060b",
              "rtl\u200fmark\u200e", "\u202aembed\u202c", "a\u0000b", "nul\u0000\u0000end", "a\u0001b\u001fc",
              "del\u007f", "bell\u0007", "a\u000bb\u000cc", "a\u0085b", "nbsp\u00a0here", "ideo\u3000space",
              "en\u2002em\u2003thin\u2009", "line\u2028para\u2029", "ogham\u1680mark", "a\u180eb", "\ufffdrepl",
              "x\ufffd\ufffdy", "private\ue000use", "\U000f0000plane15", "tag\U000e0041chars", "a\u061cb",
              "\u2066isolate\u2069", "a\u034fb", "a\u115fb", "var\ufe0fsel", "a\U000e0100b", "\u0600\u0601",
              "a\u070fb", "\U000110bd", "a\U0001bca0b", "\U0001d173music", "a\u2064b", "a\u206fb",
              "\u0378\u0379 unassigned", "\U0010ffff", "a\x1cb\x1dc\x1ed\x1fe", "tab\tsep", "cr\rlf\n",
              "\u00ad", "\u200b", " \u200b "]:
        add(('U', 0, s, None))
    # --- special tokens
    for s in ["[SEP]", "[CLS]", "[PAD]", "[MASK]", "[UNK]", "hello[SEP]world", "a [SEP] b", "[SEP][SEP]",
              "[sep]", "[Sep]", "[SEP", "SEP]", "[[SEP]]", "[MASK]ed", "un[UNK]known", "x[CLS]y[PAD]z",
              "[SE\u0000P]", "[ SEP ]", "[SEP ]", "İs th!s   𩸽 [SEP] Ϻ Šœ  Uglj[SEP]šić   dấu nặng",
              "[MASKED]", "[MASK][MASK]", "[]", "[unused0]", "[unused1] x"]:
        add(('U', 0, s, None))
    # --- very long words and words near the 100-character limit
    for k in [98, 99, 100, 101, 102, 150, 500]:
        add(('U', 0, "a" * k, None))
        add(('U', 0, "é" * k, None))
    add(('U', 0, "x" * 100 + " ok", None))
    add(('U', 0, "supercalifragilisticexpialidocious", None))
    add(('U', 0, "pneumonoultramicroscopicsilicovolcanoconiosis", None))
    add(('U', 0, "antidisestablishmentarianism unbelievably", None))
    add(('U', 0, "中" * 120, None))
    add(('U', 0, "a" * 99 + "\u0301", None))
    add(('U', 0, "ab" * 60 + "!", None))
    add(('U', 0, "word " * 300, None))
    # --- invalid UTF-8 (bytes)
    for b in [b"\xff", b"a\xffb", b"\xc3", b"caf\xc3", b"\xc3\x28", b"\xe2\x82", b"\xe2\x82a", b"\xed\xa0\x80",
              b"\xed\xbf\xbf x", b"\xf0\x9f\x98", b"\xf0\x9f\x98 hi", b"\xf4\x90\x80\x80", b"\xc0\xaf", b"\xe0\x80\xaf",
              b"\x80\x81\x82", b"ok \xfe\xfe ok", b"[SEP]\xff[SEP]", b"\xf8\x88\x80\x80\x80", b"a\xc3\xa9\xc3b",
              b"\xe4\xb8\xad\xe4\xb8"]:
        add(('U', 0, b, None))
    # --- pairs and truncation
    add(('U', 0, "Who is John's sister?", "John is a 10 year old boy."))
    add(('U', 0, "", ""))
    add(('U', 0, "", "only second"))
    add(('U', 0, "only first", ""))
    long_a = "the quick brown fox jumps over the lazy dog " * 6
    long_b = "a stitch in time saves nine " * 4
    for ml in [3, 4, 5, 6, 7, 8, 9, 10, 11, 16, 17, 32, 64, 128]:
        add(('U', ml, long_a, long_b))
        add(('U', ml, long_b, long_a))
        add(('U', ml, "short one", long_a))
        add(('U', ml, long_a, "short one"))
        add(('U', ml, "tie tie tie tie", "tie tie tie tie"))
    for ml in [2, 3, 4, 5, 8, 13]:
        add(('U', ml, long_a, None))
        add(('U', ml, "tokénized unbelievable", None))
    # --- the cased path (lower-casing and accent stripping off) on the same vocabulary
    for s in ["Hello World", "hello world", "café", "Straße", "İstanbul", "中文", "[SEP] x", "a\u0000b", "ÉCOLE école",
              "I can't", "naïve façade"]:
        add(('C', 0, s, None))
    # --- random mixes of awkward fragments, fixed seed
    frags = ["a", "B", "é", "É", "ß", " ", "  ", "\t", "\n", ".", ",", "!", "?", "'", '"', "-", "_", "#", "##", "@",
             "[SEP]", "[MASK]", "中", "国", "ไทย", "ع", "ש", "й", "Ω", "🙂", "👍🏽", "\u200b", "\u00ad", "\u0301",
             "\u0000", "\ufffd", "\u3000", "\u00a0", "un", "##ing", "token", "izer", "running", "quickly", "1",
             "42", "3.5", "%", "$", "http://", "www.", ".com", "İ", "ǅ", "ﬁ", "①", "½", "\U0001d173", "\U000e0041",
             "\ue000", "\u0378", "ᾮ", "한", "글", "カ", "か", "ｶ", "Ａ"]
    rng = random.Random(20240601)
    for i in range(160):
        s = "".join(rng.choice(frags) for _ in range(rng.randint(1, 14)))
        if i % 4 == 0:
            t = "".join(rng.choice(frags) for _ in range(rng.randint(0, 10)))
            add(('U', rng.choice([0, 0, 6, 9, 12]), s, t))
        else:
            add(('U', 0, s, None))
    return c


def fnv1a64(data):
    h = 0xcbf29ce484222325
    for byte in data:
        h = ((h ^ byte) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h


def as_bytes(x):
    return x if isinstance(x, bytes) else x.encode('utf-8', 'surrogatepass')


def main():
    shared, outdir = sys.argv[1], sys.argv[2]
    vocab = os.path.join(shared, 'data', 'bert-base-uncased', 'vocab.txt')
    toks = {'U': BertWordPieceTokenizer(vocab, lowercase=True), 'C': BertWordPieceTokenizer(vocab, lowercase=False)}
    hard = cases()
    with open(os.path.join(outdir, 'tokenizer_hard.txt'), 'w') as f:
        f.write('KDTOKGOLD 1\n')
        for mode, ml, a, b in hard:
            tok = toks[mode]
            if ml:
                tok.enable_truncation(ml, strategy='longest_first')
            else:
                tok.no_truncation()
            ab, bb = as_bytes(a), None if b is None else as_bytes(b)
            sa = ab.decode('utf-8', 'replace')
            enc = tok.encode(sa) if b is None else tok.encode(sa, bb.decode('utf-8', 'replace'))
            f.write('%s\t%d\t%s\t%s\t%s\t%s\n' % (mode, ml, ab.hex(), '-' if bb is None else bb.hex(),
                                                   ' '.join(map(str, enc.ids)), ''.join(map(str, enc.type_ids))))
    print('%d hard cases' % len(hard))
    tok = toks['U']
    tok.no_truncation()
    with open(os.path.join(outdir, 'tokenizer_sst2.txt'), 'w') as f:
        f.write('KDTOKSST2 1\n')
        for name, how in [('dev.tsv', 'ids'), ('train.tsv', 'hash')]:
            rows = open(os.path.join(shared, 'data', 'sst2', name), encoding='utf-8').read().split('\n')[1:]
            rows = [r.split('\t')[0] for r in rows if r]
            f.write('F %s %d %s\n' % (name, len(rows), how))
            for enc in tok.encode_batch(rows):
                text = ' '.join(map(str, enc.ids))
                f.write((text if how == 'ids' else '%08x' % (fnv1a64(text.encode()) & 0xFFFFFFFF)) + '\n')
            print('%s: %d sentences' % (name, len(rows)))


if __name__ == '__main__':
    main()
