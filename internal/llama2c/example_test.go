package llama2c_test

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/verdictnet/verdict/internal/llama2c"
)

func ExampleParseTokenizer() {
	// max_token_length, then (score, length, bytes) per token.
	var b []byte
	le := binary.LittleEndian
	b = le.AppendUint32(b, 5)
	for _, tok := range []string{"<unk>", "<s>", "</s>", " the"} {
		b = le.AppendUint32(b, math.Float32bits(-1))
		b = le.AppendUint32(b, uint32(len(tok)))
		b = append(b, tok...)
	}
	v, err := llama2c.ParseTokenizer(b, 0)
	if err != nil {
		panic(err)
	}
	fmt.Printf("%s %d tokens, bos %d, %q\n", v.Flavor, len(v.Tokens), v.BOS, v.Tokens[3])
	// Output: llama2c 4 tokens, bos 1, " the"
}
