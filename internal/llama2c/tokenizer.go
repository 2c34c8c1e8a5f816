package llama2c

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"os"

	"github.com/verdictnet/verdict/internal/tokenizer"
)

// Token ids fixed by llama2.c's run.c.
const (
	UNK = 0
	BOS = 1
	EOS = 2
)

// Limits on tokenizer files.
const (
	maxTokenizerFile = 64 << 20 // bytes
	maxTokenBytes    = 1 << 16  // bytes in one token
)

// ParseTokenizer reads a llama2.c tokenizer file: an int32 max_token_length,
// then per token a float32 score, an int32 byte length and the bytes.
//
// The file does not record the vocabulary size. When vocabSize > 0 exactly
// that many tokens must be present and nothing may follow; when vocabSize <=
// 0 tokens are read until the end of the data.
func ParseTokenizer(data []byte, vocabSize int) (*tokenizer.Vocab, error) {
	if len(data) < 4 {
		return nil, fmt.Errorf("truncated: tokenizer header needs 4 bytes, file has %d", len(data))
	}
	le := binary.LittleEndian
	maxLen := int32(le.Uint32(data))
	if maxLen <= 0 || maxLen > maxTokenBytes {
		return nil, fmt.Errorf("max_token_length %d out of range (1 to %d); not a llama2.c tokenizer file?", maxLen, maxTokenBytes)
	}
	// A token takes at least 8 bytes, which bounds the count.
	capHint := (len(data) - 4) / 8
	if vocabSize > 0 {
		if vocabSize > capHint {
			return nil, fmt.Errorf("truncated: %d tokens need at least %d bytes, file has %d", vocabSize, 4+8*vocabSize, len(data))
		}
		capHint = vocabSize
	}
	v := &tokenizer.Vocab{
		Flavor:      tokenizer.Llama2C,
		Tokens:      make([]string, 0, capHint),
		Scores:      make([]float32, 0, capHint),
		BOS:         BOS,
		EOS:         EOS,
		UNK:         UNK,
		AddBOS:      true,
		MaxTokenLen: int(maxLen),
	}
	pos := 4
	for vocabSize <= 0 || len(v.Tokens) < vocabSize {
		if vocabSize <= 0 && pos == len(data) {
			break
		}
		i := len(v.Tokens)
		if len(data)-pos < 8 {
			return nil, fmt.Errorf("truncated: token %d at offset %d needs 8 header bytes, %d remain", i, pos, len(data)-pos)
		}
		score := math.Float32frombits(le.Uint32(data[pos:]))
		n := int32(le.Uint32(data[pos+4:]))
		pos += 8
		if n < 0 || n > maxLen {
			return nil, fmt.Errorf("token %d: length %d outside 0 to max_token_length %d", i, n, maxLen)
		}
		if int(n) > len(data)-pos {
			return nil, fmt.Errorf("truncated: token %d at offset %d claims %d bytes, %d remain", i, pos, n, len(data)-pos)
		}
		v.Tokens = append(v.Tokens, string(data[pos:pos+int(n)]))
		v.Scores = append(v.Scores, score)
		pos += int(n)
	}
	if pos != len(data) {
		return nil, fmt.Errorf("%d unexpected bytes after token %d at offset %d (vocabulary size %d?)", len(data)-pos, len(v.Tokens)-1, pos, vocabSize)
	}
	if len(v.Tokens) <= EOS {
		return nil, fmt.Errorf("only %d tokens; llama2.c needs at least <unk>, <s> and </s>", len(v.Tokens))
	}
	return v, nil
}

// ReadTokenizer reads a llama2.c tokenizer file from disk (see
// ParseTokenizer). Errors start with the path.
func ReadTokenizer(path string, vocabSize int) (*tokenizer.Vocab, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxTokenizerFile+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(data) > maxTokenizerFile {
		return nil, fmt.Errorf("%s: larger than %d bytes; not a llama2.c tokenizer file", path, maxTokenizerFile)
	}
	v, err := ParseTokenizer(data, vocabSize)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return v, nil
}
