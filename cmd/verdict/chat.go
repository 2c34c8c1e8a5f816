package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"

	"github.com/verdictnet/verdict/internal/chat"
	"github.com/verdictnet/verdict/internal/gguf"
	"github.com/verdictnet/verdict/internal/merkle"
	"github.com/verdictnet/verdict/internal/model"
	"github.com/verdictnet/verdict/internal/receipt"
	"github.com/verdictnet/verdict/internal/tokenizer"
)

func init() {
	register(&command{Name: "chat", Summary: "render a chat request with a model's chat template (chat render)", Run: runChat})
}

const chatUsage = `Usage:
  verdict chat render --model FILE --request REQ.json [--tokens | --json]

Prints exactly the text the model would be given for an OpenAI chat-completion
request body (messages, tools, chat_template_kwargs, add_generation_prompt):
the model's tokenizer.chat_template rendered as Hugging Face renders it, or the
plain template when the file has none. FILE is a GGUF (vocabulary-only files
too) or a llama2.c checkpoint; REQ.json "-" reads standard input.
  --tokens  print the prompt's token ids as a JSON array instead
  --json    print {"template","digest","text","tokens"} (digest: the chat
            template commitment of docs/protocol.md)
`

func runChat(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	switch {
	case len(args) == 0:
		fmt.Fprint(stderr, chatUsage)
		return exitError{code: 2}
	case args[0] == "-h" || args[0] == "-help" || args[0] == "--help" || args[0] == "help":
		fmt.Fprint(stderr, chatUsage)
		return nil
	case args[0] != "render":
		return exitError{code: 2, msg: fmt.Sprintf("chat: unknown subcommand %q (want render; chat -h for its usage)", trunc(args[0], 80))}
	}
	fs := newFlagSet("chat render", stderr)
	fs.Usage = func() { fmt.Fprint(stderr, chatUsage) }
	modelPath := fs.String("model", "", "GGUF or llama2.c checkpoint (required)")
	tokPath := fs.String("tokenizer", "", "tokenizer file for a llama2.c checkpoint")
	reqPath := fs.String("request", "", "OpenAI chat-completion request body, JSON (required; - for stdin)")
	tokens := fs.Bool("tokens", false, "print the token ids as a JSON array")
	asJSON := fs.Bool("json", false, "print template name, digest, text and tokens as JSON")
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	if *modelPath == "" || *reqPath == "" || fs.NArg() != 0 {
		fs.Usage()
		return exitError{code: 2}
	}
	var body []byte
	var err error
	if *reqPath == "-" {
		body, err = io.ReadAll(os.Stdin)
	} else {
		body, err = os.ReadFile(*reqPath)
	}
	if err != nil {
		return fmt.Errorf("chat render: %w", err)
	}
	req, err := chat.ParseRequest(body)
	if err != nil {
		return fmt.Errorf("chat render: %s: %w", *reqPath, err)
	}
	vocab, src, err := chatModel(*modelPath, *tokPath)
	if err != nil {
		return fmt.Errorf("chat render: %w", err)
	}
	tmpl, err := chat.ForVocab(src, vocab)
	if err != nil {
		return fmt.Errorf("chat render: %w", err)
	}
	p, err := tmpl.Render(req)
	if err != nil {
		return fmt.Errorf("chat render: %w", err)
	}
	if !*tokens && !*asJSON {
		_, err = io.WriteString(stdout, p.Text())
		return err
	}
	tok, err := tokenizer.New(vocab)
	if err != nil {
		return fmt.Errorf("chat render: %w", err)
	}
	ids, err := p.Encode(tok)
	if err != nil {
		return fmt.Errorf("chat render: %w", err)
	}
	if ids == nil {
		ids = []int{}
	}
	var out any = ids
	if *asJSON {
		out = struct {
			Template string `json:"template"`
			Digest   string `json:"digest"`
			Text     string `json:"text"`
			Tokens   []int  `json:"tokens"`
		}{tmpl.Name(), hex.EncodeToString(p.Digest[:]), p.Text(), ids}
	}
	enc := json.NewEncoder(stdout)
	enc.SetEscapeHTML(false)
	return enc.Encode(out)
}

// chatModel loads the vocabulary and chat template of a model file.
func chatModel(path, tokPath string) (*tokenizer.Vocab, string, error) {
	f, err := gguf.Open(path)
	if err != nil {
		// Not a GGUF: a llama2.c checkpoint, which has no template.
		m, lerr := model.Load(path, tokPath)
		if lerr != nil {
			return nil, "", lerr
		}
		defer m.Close()
		if m.Vocab == nil {
			return nil, "", fmt.Errorf("%s: no tokenizer", path)
		}
		return m.Vocab, "", nil
	}
	defer f.Close()
	v, err := model.VocabFromGGUF(f)
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", path, err)
	}
	src := ""
	if f.Has("tokenizer.chat_template") {
		if src, err = f.String("tokenizer.chat_template"); err != nil {
			return nil, "", fmt.Errorf("%s: %w", path, err)
		}
	}
	return v, src, nil
}

// checkChatRequest re-renders a chat request with the model's template and
// checks that it gives the receipt's chat_template and prompt tokens.
func checkChatRequest(m *model.Model, r *receipt.Receipt, reqPath string) error {
	body, err := os.ReadFile(reqPath)
	if err != nil {
		return err
	}
	req, err := chat.ParseRequest(body)
	if err != nil {
		return fmt.Errorf("%s: %w", reqPath, err)
	}
	src := ""
	if m.Format == "gguf" {
		f, err := gguf.Open(m.Path)
		if err != nil {
			return err
		}
		if f.Has("tokenizer.chat_template") {
			src, err = f.String("tokenizer.chat_template")
		}
		f.Close()
		if err != nil {
			return err
		}
	}
	tmpl, err := chat.ForVocab(src, m.Vocab)
	if err != nil {
		return err
	}
	p, err := tmpl.Render(req)
	if err != nil {
		return fmt.Errorf("%s: %w", reqPath, err)
	}
	if r.ChatTemplate != merkle.Hash(p.Digest) {
		return fmt.Errorf("chat_template %s, but the request renders to %x", r.ChatTemplate, p.Digest)
	}
	tok, err := tokenizer.New(m.Vocab)
	if err != nil {
		return err
	}
	ids, err := p.Encode(tok)
	if err != nil {
		return err
	}
	if !slices.Equal(ids, r.Prompt) {
		return fmt.Errorf("the request's prompt has %d tokens that differ from the receipt's %d", len(ids), len(r.Prompt))
	}
	return nil
}
