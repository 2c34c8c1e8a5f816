package ledger

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"reflect"
)

// MaxTxBytes caps the size of an encoded transaction (audit openings are the
// largest payload).
const MaxTxBytes = 6 << 20

// txDomain prefixes the bytes every transaction signature covers.
const txDomain = "verdict/tx/v1\n"

// Tx is a signed transaction. Its canonical encoding is the JSON
// specified in docs/ledger.md ("Transaction format": fields in
// declaration order, no spaces, fixed string escaping, base64 byte
// strings, hex addresses and hashes, decimal integers); DecodeTx accepts
// only that encoding, so every transaction has exactly one byte form. The signature covers txDomain followed by the canonical
// encoding of the transaction with Sig empty; ChainID binds it to one chain.
type Tx struct {
	ChainID string  `json:"chainId"`
	Signer  Address `json:"signer"`
	Nonce   uint64  `json:"nonce"`
	Fee     uint64  `json:"fee"`
	Msg     Msg     `json:"msg"`
	Sig     []byte  `json:"sig,omitempty"`
}

// Msg is one message of a transaction: exactly one of the *MsgX types
// below, each with its own stateless checks (validate) and its handler
// (handle, in handlers.go). The interface is sealed (its unexported
// methods), so a Tx holds exactly one message by construction. On the wire
// a message is the object {"<kind>": {...}} (see msgWire).
type Msg interface {
	// Kind is the message's JSON name in the transaction's msg object.
	Kind() string
	validate() error
	handle(e *exec) error
	isMsg()
}

// msgWire is the wire form of Msg: an object with one field, named by the
// message's kind. Its fields are the message types, in a fixed order;
// exactly one is set in a valid transaction.
type msgWire struct {
	Send               *MsgSend               `json:"send,omitempty"`
	RegisterModel      *MsgRegisterModel      `json:"registerModel,omitempty"`
	RegisterAgent      *MsgRegisterAgent      `json:"register,omitempty"`
	SetAgentURI        *MsgSetAgentURI        `json:"setAgentURI,omitempty"`
	SetMetadata        *MsgSetMetadata        `json:"setMetadata,omitempty"`
	SetAgentWallet     *MsgSetAgentWallet     `json:"setAgentWallet,omitempty"`
	TransferFrom       *MsgTransferFrom       `json:"transferFrom,omitempty"`
	GiveFeedback       *MsgGiveFeedback       `json:"giveFeedback,omitempty"`
	RevokeFeedback     *MsgRevokeFeedback     `json:"revokeFeedback,omitempty"`
	AppendResponse     *MsgAppendResponse     `json:"appendResponse,omitempty"`
	ValidationRequest  *MsgValidationRequest  `json:"validationRequest,omitempty"`
	ValidationResponse *MsgValidationResponse `json:"validationResponse,omitempty"`
	Bond               *MsgBond               `json:"bond,omitempty"`
	Unbond             *MsgUnbond             `json:"unbond,omitempty"`
	Unjail             *MsgUnjail             `json:"unjail,omitempty"`
	SetValidator       *MsgSetValidator       `json:"setValidator,omitempty"`
	OpenEscrow         *MsgOpenEscrow         `json:"openEscrow,omitempty"`
	PublishReceipt     *MsgPublishReceipt     `json:"publishReceipt,omitempty"`
	PostOpenings       *MsgPostOpenings       `json:"postOpenings,omitempty"`
	OpenDispute        *MsgOpenDispute        `json:"openDispute,omitempty"`
	DisputeMove        *MsgDisputeMove        `json:"disputeMove,omitempty"`
	AttestModel        *MsgAttestModel        `json:"attestModel,omitempty"`
	RevealAudit        *MsgRevealAudit        `json:"revealAudit,omitempty"`
}

// MsgSend transfers Amount from the signer to To.
type MsgSend struct {
	To     Address `json:"to"`
	Amount uint64  `json:"amount"`
}

// MsgRegisterModel registers a model id (the proofs layer's commitment to
// the weights and tokenizer) under a name and determinism spec version.
type MsgRegisterModel struct {
	ModelID     Hash   `json:"modelId"`
	Name        string `json:"name"`
	SpecVersion uint32 `json:"specVersion"`
}

// MetadataEntry is one ERC-8004 metadata key/value pair.
type MetadataEntry struct {
	MetadataKey   string `json:"metadataKey"`
	MetadataValue []byte `json:"metadataValue"`
}

// MsgRegisterAgent is ERC-8004 IdentityRegistry.register(agentURI, metadata):
// it mints the next agentId to the signer.
type MsgRegisterAgent struct {
	AgentURI string          `json:"agentURI"`
	Metadata []MetadataEntry `json:"metadata,omitempty"`
}

// MsgSetAgentURI is ERC-8004 setAgentURI; only the owner may call it.
type MsgSetAgentURI struct {
	AgentID  uint64 `json:"agentId"`
	AgentURI string `json:"agentURI"`
}

// MsgSetMetadata is ERC-8004 setMetadata; only the owner may call it, and the
// reserved key "agentWallet" cannot be set this way.
type MsgSetMetadata struct {
	AgentID       uint64 `json:"agentId"`
	MetadataKey   string `json:"metadataKey"`
	MetadataValue []byte `json:"metadataValue"`
}

// MsgSetAgentWallet is ERC-8004 setAgentWallet: the owner sets a new wallet,
// which must sign AgentWalletMessage(chainID, agentId, newWallet, deadline);
// the deadline is a unix time in seconds compared with the block time.
type MsgSetAgentWallet struct {
	AgentID   uint64  `json:"agentId"`
	NewWallet Address `json:"newWallet"`
	Deadline  int64   `json:"deadline"`
	Signature []byte  `json:"signature"`
}

// MsgTransferFrom is the Identity registry's ERC-721 transferFrom: the
// owner From (the signer) gives agent AgentID to To. The agentWallet is
// cleared (zero address) until the new owner sets one with setAgentWallet.
type MsgTransferFrom struct {
	From    Address `json:"from"`
	To      Address `json:"to"`
	AgentID uint64  `json:"agentId"`
}

// MsgGiveFeedback is ERC-8004 ReputationRegistry.giveFeedback.
type MsgGiveFeedback struct {
	AgentID       uint64 `json:"agentId"`
	Value         Int128 `json:"value"`
	ValueDecimals uint8  `json:"valueDecimals"`
	Tag1          string `json:"tag1"`
	Tag2          string `json:"tag2"`
	Endpoint      string `json:"endpoint"`
	FeedbackURI   string `json:"feedbackURI"`
	FeedbackHash  Hash   `json:"feedbackHash"`
}

// MsgRevokeFeedback is ERC-8004 revokeFeedback(agentId, feedbackIndex) by the
// client that gave it.
type MsgRevokeFeedback struct {
	AgentID       uint64 `json:"agentId"`
	FeedbackIndex uint64 `json:"feedbackIndex"`
}

// MsgAppendResponse is ERC-8004 appendResponse: anyone (typically the
// agent, or an auditor) attaches a response to a feedback entry.
type MsgAppendResponse struct {
	AgentID       uint64  `json:"agentId"`
	ClientAddress Address `json:"clientAddress"`
	FeedbackIndex uint64  `json:"feedbackIndex"`
	ResponseURI   string  `json:"responseURI"`
	ResponseHash  Hash    `json:"responseHash"`
}

// MsgValidationRequest is ERC-8004 ValidationRegistry.validationRequest; the
// signer must own the agent.
type MsgValidationRequest struct {
	ValidatorAddress Address `json:"validatorAddress"`
	AgentID          uint64  `json:"agentId"`
	RequestURI       string  `json:"requestURI"`
	RequestHash      Hash    `json:"requestHash"`
}

// MsgValidationResponse is ERC-8004 validationResponse: only the named
// validator may respond, with 0..100; it may respond again.
type MsgValidationResponse struct {
	RequestHash  Hash   `json:"requestHash"`
	Response     uint8  `json:"response"`
	ResponseURI  string `json:"responseURI"`
	ResponseHash Hash   `json:"responseHash"`
	Tag          string `json:"tag"`
}

// MsgBond moves Amount from the signer's balance into its stake.
type MsgBond struct {
	Amount uint64 `json:"amount"`
}

// MsgUnbond starts unbonding Amount of stake; it returns to the balance
// after Params.UnbondingBlocks blocks (and stays slashable until then).
type MsgUnbond struct {
	Amount uint64 `json:"amount"`
}

// MsgUnjail lifts the signer's jailing once its jail term has passed.
type MsgUnjail struct{}

// MsgSetValidator makes the signer's account a consensus validator (its
// account key is its consensus key) or withdraws it. Its voting power is
// its bonded stake divided by Params.PowerUnit, and zero while jailed.
type MsgSetValidator struct {
	Active bool `json:"active"`
}

// MsgOpenEscrow locks Fee from the requester (the signer) for one inference
// by Worker with model ModelID. Request is the request's hash
// (RequestHash: model, nonce, sampling and prompt); only a receipt of that
// request can claim the escrow. AgentID (optional, 0 for none) names the
// worker's ERC-8004 agent, which gets reputation when the receipt is final.
type MsgOpenEscrow struct {
	Worker  Address `json:"worker"`
	ModelID Hash    `json:"modelId"`
	Fee     uint64  `json:"fee"`
	Request Hash    `json:"request"`
	// AuditCommit (optional) is SHA-256 of a 32-byte secret the requester
	// reveals (MsgRevealAudit) after the receipt is published: the audit
	// of the receipt is then decided by the secret, which neither the
	// worker nor any block proposer knows in time to bias it.
	AuditCommit Hash   `json:"auditCommit,omitzero"`
	AgentID     uint64 `json:"agentId,omitempty"`
	// PricePerToken (optional) makes Fee a maximum (x402 "upto"): the
	// receipt published against the escrow costs PricePerToken x its
	// prompt and output tokens, at most Fee, and the rest returns to the
	// requester when it is published.
	PricePerToken uint64 `json:"pricePerToken,omitempty"`
}

// MsgPublishReceipt publishes the canonical bytes of a signed receipt
// against an escrow; the signer must be the escrow's worker.
type MsgPublishReceipt struct {
	EscrowID Hash   `json:"escrowId"`
	Receipt  []byte `json:"receipt"`
	// RequestSteps (optional) is the step count the escrow's request
	// asked for, when the receipt's is lower (its generation ended early:
	// a stop string, or a requester who hung up): the escrow's request is
	// checked against the receipt's RequestHash at RequestSteps.
	RequestSteps uint64 `json:"requestSteps,omitempty"`
}

// MsgPostOpenings answers an audit with the opened cells.
type MsgPostOpenings struct {
	ReceiptID Hash   `json:"receiptId"`
	Openings  []byte `json:"openings"`
}

// MsgOpenDispute challenges a published receipt within its challenge
// window; Commitment is the challenger's own commitment (its trace).
type MsgOpenDispute struct {
	ReceiptID  Hash   `json:"receiptId"`
	Commitment []byte `json:"commitment"`
}

// MsgDisputeMove carries one bisection message from a party.
type MsgDisputeMove struct {
	DisputeID Hash   `json:"disputeId"`
	Message   []byte `json:"message"`
}

// MsgAttestModel is a validator's statement that it holds model ModelID
// and can run it inside blocks (audit openings, disputes). The signer must
// be a validator with voting power; the model becomes active once the
// attesters hold Params.ModelQuorumBps of the voting power.
type MsgAttestModel struct {
	ModelID Hash `json:"modelId"`
}

// MsgRevealAudit reveals the secret an escrow's AuditCommit committed to,
// for the receipt published against it; the escrow's requester sends it
// within Params.RevealWindow blocks of the publication.
type MsgRevealAudit struct {
	ReceiptID Hash   `json:"receiptId"`
	Secret    []byte `json:"secret"`
}

// SignBytes returns the bytes the signature covers.
func (tx *Tx) SignBytes() []byte {
	c := *tx
	c.Sig = nil
	return append([]byte(txDomain), canonical(c.wire())...)
}

// canonical is the transaction encoding of docs/ledger.md ("Transaction
// format"): encoding/json's output without its HTML escaping (so '<', '>'
// and '&' are written as themselves, as any JSON encoder writes them).
func canonical(v any) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		// Only reachable with a corrupt in-memory value (all fields are
		// plain data); encoding a Tx cannot fail.
		panic("ledger: encoding transaction: " + err.Error())
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

// Sign sets Signer and Sig from priv.
func (tx *Tx) Sign(priv ed25519.PrivateKey) {
	copy(tx.Signer[:], priv.Public().(ed25519.PublicKey))
	tx.Sig = ed25519.Sign(priv, tx.SignBytes())
}

// Encode returns the canonical encoding.
func (tx *Tx) Encode() []byte { return canonical(tx.wire()) }

// DecodeTx parses a transaction, accepting only its canonical encoding with
// exactly one message, and checks its signature (not its chain id, nonce or
// fee, which depend on state).
func DecodeTx(b []byte) (*Tx, error) { return decodeTx(b, true) }

func decodeTx(b []byte, verify bool) (*Tx, error) {
	if len(b) > MaxTxBytes {
		return nil, fmt.Errorf("%w: %d bytes exceeds the limit of %d", ErrDecode, len(b), MaxTxBytes)
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	type Tx txWire // named as before in encoding/json's errors
	var w Tx
	if err := d.Decode(&w); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrDecode, err)
	}
	if _, err := d.Token(); err != io.EOF { // d.More is false before a '}' or ']'
		return nil, fmt.Errorf("%w: trailing data after the transaction", ErrDecode)
	}
	tx, err := (*txWire)(&w).tx()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrDecode, err)
	}
	if err := tx.Msg.validate(); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrDecode, tx.Msg.Kind(), err)
	}
	if !bytes.Equal(tx.Encode(), b) {
		return nil, fmt.Errorf("%w: not in canonical encoding", ErrDecode)
	}
	if len(tx.Sig) != ed25519.SignatureSize || verify && !ed25519.Verify(tx.Signer.PublicKey(), tx.SignBytes(), tx.Sig) {
		return nil, fmt.Errorf("%w: signature does not verify for signer %s", ErrSignature, tx.Signer)
	}
	return tx, nil
}

// AgentWalletMessage is what a new agent wallet signs to accept the role.
func AgentWalletMessage(chainID string, agentID uint64, newWallet Address, deadline int64) []byte {
	return fmt.Appendf(nil, "verdict/agent-wallet/v1\n%s\n%d\n%s\n%d", chainID, agentID, newWallet, deadline)
}

// Int128 is a signed 128-bit integer in canonical decimal form ("-12", "0").
type Int128 string

var (
	int128Max = new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 127), big.NewInt(1))
	int128Min = new(big.Int).Neg(new(big.Int).Lsh(big.NewInt(1), 127))
)

// Big parses v, checking canonical form and range.
func (v Int128) Big() (*big.Int, error) {
	n, ok := new(big.Int).SetString(string(v), 10)
	if !ok || n.String() != string(v) {
		return nil, fmt.Errorf("value %q is not a canonical decimal integer", string(v))
	}
	if n.Cmp(int128Max) > 0 || n.Cmp(int128Min) < 0 {
		return nil, fmt.Errorf("value %q is outside the int128 range", string(v))
	}
	return n, nil
}

// Field limits (bytes).
const (
	maxName     = 128
	maxURI      = 2048
	maxTag      = 64
	maxMetaKey  = 64
	maxMetaVal  = 4096
	maxMetaN    = 32
	maxReceipt  = 1 << 20
	maxOpenings = 5 << 20
	maxMessage  = 1 << 20 // a dispute's commitment
	// maxMove is a dispute move's message: an answer carries up to
	// audit.DisputePartBytes (2 MiB) of values with their proofs, about
	// 2.9 MB of JSON at the whole context of the known model shapes
	// (docs/ledger.md), and the game refuses at openDispute a dispute
	// whose answers would not fit a transaction (Models.DisputeSetup), so
	// the transaction's own bound is the message's.
	maxMove = MaxTxBytes
)

var errTooLong = errors.New("too long")

// looksLikeID reports whether s is 64 hex digits, of either case.
func looksLikeID(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

func checkLen(field string, s string, max int) error {
	if len(s) > max {
		return fmt.Errorf("%s is %d bytes, limit %d: %w", field, len(s), max, errTooLong)
	}
	return nil
}

// txWire is the wire form of Tx: the same fields, with Msg as msgWire.
type txWire struct {
	ChainID string  `json:"chainId"`
	Signer  Address `json:"signer"`
	Nonce   uint64  `json:"nonce"`
	Fee     uint64  `json:"fee"`
	Msg     msgWire `json:"msg"`
	Sig     []byte  `json:"sig,omitempty"`
}

var errNotOneMsg = errors.New("msg must hold exactly one message")

// wire returns tx's wire form; a nil Msg is the empty object.
func (tx *Tx) wire() *txWire {
	w := &txWire{ChainID: tx.ChainID, Signer: tx.Signer, Nonce: tx.Nonce, Fee: tx.Fee, Sig: tx.Sig}
	if tx.Msg != nil {
		v := reflect.ValueOf(&w.Msg).Elem()
		m := reflect.ValueOf(tx.Msg)
		for i := range v.NumField() {
			if f := v.Field(i); f.Type() == m.Type() {
				f.Set(m)
				return w
			}
		}
		panic(fmt.Sprintf("ledger: message type %T has no field in msgWire", tx.Msg))
	}
	return w
}

// tx returns the transaction w holds, or errNotOneMsg when its msg holds
// no message or more than one.
func (w *txWire) tx() (*Tx, error) {
	m, err := w.Msg.one()
	if err != nil {
		return nil, err
	}
	return &Tx{ChainID: w.ChainID, Signer: w.Signer, Nonce: w.Nonce, Fee: w.Fee, Msg: m, Sig: w.Sig}, nil
}

// one returns the message w holds, or errNotOneMsg.
func (w *msgWire) one() (Msg, error) {
	var found Msg
	v := reflect.ValueOf(w).Elem()
	for i := range v.NumField() {
		if f := v.Field(i); !f.IsNil() {
			if found != nil {
				return nil, errNotOneMsg
			}
			found = f.Interface().(Msg)
		}
	}
	if found == nil {
		return nil, errNotOneMsg
	}
	return found, nil
}

// MarshalJSON writes tx in its canonical encoding (Encode).
func (tx Tx) MarshalJSON() ([]byte, error) { return canonical(tx.wire()), nil }

// UnmarshalJSON reads a transaction's JSON (not only the canonical
// encoding: DecodeTx checks that); its msg must hold exactly one message.
func (tx *Tx) UnmarshalJSON(b []byte) error {
	var w txWire
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	t, err := w.tx()
	if err != nil {
		return err
	}
	*tx = *t
	return nil
}

// decodeMsg reads the JSON of one message, {"<kind>": {...}}.
func decodeMsg(b []byte) (Msg, error) {
	var w msgWire
	if err := json.Unmarshal(b, &w); err != nil {
		return nil, err
	}
	return w.one()
}

func (*MsgSend) isMsg()               {}
func (*MsgRegisterModel) isMsg()      {}
func (*MsgRegisterAgent) isMsg()      {}
func (*MsgSetAgentURI) isMsg()        {}
func (*MsgSetMetadata) isMsg()        {}
func (*MsgSetAgentWallet) isMsg()     {}
func (*MsgTransferFrom) isMsg()       {}
func (*MsgGiveFeedback) isMsg()       {}
func (*MsgRevokeFeedback) isMsg()     {}
func (*MsgAppendResponse) isMsg()     {}
func (*MsgValidationRequest) isMsg()  {}
func (*MsgValidationResponse) isMsg() {}
func (*MsgBond) isMsg()               {}
func (*MsgUnbond) isMsg()             {}
func (*MsgUnjail) isMsg()             {}
func (*MsgSetValidator) isMsg()       {}
func (*MsgOpenEscrow) isMsg()         {}
func (*MsgPublishReceipt) isMsg()     {}
func (*MsgPostOpenings) isMsg()       {}
func (*MsgOpenDispute) isMsg()        {}
func (*MsgDisputeMove) isMsg()        {}
func (*MsgAttestModel) isMsg()        {}
func (*MsgRevealAudit) isMsg()        {}

func (*MsgSend) Kind() string { return "send" }

func (m *MsgSend) validate() error {
	if m.Amount == 0 {
		return errors.New("amount must be positive")
	}
	return nil
}

func (*MsgRegisterModel) Kind() string { return "registerModel" }

func (m *MsgRegisterModel) validate() error {
	if m.ModelID.IsZero() {
		return errors.New("modelId must not be zero")
	}
	if m.Name == "" {
		return errors.New("name must not be empty")
	}
	if looksLikeID(m.Name) {
		// A caller names a model by its name or by its id (in either
		// case): a name spelling an id would take requests meant for it.
		return errors.New("name must not be 64 hex digits (a model id)")
	}
	return checkLen("name", m.Name, maxName)
}

func (*MsgRegisterAgent) Kind() string { return "register" }

func (m *MsgRegisterAgent) validate() error {
	if err := checkLen("agentURI", m.AgentURI, maxURI); err != nil {
		return err
	}
	if len(m.Metadata) > maxMetaN {
		return fmt.Errorf("%d metadata entries, limit %d", len(m.Metadata), maxMetaN)
	}
	for _, e := range m.Metadata {
		if err := checkMeta(e.MetadataKey, e.MetadataValue); err != nil {
			return err
		}
	}
	return nil
}

func (*MsgSetAgentURI) Kind() string { return "setAgentURI" }

func (m *MsgSetAgentURI) validate() error {
	return checkLen("agentURI", m.AgentURI, maxURI)
}

func (*MsgSetMetadata) Kind() string { return "setMetadata" }

func (m *MsgSetMetadata) validate() error {
	return checkMeta(m.MetadataKey, m.MetadataValue)
}

func (*MsgSetAgentWallet) Kind() string { return "setAgentWallet" }

func (m *MsgSetAgentWallet) validate() error {
	if len(m.Signature) != ed25519.SignatureSize {
		return fmt.Errorf("signature has %d bytes, want %d", len(m.Signature), ed25519.SignatureSize)
	}
	return nil
}

func (*MsgTransferFrom) Kind() string { return "transferFrom" }

func (m *MsgTransferFrom) validate() error {
	if m.To.IsZero() {
		return errors.New("transferFrom: to must not be the zero address")
	}
	return nil
}

func (*MsgGiveFeedback) Kind() string { return "giveFeedback" }

func (m *MsgGiveFeedback) validate() error {
	f := m
	if _, err := f.Value.Big(); err != nil {
		return err
	}
	if f.ValueDecimals > 18 {
		return fmt.Errorf("valueDecimals %d exceeds 18", f.ValueDecimals)
	}
	for _, c := range []struct {
		n, v string
		max  int
	}{{"tag1", f.Tag1, maxTag}, {"tag2", f.Tag2, maxTag}, {"endpoint", f.Endpoint, maxURI}, {"feedbackURI", f.FeedbackURI, maxURI}} {
		if err := checkLen(c.n, c.v, c.max); err != nil {
			return err
		}
	}
	return nil
}

func (*MsgRevokeFeedback) Kind() string { return "revokeFeedback" }

func (m *MsgRevokeFeedback) validate() error {
	if m.FeedbackIndex == 0 {
		return errors.New("feedbackIndex is 1-based")
	}
	return nil
}

func (*MsgAppendResponse) Kind() string { return "appendResponse" }

func (m *MsgAppendResponse) validate() error {
	if m.FeedbackIndex == 0 {
		return errors.New("feedbackIndex is 1-based")
	}
	return checkLen("responseURI", m.ResponseURI, maxURI)
}

func (*MsgValidationRequest) Kind() string { return "validationRequest" }

func (m *MsgValidationRequest) validate() error {
	if m.RequestHash.IsZero() {
		return errors.New("requestHash must not be zero")
	}
	return checkLen("requestURI", m.RequestURI, maxURI)
}

func (*MsgValidationResponse) Kind() string { return "validationResponse" }

func (m *MsgValidationResponse) validate() error {
	r := m
	if r.Response > 100 {
		return fmt.Errorf("response %d exceeds 100", r.Response)
	}
	if err := checkLen("responseURI", r.ResponseURI, maxURI); err != nil {
		return err
	}
	return checkLen("tag", r.Tag, maxTag)
}

func (*MsgBond) Kind() string { return "bond" }

func (m *MsgBond) validate() error {
	if m.Amount == 0 {
		return errors.New("amount must be positive")
	}
	return nil
}

func (*MsgUnbond) Kind() string { return "unbond" }

func (m *MsgUnbond) validate() error {
	if m.Amount == 0 {
		return errors.New("amount must be positive")
	}
	return nil
}

func (*MsgUnjail) Kind() string { return "unjail" }

func (m *MsgUnjail) validate() error {
	return nil
}

func (*MsgSetValidator) Kind() string { return "setValidator" }

func (m *MsgSetValidator) validate() error {
	return nil
}

func (*MsgOpenEscrow) Kind() string { return "openEscrow" }

func (m *MsgOpenEscrow) validate() error {
	if m.ModelID.IsZero() {
		return errors.New("modelId must not be zero")
	}
	if m.Request.IsZero() {
		return errors.New("request must not be zero (the hash of the request the escrow pays for)")
	}
	return nil
}

func (*MsgPublishReceipt) Kind() string { return "publishReceipt" }

func (m *MsgPublishReceipt) validate() error {
	if n := len(m.Receipt); n == 0 || n > maxReceipt {
		return fmt.Errorf("receipt is %d bytes, want 1..%d", n, maxReceipt)
	}
	return nil
}

func (*MsgPostOpenings) Kind() string { return "postOpenings" }

func (m *MsgPostOpenings) validate() error {
	if n := len(m.Openings); n == 0 || n > maxOpenings {
		return fmt.Errorf("openings are %d bytes, want 1..%d", n, maxOpenings)
	}
	return nil
}

func (*MsgOpenDispute) Kind() string { return "openDispute" }

func (m *MsgOpenDispute) validate() error {
	if n := len(m.Commitment); n == 0 || n > maxMessage {
		return fmt.Errorf("commitment is %d bytes, want 1..%d", n, maxMessage)
	}
	return nil
}

func (*MsgDisputeMove) Kind() string { return "disputeMove" }

func (m *MsgDisputeMove) validate() error {
	if n := len(m.Message); n == 0 || n > maxMove {
		return fmt.Errorf("message is %d bytes, want 1..%d", n, maxMove)
	}
	return nil
}

func (*MsgAttestModel) Kind() string { return "attestModel" }

func (m *MsgAttestModel) validate() error {
	if m.ModelID.IsZero() {
		return errors.New("modelId must not be zero")
	}
	return nil
}

func (*MsgRevealAudit) Kind() string { return "revealAudit" }

func (m *MsgRevealAudit) validate() error {
	if len(m.Secret) != 32 {
		return fmt.Errorf("secret has %d bytes, want 32", len(m.Secret))
	}
	return nil
}

func checkMeta(k string, v []byte) error {
	if k == "" {
		return errors.New("metadataKey must not be empty")
	}
	if err := checkLen("metadataKey", k, maxMetaKey); err != nil {
		return err
	}
	if len(v) > maxMetaVal {
		return fmt.Errorf("metadataValue is %d bytes, limit %d", len(v), maxMetaVal)
	}
	return nil
}
