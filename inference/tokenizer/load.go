package tokenizer

import (
	"bufio"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// openAIMerges is how many merges of bpe_simple_vocab_16e6.txt CLIP uses:
// 49152 symbols minus the 512 byte symbols and the 2 special tokens.
const openAIMerges = 49152 - 256 - 2

// Load reads a diffusers/transformers tokenizer folder: vocab.json,
// merges.txt, and optionally special_tokens_map.json to pick the pad token.
func Load(dir string) (*Tokenizer, error) {
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("tokenizer folder %s not found (want vocab.json and merges.txt in it)", dir)
	}
	vocabPath := filepath.Join(dir, "vocab.json")
	data, err := os.ReadFile(vocabPath)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	var vocab map[string]int
	if err := json.Unmarshal(data, &vocab); err != nil {
		return nil, fmt.Errorf("tokenizer %s: want a JSON object of symbol to id: %w", vocabPath, err)
	}
	mergesPath := filepath.Join(dir, "merges.txt")
	merges, err := readMerges(mergesPath, -1, false)
	if err != nil {
		return nil, err
	}
	t, err := New(vocab, merges)
	if err != nil {
		return nil, fmt.Errorf("tokenizer %s: %w", dir, err)
	}
	if pad, err := readPadToken(filepath.Join(dir, "special_tokens_map.json")); err != nil {
		return nil, err
	} else if pad != "" {
		if err := t.SetPadToken(pad); err != nil {
			return nil, fmt.Errorf("tokenizer %s: special_tokens_map.json: %w", dir, err)
		}
	}
	return t, nil
}

// readPadToken returns the pad token of a special_tokens_map.json, "" when
// the file or the entry is absent. The entry is a string or an object with
// a "content" field.
func readPadToken(path string) (string, error) {
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("tokenizer: %w", err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return "", fmt.Errorf("tokenizer %s: %w", path, err)
	}
	raw, ok := m["pad_token"]
	if !ok {
		return "", nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, nil
	}
	var obj struct {
		Content string `json:"content"`
	}
	if err := json.Unmarshal(raw, &obj); err != nil {
		return "", fmt.Errorf("tokenizer %s: pad_token is neither a string nor {content}: %w", path, err)
	}
	return obj.Content, nil
}

// readMerges reads the merge file at path (gzip-compressed when its name
// ends in .gz); see parseMerges.
func readMerges(path string, limit int, skipFirst bool) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	defer f.Close()
	var r io.Reader = f
	if strings.HasSuffix(path, ".gz") {
		gz, err := gzip.NewReader(f)
		if err != nil {
			return nil, fmt.Errorf("tokenizer %s: %w", path, err)
		}
		defer gz.Close()
		r = gz
	}
	return parseMerges(r, path, limit, skipFirst)
}

// parseMerges reads merge lines, skipping blank lines and the first line
// when it is a "#version" header or when skipFirst is set (OpenAI's file
// starts with a version line of its own form); limit < 0 means all. name
// is the file's name for errors.
func parseMerges(r io.Reader, name string, limit int, skipFirst bool) ([]string, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var merges []string
	first := true
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		if first {
			first = false
			if skipFirst || strings.HasPrefix(line, "#version") {
				continue
			}
		}
		if line == "" {
			continue
		}
		if limit >= 0 && len(merges) == limit {
			break
		}
		merges = append(merges, line)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("tokenizer %s: %w", name, err)
	}
	return merges, nil
}

// LoadOpenAI reads OpenAI's bpe_simple_vocab_16e6.txt.gz and builds the
// vocabulary the way CLIP does: byte symbols, byte symbols with "</w>", the
// result of each of the first 48894 merges, then the two special tokens.
func LoadOpenAI(path string) (*Tokenizer, error) {
	merges, err := readMerges(path, openAIMerges, true)
	if err != nil {
		return nil, err
	}
	vocab, err := openAIVocab(merges, path)
	if err != nil {
		return nil, err
	}
	t, err := New(vocab, merges)
	if err != nil {
		return nil, fmt.Errorf("tokenizer %s: %w", path, err)
	}
	return t, nil
}

// openAIVocab numbers the symbols of OpenAI's merge list the way CLIP
// does; name is the file's name for errors.
func openAIVocab(merges []string, name string) (map[string]int, error) {
	if len(merges) != openAIMerges {
		return nil, fmt.Errorf("tokenizer %s: has %d merges, want at least %d", name, len(merges), openAIMerges)
	}
	symbols := ByteSymbols()
	vocab := make(map[string]int, 49408)
	add := func(s string) {
		if _, dup := vocab[s]; !dup {
			vocab[s] = len(vocab)
		}
	}
	for _, s := range symbols {
		add(s)
	}
	for _, s := range symbols {
		add(s + endOfWord)
	}
	for i, m := range merges {
		if strings.Count(m, " ") != 1 {
			return nil, fmt.Errorf("tokenizer %s: merge %d %q: want two symbols separated by one space", name, i+1, m)
		}
		before := len(vocab)
		add(strings.Replace(m, " ", "", 1))
		if len(vocab) == before {
			return nil, fmt.Errorf("tokenizer %s: merge %d %q repeats an earlier result", name, i+1, m)
		}
	}
	add(StartToken)
	add(EndToken)
	return vocab, nil
}

// LoadAny loads dir as a tokenizer folder, or, when dir holds
// bpe_simple_vocab_16e6.txt.gz instead, from that file.
func LoadAny(dir string) (*Tokenizer, error) {
	gz := filepath.Join(dir, "bpe_simple_vocab_16e6.txt.gz")
	if _, err := os.Stat(filepath.Join(dir, "vocab.json")); err != nil {
		if _, err2 := os.Stat(gz); err2 == nil {
			return LoadOpenAI(gz)
		}
	}
	return Load(dir)
}
