package main

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/verdictnet/verdict/internal/keys"
	"github.com/verdictnet/verdict/internal/ledger"
	"github.com/verdictnet/verdict/internal/ledger/node"
)

func init() {
	register(&command{Name: "tx", Summary: "sign and send a ledger transaction to a node", Run: runTx})
}

// txKinds builds each transaction kind's message from its flags.
var txKinds = map[string]func(fs *flag.FlagSet) func(chain string) (ledger.Msg, error){
	"send": func(fs *flag.FlagSet) func(chain string) (ledger.Msg, error) {
		to, amt := fs.String("to", "", "recipient address"), fs.Uint64("amount", 0, "amount")
		return func(chain string) (ledger.Msg, error) {
			a, err := ledger.ParseAddress(*to)
			return &ledger.MsgSend{To: a, Amount: *amt}, flagErr("to", err)
		}
	},
	"register-model": func(fs *flag.FlagSet) func(chain string) (ledger.Msg, error) {
		id, name, spec := fs.String("model-id", "", "model id (hex)"), fs.String("name", "", "model name"), fs.Uint("spec-version", 1, "determinism spec version")
		return func(chain string) (ledger.Msg, error) {
			h, err := ledger.ParseHash(*id)
			return &ledger.MsgRegisterModel{ModelID: h, Name: *name, SpecVersion: uint32(*spec)}, flagErr("model-id", err)
		}
	},
	"attest-model": func(fs *flag.FlagSet) func(chain string) (ledger.Msg, error) {
		id := fs.String("model-id", "", "model id (hex) of a model this validator holds; sign with --validator-home")
		return func(chain string) (ledger.Msg, error) {
			h, err := ledger.ParseHash(*id)
			return &ledger.MsgAttestModel{ModelID: h}, flagErr("model-id", err)
		}
	},
	"register-agent": func(fs *flag.FlagSet) func(chain string) (ledger.Msg, error) {
		uri := fs.String("agent-uri", "", "agentURI: the agent's registration file")
		var meta metaFlag
		fs.Var(&meta, "meta", "metadata KEY=VALUE (repeatable)")
		return func(chain string) (ledger.Msg, error) {
			return &ledger.MsgRegisterAgent{AgentURI: *uri, Metadata: meta}, nil
		}
	},
	"set-agent-uri": func(fs *flag.FlagSet) func(chain string) (ledger.Msg, error) {
		id, uri := fs.Uint64("agent-id", 0, "agentId"), fs.String("agent-uri", "", "new agentURI")
		return func(chain string) (ledger.Msg, error) {
			return &ledger.MsgSetAgentURI{AgentID: *id, AgentURI: *uri}, nil
		}
	},
	"set-metadata": func(fs *flag.FlagSet) func(chain string) (ledger.Msg, error) {
		id, k, v := fs.Uint64("agent-id", 0, "agentId"), fs.String("key", "", "metadataKey"), fs.String("value", "", "metadataValue")
		return func(chain string) (ledger.Msg, error) {
			return &ledger.MsgSetMetadata{AgentID: *id, MetadataKey: *k, MetadataValue: []byte(*v)}, nil
		}
	},
	"set-agent-wallet": func(fs *flag.FlagSet) func(chain string) (ledger.Msg, error) {
		id, wk := fs.Uint64("agent-id", 0, "agentId"), fs.String("wallet-key", "", "key file of the new agentWallet, which signs its acceptance")
		deadline := fs.Int64("deadline", 0, "unix time after which the wallet's signature expires (default: now + 1h)")
		return func(chain string) (ledger.Msg, error) {
			if *wk == "" {
				return nil, errors.New("--wallet-key is required")
			}
			k, err := keys.Load(*wk)
			if err != nil {
				return nil, fmt.Errorf("--wallet-key: %w", err)
			}
			dl := *deadline
			if dl == 0 {
				dl = time.Now().Add(time.Hour).Unix()
			}
			w := ledger.Address(k.Public)
			sig := ed25519.Sign(k.Private, ledger.AgentWalletMessage(chain, *id, w, dl))
			return &ledger.MsgSetAgentWallet{AgentID: *id, NewWallet: w, Deadline: dl, Signature: sig}, nil
		}
	},
	"transfer-agent": func(fs *flag.FlagSet) func(chain string) (ledger.Msg, error) {
		id := fs.Uint64("agent-id", 0, "agentId")
		from, to := fs.String("from", "", "the current owner (the signer's address)"), fs.String("to", "", "the new owner's address")
		return func(chain string) (ledger.Msg, error) {
			f, err1 := ledger.ParseAddress(*from)
			t, err2 := ledger.ParseAddress(*to)
			return &ledger.MsgTransferFrom{From: f, To: t, AgentID: *id},
				errors.Join(flagErr("from", err1), flagErr("to", err2))
		}
	},
	"give-feedback": func(fs *flag.FlagSet) func(chain string) (ledger.Msg, error) {
		id, v, d := fs.Uint64("agent-id", 0, "agentId"), fs.String("value", "", "value (int128, decimal)"), fs.Uint("value-decimals", 0, "valueDecimals (0-18)")
		t1, t2, ep := fs.String("tag1", "", "tag1"), fs.String("tag2", "", "tag2"), fs.String("endpoint", "", "endpoint")
		uri, fh := fs.String("feedback-uri", "", "feedbackURI"), fs.String("feedback-hash", strings.Repeat("0", 64), "feedbackHash (hex)")
		return func(chain string) (ledger.Msg, error) {
			h, err := ledger.ParseHash(*fh)
			if *d > 255 {
				return nil, fmt.Errorf("--value-decimals %d out of range", *d)
			}
			return &ledger.MsgGiveFeedback{AgentID: *id, Value: ledger.Int128(*v), ValueDecimals: uint8(*d),
				Tag1: *t1, Tag2: *t2, Endpoint: *ep, FeedbackURI: *uri, FeedbackHash: h}, flagErr("feedback-hash", err)
		}
	},
	"revoke-feedback": func(fs *flag.FlagSet) func(chain string) (ledger.Msg, error) {
		id, idx := fs.Uint64("agent-id", 0, "agentId"), fs.Uint64("feedback-index", 0, "feedbackIndex (1-based)")
		return func(chain string) (ledger.Msg, error) {
			return &ledger.MsgRevokeFeedback{AgentID: *id, FeedbackIndex: *idx}, nil
		}
	},
	"append-response": func(fs *flag.FlagSet) func(chain string) (ledger.Msg, error) {
		id, c, idx := fs.Uint64("agent-id", 0, "agentId"), fs.String("client", "", "clientAddress of the feedback"), fs.Uint64("feedback-index", 0, "feedbackIndex")
		uri, rh := fs.String("response-uri", "", "responseURI"), fs.String("response-hash", strings.Repeat("0", 64), "responseHash (hex)")
		return func(chain string) (ledger.Msg, error) {
			a, err1 := ledger.ParseAddress(*c)
			h, err2 := ledger.ParseHash(*rh)
			return &ledger.MsgAppendResponse{AgentID: *id, ClientAddress: a, FeedbackIndex: *idx, ResponseURI: *uri, ResponseHash: h},
				errors.Join(flagErr("client", err1), flagErr("response-hash", err2))
		}
	},
	"validation-request": func(fs *flag.FlagSet) func(chain string) (ledger.Msg, error) {
		v, id := fs.String("validator", "", "validatorAddress"), fs.Uint64("agent-id", 0, "agentId")
		uri, rh := fs.String("request-uri", "", "requestURI"), fs.String("request-hash", "", "requestHash (hex)")
		return func(chain string) (ledger.Msg, error) {
			a, err1 := ledger.ParseAddress(*v)
			h, err2 := ledger.ParseHash(*rh)
			return &ledger.MsgValidationRequest{ValidatorAddress: a, AgentID: *id, RequestURI: *uri, RequestHash: h},
				errors.Join(flagErr("validator", err1), flagErr("request-hash", err2))
		}
	},
	"validation-response": func(fs *flag.FlagSet) func(chain string) (ledger.Msg, error) {
		rh, r := fs.String("request-hash", "", "requestHash (hex)"), fs.Uint("response", 0, "response (0-100)")
		uri, resh, tag := fs.String("response-uri", "", "responseURI"), fs.String("response-hash", strings.Repeat("0", 64), "responseHash (hex)"), fs.String("tag", "", "tag")
		return func(chain string) (ledger.Msg, error) {
			h, err1 := ledger.ParseHash(*rh)
			h2, err2 := ledger.ParseHash(*resh)
			if *r > 100 {
				return nil, fmt.Errorf("--response %d exceeds 100", *r)
			}
			return &ledger.MsgValidationResponse{RequestHash: h, Response: uint8(*r), ResponseURI: *uri, ResponseHash: h2, Tag: *tag},
				errors.Join(flagErr("request-hash", err1), flagErr("response-hash", err2))
		}
	},
	"bond": func(fs *flag.FlagSet) func(chain string) (ledger.Msg, error) {
		amt := fs.Uint64("amount", 0, "amount to bond")
		return func(chain string) (ledger.Msg, error) { return &ledger.MsgBond{Amount: *amt}, nil }
	},
	"unbond": func(fs *flag.FlagSet) func(chain string) (ledger.Msg, error) {
		amt := fs.Uint64("amount", 0, "amount to unbond")
		return func(chain string) (ledger.Msg, error) {
			return &ledger.MsgUnbond{Amount: *amt}, nil
		}
	},
	"unjail": func(fs *flag.FlagSet) func(chain string) (ledger.Msg, error) {
		return func(chain string) (ledger.Msg, error) { return &ledger.MsgUnjail{}, nil }
	},
	"set-validator": func(fs *flag.FlagSet) func(chain string) (ledger.Msg, error) {
		active := fs.Bool("active", true, "validate (true) or withdraw (false); the signing key must be the node's priv_validator key")
		return func(chain string) (ledger.Msg, error) {
			return &ledger.MsgSetValidator{Active: *active}, nil
		}
	},
	"open-escrow": func(fs *flag.FlagSet) func(chain string) (ledger.Msg, error) {
		w, id, amt, agent := fs.String("worker", "", "worker address"), fs.String("model-id", "", "model id (hex)"), fs.Uint64("amount", 0, "fee to escrow"), fs.Uint64("agent-id", 0, "the worker's agentId (optional)")
		req := fs.String("request", "", "hash of the request the escrow pays for (hex, docs/ledger.md RequestHash)")
		commit := fs.String("audit-commit", "", "SHA-256 of a 32-byte secret to reveal with reveal-audit (hex, optional)")
		price := fs.Uint64("price-per-token", 0, "make amount a maximum: the receipt costs its tokens at this price and the rest returns at publication (x402 upto; optional)")
		return func(chain string) (ledger.Msg, error) {
			a, err1 := ledger.ParseAddress(*w)
			h, err2 := ledger.ParseHash(*id)
			r, err3 := ledger.ParseHash(*req)
			var c ledger.Hash
			var err4 error
			if *commit != "" {
				c, err4 = ledger.ParseHash(*commit)
			}
			return &ledger.MsgOpenEscrow{Worker: a, ModelID: h, Fee: *amt, Request: r, AuditCommit: c, AgentID: *agent, PricePerToken: *price},
				errors.Join(flagErr("worker", err1), flagErr("model-id", err2), flagErr("request", err3), flagErr("audit-commit", err4))
		}
	},
	"publish-receipt": func(fs *flag.FlagSet) func(chain string) (ledger.Msg, error) {
		esc, file := fs.String("escrow", "", "escrow id (hex)"), fs.String("receipt", "", "receipt file")
		steps := fs.Uint64("request-steps", 0, "the steps the escrow's request asked for, when the receipt ended early (optional)")
		return func(chain string) (ledger.Msg, error) {
			h, err := ledger.ParseHash(*esc)
			b, rerr := readArg("receipt", *file)
			return &ledger.MsgPublishReceipt{EscrowID: h, Receipt: b, RequestSteps: *steps}, errors.Join(flagErr("escrow", err), rerr)
		}
	},
	"post-openings": func(fs *flag.FlagSet) func(chain string) (ledger.Msg, error) {
		id, file := fs.String("receipt-id", "", "receipt id (hex)"), fs.String("openings", "", "openings file")
		return func(chain string) (ledger.Msg, error) {
			h, err := ledger.ParseHash(*id)
			b, rerr := readArg("openings", *file)
			return &ledger.MsgPostOpenings{ReceiptID: h, Openings: b}, errors.Join(flagErr("receipt-id", err), rerr)
		}
	},
	"open-dispute": func(fs *flag.FlagSet) func(chain string) (ledger.Msg, error) {
		id, file := fs.String("receipt-id", "", "receipt id (hex)"), fs.String("commitment", "", "the challenger's commitment: its 32-byte trace root, raw or as 64 hex digits")
		return func(chain string) (ledger.Msg, error) {
			h, err := ledger.ParseHash(*id)
			b, rerr := readArg("commitment", *file)
			if rerr == nil {
				if root, herr := ledger.ParseHash(strings.TrimSpace(string(b))); herr == nil {
					b = root[:]
				}
			}
			return &ledger.MsgOpenDispute{ReceiptID: h, Commitment: b}, errors.Join(flagErr("receipt-id", err), rerr)
		}
	},
	"reveal-audit": func(fs *flag.FlagSet) func(chain string) (ledger.Msg, error) {
		id, secret := fs.String("receipt-id", "", "receipt id (hex)"), fs.String("secret", "", "the 32-byte audit secret the escrow committed to (64 hex digits)")
		return func(chain string) (ledger.Msg, error) {
			h, err := ledger.ParseHash(*id)
			s, serr := ledger.ParseHash(*secret)
			return &ledger.MsgRevealAudit{ReceiptID: h, Secret: s[:]}, errors.Join(flagErr("receipt-id", err), flagErr("secret", serr))
		}
	},
	"dispute-move": func(fs *flag.FlagSet) func(chain string) (ledger.Msg, error) {
		id, file := fs.String("dispute-id", "", "dispute id (hex)"), fs.String("message", "", "bisection message file")
		return func(chain string) (ledger.Msg, error) {
			h, err := ledger.ParseHash(*id)
			b, rerr := readArg("message", *file)
			return &ledger.MsgDisputeMove{DisputeID: h, Message: b}, errors.Join(flagErr("dispute-id", err), rerr)
		}
	},
}

func flagErr(name string, err error) error {
	if err != nil {
		return fmt.Errorf("--%s: %w", name, err)
	}
	return nil
}

func readArg(name, path string) ([]byte, error) {
	if path == "" {
		return nil, fmt.Errorf("--%s: a file is required", name)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--%s: %w", name, err)
	}
	return b, nil
}

// metaFlag collects repeated --meta KEY=VALUE.
type metaFlag []ledger.MetadataEntry

func (m *metaFlag) String() string { return fmt.Sprint(len(*m), " entries") }
func (m *metaFlag) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("want KEY=VALUE, got %q", s)
	}
	*m = append(*m, ledger.MetadataEntry{MetadataKey: k, MetadataValue: []byte(v)})
	return nil
}

func txKindNames() string {
	names := make([]string, 0, len(txKinds))
	for k := range txKinds {
		names = append(names, k)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// txUsage prints tx's flags and every kind with its flags.
func txUsage(fs *flag.FlagSet) {
	w := fs.Output()
	fmt.Fprintln(w, "Usage: verdict tx [--node ADDR] (--key FILE | --validator-home DIR) [--fee N] [--max-tx-fee N] [--chain-id ID] [--nonce N] [--async] KIND [KIND FLAGS]")
	fs.PrintDefaults()
	fmt.Fprintln(w, "\nKinds (`verdict tx KIND -h` for one):")
	names := make([]string, 0, len(txKinds))
	for k := range txKinds {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		kfs := flag.NewFlagSet(k, flag.ContinueOnError)
		txKinds[k](kfs)
		var flags []string
		kfs.VisitAll(func(f *flag.Flag) {
			name, _ := flag.UnquoteUsage(f)
			if name == "" {
				flags = append(flags, "--"+f.Name)
			} else {
				flags = append(flags, "--"+f.Name+" "+strings.ToUpper(name))
			}
		})
		fmt.Fprintf(w, "  %-19s %s\n", k, strings.Join(flags, " "))
	}
}

// runTx implements `verdict tx [--node ADDR] --key FILE [--fee N] KIND [flags]`.
func runTx(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("tx", stderr)
	nodeAddr := fs.String("node", "tcp://127.0.0.1:26657", "node RPC address")
	var lf ledgerFlags
	lf.register(fs, "")
	keyFile := fs.String("key", "", "signing key file (verdict keys new)")
	valHome := fs.String("validator-home", "", "sign with the validator key of this node home instead of --key")
	fee := fs.Uint64("fee", 1, "transaction fee")
	nonce := fs.Int64("nonce", -1, "nonce (default: the account's next nonce)")
	async := fs.Bool("async", false, "return once the mempool accepts the transaction, without waiting for a block")
	fs.Usage = func() { txUsage(fs) }
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return fmt.Errorf("tx: usage: verdict tx --key FILE [--node ADDR] KIND [flags]; kinds: %s", txKindNames())
	}
	kind := fs.Arg(0)
	mk, ok := txKinds[kind]
	if !ok {
		return fmt.Errorf("tx: unknown kind %q; kinds: %s", kind, txKindNames())
	}
	kfs := newFlagSet("tx "+kind, stderr)
	build := mk(kfs)
	if err := parseFlags(kfs, fs.Args()[1:]); err != nil {
		return err
	}
	if kfs.NArg() != 0 {
		return fmt.Errorf("tx %s: unexpected argument %q", kind, kfs.Arg(0))
	}
	var priv ed25519.PrivateKey
	switch {
	case *keyFile != "" && *valHome != "":
		return fmt.Errorf("tx %s: give --key or --validator-home, not both", kind)
	case *keyFile != "":
		k, err := keys.Load(*keyFile)
		if err != nil {
			return fmt.Errorf("tx %s: %w", kind, err)
		}
		priv = k.Private
	case *valHome != "":
		k, err := node.ValidatorKey(*valHome)
		if err != nil {
			return fmt.Errorf("tx %s: %w", kind, err)
		}
		priv = k
	default:
		return fmt.Errorf("tx %s: --key FILE (or --validator-home DIR) is required", kind)
	}
	c, err := lf.dial(*nodeAddr)
	if err != nil {
		return fmt.Errorf("tx %s: %w", kind, err)
	}
	chain, err := c.ChainID(ctx)
	if err != nil {
		return fmt.Errorf("tx %s: %w", kind, err)
	}
	m, err := build(chain)
	if err != nil {
		return fmt.Errorf("tx %s: %w", kind, err)
	}
	tx, err := c.Sign(ctx, priv, m, *fee, *nonce)
	if err != nil {
		return fmt.Errorf("tx %s: %w", kind, err)
	}
	if *async {
		h, err := c.BroadcastSync(ctx, tx)
		if err != nil {
			return fmt.Errorf("tx %s: %w", kind, err)
		}
		fmt.Fprintf(stdout, "{\"hash\":%q}\n", h)
		return nil
	}
	r, err := c.BroadcastCommit(ctx, tx)
	if err != nil {
		return fmt.Errorf("tx %s: %w", kind, err)
	}
	b, _ := json.MarshalIndent(r, "", "  ")
	fmt.Fprintf(stdout, "%s\n", b)
	if r.Code != 0 {
		return fmt.Errorf("tx %s: failed in block %d: %s", kind, r.Height, r.Log)
	}
	return nil
}
