//go:build e2e

package e2e

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"image/png"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

// generationParams are the parameters sdgen embeds in each PNG (its "sdfleet" tEXt chunk).
type generationParams struct {
	Prompt string `json:"prompt"`
	Seed   int64  `json:"seed"`
	Steps  int    `json:"steps"`
	Width  int    `json:"width"`
	Height int    `json:"height"`
}

// pngMetadata checks that data is a valid PNG and returns the parameters of its "sdfleet"
// text chunk.
func pngMetadata(data []byte) generationParams {
	GinkgoHelper()
	_, err := png.Decode(bytes.NewReader(data))
	Expect(err).NotTo(HaveOccurred(), "not a valid PNG")
	Expect(len(data)).To(BeNumerically(">", 8))
	var params *generationParams
	for rest := data[8:]; len(rest) >= 12; {
		n := int(binary.BigEndian.Uint32(rest[:4]))
		Expect(len(rest)).To(BeNumerically(">=", 12+n), "truncated PNG chunk")
		typ, body := string(rest[4:8]), rest[8:8+n]
		if typ == "tEXt" {
			if key, text, ok := bytes.Cut(body, []byte{0}); ok && string(key) == "sdfleet" {
				params = &generationParams{}
				Expect(json.Unmarshal(text, params)).To(Succeed())
			}
		}
		rest = rest[12+n:]
	}
	Expect(params).NotTo(BeNil(), "the PNG has no sdfleet text chunk")
	return *params
}
