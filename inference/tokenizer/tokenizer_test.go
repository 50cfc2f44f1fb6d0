package tokenizer

import (
	"compress/gzip"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// smallMerges is a hand-made merge table; the expected splits in the tests
// below were worked out by hand from these ranks.
var smallMerges = []string{
	"c a",        // 0
	"ca t</w>",   // 1
	"h e",        // 2
	"l l",        // 3
	"he ll",      // 4
	"hell o</w>", // 5
	"a t</w>",    // 6
}

func smallVocab() map[string]int {
	vocab := map[string]int{}
	for _, s := range ByteSymbols() {
		vocab[s] = len(vocab)
	}
	for _, s := range ByteSymbols() {
		vocab[s+"</w>"] = len(vocab)
	}
	for _, m := range smallMerges {
		vocab[strings.Replace(m, " ", "", 1)] = len(vocab)
	}
	vocab[StartToken] = len(vocab)
	vocab[EndToken] = len(vocab)
	return vocab
}

func newSmall(t *testing.T) (*Tokenizer, map[string]int) {
	t.Helper()
	v := smallVocab()
	tok, err := New(v, smallMerges)
	if err != nil {
		t.Fatal(err)
	}
	return tok, v
}

func TestByteSymbols(t *testing.T) {
	s := ByteSymbols()
	if len(s) != 256 {
		t.Fatalf("%d byte symbols", len(s))
	}
	// In the released vocabulary "!" is id 0, "a" id 64, and the first
	// non-printable byte (0x00) comes after all 188 printable ones as U+0100.
	if s[0] != "!" || s[64] != "a" || s[188] != "\u0100" || s[255] != string(rune(256+67)) {
		t.Errorf("unexpected order: s[0]=%q s[64]=%q s[188]=%q s[255]=%q", s[0], s[64], s[188], s[255])
	}
	seen := map[string]bool{}
	for _, x := range s {
		if seen[x] {
			t.Fatalf("symbol %q repeated", x)
		}
		seen[x] = true
	}
}

func TestClean(t *testing.T) {
	cases := map[string]string{
		"  A   PHOTO &amp; Cat\n\t": "a photo & cat",
		"fish &amp;amp; chips":      "fish & chips",
		"":                          "",
		"Line1\r\nLine2  ":          "line1 line2",
		"ÉCOLE":                     "école",
	}
	for in, want := range cases {
		if got := Clean(in); got != want {
			t.Errorf("Clean(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestBPE(t *testing.T) {
	tok, v := newSmall(t)
	ids := func(syms ...string) []int {
		out := make([]int, len(syms))
		for i, s := range syms {
			id, ok := v[s]
			if !ok {
				t.Fatalf("symbol %q not in the test vocabulary", s)
			}
			out[i] = id
		}
		return out
	}
	cases := []struct {
		text string
		want []int
	}{
		{"cat", ids("cat</w>")},
		// "c a" (rank 0) wins over "a t</w>" (rank 6).
		{"CAT", ids("cat</w>")},
		{"bat", ids("b", "at</w>")},
		{"hello", ids("hello</w>")},
		// Merging is left to right and non-overlapping: "lll" becomes
		// "ll" + "l", so "hell" forms but "hell o</w>" cannot.
		{"helllo", ids("hell", "l", "o</w>")},
		{"a", ids("a</w>")},
		{"it's", ids("i", "t</w>", "'", "s</w>")},
		{"123", ids("1</w>", "2</w>", "3</w>")},
		{"hi!!,", ids("h", "i</w>", "!", "!", ",</w>")},
		{"café", append(ids("ca", "f"), v[string([]rune{0xc3})], v[string([]rune{0xa9})+"</w>"])},
		{"<|endoftext|>", ids(EndToken)},
		{"   ", nil},
	}
	for _, c := range cases {
		if got := tok.Tokens(c.text); !reflect.DeepEqual(got, c.want) {
			t.Errorf("Tokens(%q) = %v, want %v", c.text, got, c.want)
		}
	}
	if got := tok.Decode(tok.Tokens("Hello café cat")); got != "hello café cat " {
		t.Errorf("Decode round trip = %q", got)
	}
}

func TestEncodePaddingAndTruncation(t *testing.T) {
	tok, v := newSmall(t)
	enc := tok.Encode("cat")
	if len(enc.IDs) != ContextLength || enc.Length != 3 || enc.Truncated {
		t.Fatalf("Encode(cat) = %+v", enc)
	}
	if enc.IDs[0] != v[StartToken] || enc.IDs[1] != v["cat</w>"] || enc.IDs[2] != v[EndToken] || enc.IDs[76] != v[EndToken] {
		t.Errorf("Encode(cat) ids = %v", enc.IDs[:4])
	}
	if err := tok.SetPadToken("!"); err != nil {
		t.Fatal(err)
	}
	enc = tok.Encode("cat")
	if enc.IDs[2] != v[EndToken] || enc.IDs[3] != 0 || enc.IDs[76] != 0 {
		t.Errorf("padding with \"!\": ids = %v", enc.IDs[:5])
	}
	if err := tok.SetPadToken("<nope>"); err == nil {
		t.Error("unknown pad token accepted")
	}

	long := strings.Repeat("cat ", 75) + "hello bat"
	enc = tok.Encode(long)
	if !enc.Truncated || enc.Length != ContextLength || len(enc.IDs) != ContextLength {
		t.Fatalf("long prompt: truncated=%v length=%d len=%d", enc.Truncated, enc.Length, len(enc.IDs))
	}
	if enc.IDs[75] != v["cat</w>"] || enc.IDs[76] != v[EndToken] {
		t.Errorf("long prompt ends with %v", enc.IDs[74:])
	}
	if enc.Dropped != "hello bat" {
		t.Errorf("Dropped = %q, want %q", enc.Dropped, "hello bat")
	}
	enc = tok.Encode(strings.Repeat("cat ", 75))
	if enc.Truncated || enc.Length != ContextLength {
		t.Errorf("exactly 75 tokens: truncated=%v length=%d", enc.Truncated, enc.Length)
	}
}

func TestNewRejectsBadVocabularies(t *testing.T) {
	v := smallVocab()
	if _, err := New(v, []string{"c a b"}); err == nil || !strings.Contains(err.Error(), "two symbols") {
		t.Errorf("three-part merge: err = %v", err)
	}
	if _, err := New(v, []string{"x y"}); err == nil || !strings.Contains(err.Error(), `"xy" is not in the vocabulary`) {
		t.Errorf("merge without result: err = %v", err)
	}
	noEnd := smallVocab()
	delete(noEnd, EndToken)
	if _, err := New(noEnd, nil); err == nil || !strings.Contains(err.Error(), EndToken) {
		t.Errorf("missing end token: err = %v", err)
	}
	noByte := smallVocab()
	delete(noByte, "q</w>")
	if _, err := New(noByte, nil); err == nil || !strings.Contains(err.Error(), "q</w>") {
		t.Errorf("missing byte symbol: err = %v", err)
	}
}

func writeFolder(t *testing.T, vocab map[string]int, merges []string, specialMap string) string {
	t.Helper()
	dir := t.TempDir()
	data, _ := json.Marshal(vocab)
	must(t, os.WriteFile(filepath.Join(dir, "vocab.json"), data, 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "merges.txt"), []byte("#version: 0.2\n"+strings.Join(merges, "\n")+"\n"), 0o644))
	if specialMap != "" {
		must(t, os.WriteFile(filepath.Join(dir, "special_tokens_map.json"), []byte(specialMap), 0o644))
	}
	return dir
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestLoadFolder(t *testing.T) {
	v := smallVocab()
	dir := writeFolder(t, v, smallMerges, `{"pad_token": {"content": "!", "lstrip": false}}`)
	tok, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := tok.Tokens("hello cat"); !reflect.DeepEqual(got, []int{v["hello</w>"], v["cat</w>"]}) {
		t.Errorf("Tokens = %v", got)
	}
	if tok.PadID() != 0 {
		t.Errorf("pad id = %d, want 0 from special_tokens_map.json", tok.PadID())
	}
	dir = writeFolder(t, v, smallMerges, `{"pad_token": "<|endoftext|>"}`)
	if tok, err = Load(dir); err != nil || tok.PadID() != v[EndToken] {
		t.Errorf("string pad token: id %v, err %v", tok, err)
	}

	missing := filepath.Join(t.TempDir(), "tokenizer")
	if _, err := Load(missing); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("missing folder: err = %v", err)
	}
	bad := writeFolder(t, v, smallMerges, "")
	must(t, os.WriteFile(filepath.Join(bad, "vocab.json"), []byte("[1,2]"), 0o644))
	if _, err := Load(bad); err == nil || !strings.Contains(err.Error(), "vocab.json") {
		t.Errorf("bad vocab.json: err = %v", err)
	}
}

// openAIFixture writes a bpe_simple_vocab-style file whose merges put the
// words of the known test prompts at the ranks that give them their ids in
// the released vocabulary (id = 512 + rank); every other rank is filler.
func openAIFixture(t *testing.T) string {
	t.Helper()
	placed := map[int]string{
		1: "w o", 2: "wo r", 3: "l d</w>", 490: "wor ld</w>", // world</w> = 1002
		4: "p h", 5: "ph o", 6: "t o</w>", 613: "pho to</w>", // photo</w> = 1125
		27: "o f</w>",               // of</w> = 539
		7:  "c a", 1856: "ca t</w>", // cat</w> = 2368
		8: "h e", 9: "l l", 10: "he ll", 2794: "hell o</w>", // hello</w> = 3306
	}
	var b strings.Builder
	b.WriteString("\"bpe_simple_vocab_16e6.txt#version: 0.2\n")
	for r := range openAIMerges + 100 { // the real file has more lines than CLIP uses
		if m, ok := placed[r]; ok {
			b.WriteString(m)
		} else {
			fmt.Fprintf(&b, "x%d y%d", r, r)
		}
		b.WriteByte('\n')
	}
	p := filepath.Join(t.TempDir(), "bpe_simple_vocab_16e6.txt.gz")
	f, err := os.Create(p)
	must(t, err)
	gz := gzip.NewWriter(f)
	_, err = gz.Write([]byte(b.String()))
	must(t, err)
	must(t, gz.Close())
	must(t, f.Close())
	return p
}

// knownVectors are the ids the released CLIP tokenizer gives.
var knownVectors = []struct {
	text string
	want []int
}{
	{"a photo of a cat", []int{49406, 320, 1125, 539, 320, 2368, 49407}},
	{"Hello, world!", []int{49406, 3306, 267, 1002, 256, 49407}},
}

func checkKnownVectors(t *testing.T, tok *Tokenizer) {
	t.Helper()
	if tok.VocabSize() != 49408 || tok.StartID() != 49406 || tok.EndID() != 49407 {
		t.Errorf("vocab size %d, start %d, end %d; want 49408, 49406, 49407", tok.VocabSize(), tok.StartID(), tok.EndID())
	}
	for _, kv := range knownVectors {
		enc := tok.Encode(kv.text)
		if got := enc.IDs[:enc.Length]; !reflect.DeepEqual(got, kv.want) {
			t.Errorf("Encode(%q) = %v, want %v", kv.text, got, kv.want)
		}
		for i := enc.Length; i < ContextLength; i++ {
			if enc.IDs[i] != 49407 {
				t.Fatalf("Encode(%q) pads with %d at %d, want 49407", kv.text, enc.IDs[i], i)
			}
		}
	}
}

func TestLoadOpenAIFormat(t *testing.T) {
	p := openAIFixture(t)
	tok, err := LoadOpenAI(p)
	if err != nil {
		t.Fatal(err)
	}
	checkKnownVectors(t, tok)
	tok2, err := LoadAny(filepath.Dir(p))
	if err != nil || tok2.VocabSize() != tok.VocabSize() {
		t.Errorf("LoadAny on the .gz folder: %v", err)
	}
}

// TestRealVocabulary checks the built-in vocabulary (OpenAI's released
// merge list) against ids the released CLIP tokenizer gives, and, on hard
// prompts, the properties that hold without another tokenizer to compare
// with. SDFLEET_CLIP_VOCAB_DIR may name another copy (a vocab.json +
// merges.txt folder, or one with bpe_simple_vocab_16e6.txt.gz) to check
// the same way.
func TestRealVocabulary(t *testing.T) {
	tok, err := BuiltinCLIP()
	if err != nil {
		t.Fatal(err)
	}
	checkKnownVectors(t, tok)
	checkHardPrompts(t, tok)
	if dir := os.Getenv("SDFLEET_CLIP_VOCAB_DIR"); dir != "" {
		other, err := LoadAny(dir)
		if err != nil {
			t.Fatalf("SDFLEET_CLIP_VOCAB_DIR=%s: %v", dir, err)
		}
		checkKnownVectors(t, other)
	}
}

func TestBuiltinTokenizersAreIndependent(t *testing.T) {
	a, err := BuiltinCLIP()
	must(t, err)
	b, err := BuiltinCLIP()
	must(t, err)
	must(t, a.SetPadToken("!"))
	if a.PadID() != 0 || b.PadID() != 49407 {
		t.Errorf("pad ids after SetPadToken on one: %d and %d, want 0 and 49407", a.PadID(), b.PadID())
	}
}

// hardPrompts are prompts whose tokens the known vectors do not cover.
var hardPrompts = []string{
	"!!!??? ... --- ((masterpiece)), [best:quality], {a|b}; 50% off!!!",
	"1024x768 photo, 3.14159 f/2.8 ISO-100 year 1999",
	"café déjà vu, naïve Zürich straße, Ærøskøbing, ÉCOLE",
	"東京の夜景、富士山 and 서울 skyline, 北京烤鸭",
	"a cat 🐱 with a 🎩 hat 👩‍👩‍👧 family 🏳️‍🌈 flag",
	"Tab\there,\n new   lines &amp; &lt;html&gt; it’s “quoted”",
}

// checkHardPrompts asserts, for each hard prompt and a 200-word one: every
// id is in the vocabulary; decoding the tokens gives back the cleaned text
// (the decoder puts a space after every word, so the comparison is of the
// text without spaces and of the decoded words); and a prompt of more than
// 75 tokens keeps exactly the first 75, reporting the rest as dropped.
func checkHardPrompts(t *testing.T, tok *Tokenizer) {
	t.Helper()
	var long []string
	for i := range 200 {
		long = append(long, []string{"forest", "river", "golden", "light", "misty", "mountains", "ancient", "castle"}[i%8]+fmt.Sprint(i%10))
	}
	for _, prompt := range append(hardPrompts, strings.Join(long, " ")) {
		tokens := tok.Tokens(prompt)
		for _, id := range tokens {
			if id < 0 || id >= tok.VocabSize() || id == tok.StartID() || id == tok.EndID() {
				t.Fatalf("Tokens(%q) has id %d, want one in [0, %d) that is not a special token", prompt, id, tok.StartID())
			}
		}
		clean := Clean(prompt)
		decoded := tok.Decode(tokens)
		if nospace(decoded) != nospace(clean) {
			t.Errorf("Decode(Tokens(%q)) = %q, want the cleaned text %q", prompt, decoded, clean)
		}
		if got, want := strings.Join(strings.Fields(decoded), ""), nospace(clean); got != want {
			t.Errorf("decoded words of %q join to %q, want %q", prompt, got, want)
		}
		enc := tok.Encode(prompt)
		if len(enc.IDs) != ContextLength {
			t.Fatalf("Encode(%q) has %d ids, want %d", prompt, len(enc.IDs), ContextLength)
		}
		if len(tokens) <= MaxTokens {
			if enc.Truncated || enc.Length != len(tokens)+2 {
				t.Errorf("Encode(%q): truncated=%v length=%d, want false and %d", prompt, enc.Truncated, enc.Length, len(tokens)+2)
			}
			continue
		}
		if !enc.Truncated || enc.Length != ContextLength || !reflect.DeepEqual(enc.IDs[1:1+MaxTokens], tokens[:MaxTokens]) || enc.IDs[ContextLength-1] != tok.EndID() {
			t.Fatalf("Encode(%q): truncated=%v length=%d; want the first %d tokens between start and end", prompt, enc.Truncated, enc.Length, MaxTokens)
		}
		kept := tok.Decode(tokens[:MaxTokens])
		if nospace(kept)+nospace(enc.Dropped) != nospace(clean) || enc.Dropped == "" {
			t.Errorf("Encode(%q): kept %q and dropped %q do not make up the cleaned text", prompt, kept, enc.Dropped)
		}
	}
}

func nospace(s string) string { return strings.Join(strings.Fields(s), "") }

func TestConcurrentEncode(t *testing.T) {
	tok, _ := newSmall(t)
	want := tok.Encode("hello cat bat helllo")
	done := make(chan []int)
	for range 8 {
		go func() {
			var last []int
			for range 200 {
				last = tok.Encode("hello cat bat helllo").IDs
			}
			done <- last
		}()
	}
	for range 8 {
		if got := <-done; !reflect.DeepEqual(got, want.IDs) {
			t.Fatalf("concurrent Encode = %v, want %v", got, want.IDs)
		}
	}
}
