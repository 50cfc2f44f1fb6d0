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

// TestRealVocabulary checks the released vocabulary when one is provided:
// SDFLEET_CLIP_VOCAB_DIR names a folder with vocab.json + merges.txt or
// with bpe_simple_vocab_16e6.txt.gz. A folder that does not load fails the
// test.
func TestRealVocabulary(t *testing.T) {
	dir := os.Getenv("SDFLEET_CLIP_VOCAB_DIR")
	if dir == "" {
		t.Skip("SDFLEET_CLIP_VOCAB_DIR is not set; the released vocabulary cannot be bundled")
	}
	tok, err := LoadAny(dir)
	if err != nil {
		t.Fatalf("SDFLEET_CLIP_VOCAB_DIR=%s: %v", dir, err)
	}
	checkKnownVectors(t, tok)
}

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
