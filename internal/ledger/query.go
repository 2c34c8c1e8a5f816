package ledger

import (
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"strconv"
	"strings"
)

// Query answers a read of the committed state. Paths (ids in hex or
// decimal as in the transactions):
//
//	chain | params | totals | validators              (validators: the sorted validator list)
//	account/ADDR | stake/ADDR | validator/ADDR       (validator: zero values for a non-validator)
//	model/MODELID
//	agent/AGENTID | agent/AGENTID/metadata/KEY      (Identity: tokenURI/owner/wallet, getMetadata)
//	feedback/AGENTID/CLIENT/INDEX                    (readFeedback)
//	lastIndex/AGENTID/CLIENT                         (getLastIndex)
//	responseCount/AGENTID/CLIENT/INDEX               (getResponseCount)
//	clients/AGENTID                                  (getClients)
//	summary                 data: SummaryRequest     (getSummary)
//	validation/REQUESTHASH                           (getValidationStatus)
//	agentValidations/AGENTID | validatorRequests/ADDR
//	validationSummary       data: ValidationSummaryRequest (getSummary of the Validation registry)
//	escrow/ID | receipt/ID | receiptData/ID | audit/RECEIPTID | dispute/ID
//
// The answer is JSON. A missing record is an error wrapping ErrNotFound;
// a malformed path or argument wraps ErrInvalid.
//
// Query reads the latest state the ledger applied, including a block
// finalized but not yet committed; QueryCommitted reads the committed one.
func (l *Ledger) Query(path string, data []byte) ([]byte, error) {
	return QueryState(l.store, path, data)
}

// QueryCommitted is Query against the state as of the last commit (the
// store's last TakeDirty), which is what a node answers: a block that has
// been finalized but not committed may still be replayed differently after
// a crash, so it is not shown.
func (l *Ledger) QueryCommitted(path string, data []byte) ([]byte, error) {
	return QueryState(l.store.Committed(), path, data)
}

// QueryState answers a Query path from st, which it only reads (Get): a
// node answers queries from its committed database without the
// consensus lock.
func QueryState(st Store, path string, data []byte) ([]byte, error) {
	parts := strings.Split(path, "/")
	raw := func(key string) ([]byte, error) {
		b, ok := st.Get(key)
		if !ok {
			return nil, fmt.Errorf("query %q: %w", path, ErrNotFound)
		}
		return b, nil
	}
	bad := func(err error) ([]byte, error) { return nil, fmt.Errorf("query %q: %w: %v", path, ErrInvalid, err) }
	n := len(parts)
	switch {
	case n == 1 && parts[0] == "chain":
		return raw(keyChain)
	case n == 1 && parts[0] == "params":
		return raw(keyParams)
	case n == 1 && parts[0] == "totals":
		return raw(keyTotals)
	case n == 1 && parts[0] == "validators":
		return raw(keyValidators)
	case n == 2 && (parts[0] == "account" || parts[0] == "stake" || parts[0] == "validatorRequests" || parts[0] == "validator"):
		a, err := ParseAddress(parts[1])
		if err != nil {
			return bad(err)
		}
		switch parts[0] {
		case "account":
			b, ok := st.Get(keyAccount(a))
			if !ok {
				return json.Marshal(Account{})
			}
			return b, nil
		case "stake":
			b, ok := st.Get(keyStake(a))
			if !ok {
				return json.Marshal(Stake{})
			}
			return b, nil
		case "validator":
			b, ok := st.Get(keyValidator(a))
			if !ok {
				return json.Marshal(Validator{})
			}
			return b, nil
		default:
			return page(st, keyValidatorRequests(a), data, false)
		}
	case n == 2 && parts[0] == "model":
		h, err := ParseHash(parts[1])
		if err != nil {
			return bad(err)
		}
		return raw(keyModel(h))
	case (n == 2 || n == 4) && parts[0] == "agent":
		id, err := strconv.ParseUint(parts[1], 10, 64)
		if err != nil {
			return bad(err)
		}
		if n == 2 {
			return raw(keyAgent(id))
		}
		if parts[2] != "metadata" {
			return bad(fmt.Errorf("unknown agent field %q", parts[2]))
		}
		if parts[3] == reservedMetadataKey {
			var a Agent
			if !get(st, keyAgent(id), &a) {
				return nil, fmt.Errorf("query %q: %w", path, ErrNotFound)
			}
			return json.Marshal(a.AgentWallet[:])
		}
		v, err := raw(keyAgentMeta(id, parts[3]))
		if err != nil {
			return nil, err
		}
		return json.Marshal(v)
	case n == 4 && parts[0] == "feedback":
		id, err1 := strconv.ParseUint(parts[1], 10, 64)
		c, err2 := ParseAddress(parts[2])
		idx, err3 := strconv.ParseUint(parts[3], 10, 64)
		if err := firstErr(err1, err2, err3); err != nil {
			return bad(err)
		}
		return raw(keyFeedback(id, c, idx))
	case n == 4 && parts[0] == "responseCount":
		id, err1 := strconv.ParseUint(parts[1], 10, 64)
		c, err2 := ParseAddress(parts[2])
		idx, err3 := strconv.ParseUint(parts[3], 10, 64)
		if err := firstErr(err1, err2, err3); err != nil {
			return bad(err)
		}
		b, ok := st.Get(keyResponseCount(id, c, idx))
		if !ok {
			return []byte("0"), nil
		}
		return b, nil
	case n == 3 && parts[0] == "lastIndex":
		id, err1 := strconv.ParseUint(parts[1], 10, 64)
		c, err2 := ParseAddress(parts[2])
		if err := firstErr(err1, err2); err != nil {
			return bad(err)
		}
		b, ok := st.Get(keyFeedbackLast(id, c))
		if !ok {
			return []byte("0"), nil
		}
		return b, nil
	case n == 2 && (parts[0] == "clients" || parts[0] == "agentValidations"):
		id, err := strconv.ParseUint(parts[1], 10, 64)
		if err != nil {
			return bad(err)
		}
		if parts[0] == "agentValidations" {
			return page(st, keyAgentValidations(id), data, false)
		}
		return page(st, keyFeedbackClients(id), data, true)
	case n == 1 && parts[0] == "summary":
		var req SummaryRequest
		if err := strictJSON(data, &req); err != nil {
			return bad(err)
		}
		s, err := summary(st, req)
		if err != nil {
			return bad(err)
		}
		return json.Marshal(s)
	case n == 1 && parts[0] == "validationSummary":
		var req ValidationSummaryRequest
		if err := strictJSON(data, &req); err != nil {
			return bad(err)
		}
		s, err := validationSummary(st, req)
		if err != nil {
			return bad(err)
		}
		return json.Marshal(s)
	case n == 2:
		h, err := ParseHash(parts[1])
		if err != nil {
			return bad(err)
		}
		switch parts[0] {
		case "validation":
			return raw(keyValidation(h))
		case "escrow":
			return raw(keyEscrow(h))
		case "receipt":
			return raw(keyReceipt(h))
		case "receiptData":
			return raw(keyReceiptData(h))
		case "audit":
			return raw(keyAudit(h))
		case "dispute":
			return raw(keyDispute(h))
		}
	}
	return nil, fmt.Errorf("query %q: %w: unknown path", path, ErrInvalid)
}

// PageRequest is the optional data of a list query: items from Offset,
// at most Limit of them (0 or more than MaxPage: MaxPage).
type PageRequest struct {
	Offset uint64 `json:"offset"`
	Limit  uint64 `json:"limit"`
}

// MaxPage is the most items one list query returns.
const MaxPage = 1000

// maxSummaryItems bounds the entries a summary query reads.
const maxSummaryItems = 10000

// page answers a list query: a JSON array of the items (addresses or
// hashes) of one page.
func page(st Store, key string, data []byte, addresses bool) ([]byte, error) {
	var req PageRequest
	if len(data) > 0 {
		if err := strictJSON(data, &req); err != nil {
			return nil, fmt.Errorf("query %s: %w: %v", key, ErrInvalid, err)
		}
	}
	if req.Limit == 0 || req.Limit > MaxPage {
		req.Limit = MaxPage
	}
	items, _ := listRange(st, key, req.Offset, req.Limit)
	if addresses {
		out := make([]Address, len(items))
		for i, it := range items {
			out[i] = it
		}
		return json.Marshal(out)
	}
	out := make([]Hash, len(items))
	for i, it := range items {
		out[i] = it
	}
	return json.Marshal(out)
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

func strictJSON(b []byte, v any) error {
	d := json.NewDecoder(strings.NewReader(string(b)))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return fmt.Errorf("request data: %v", err)
	}
	if _, err := d.Token(); err != io.EOF { // d.More is false before a '}' or ']'
		return fmt.Errorf("request data: trailing data")
	}
	return nil
}

// SummaryRequest selects feedback for ERC-8004 getSummary. Empty
// ClientAddresses means every client; an empty tag matches any tag.
type SummaryRequest struct {
	AgentID         uint64    `json:"agentId"`
	ClientAddresses []Address `json:"clientAddresses"`
	Tag1            string    `json:"tag1"`
	Tag2            string    `json:"tag2"`
}

// Summary is the answer of getSummary: the number of matching unrevoked
// feedback entries and their mean. The mean is computed exactly with every
// value scaled to 18 decimals, truncated toward zero, and expressed with
// SummaryValueDecimals, the largest valueDecimals among the entries.
type Summary struct {
	Count                uint64 `json:"count"`
	SummaryValue         Int128 `json:"summaryValue"`
	SummaryValueDecimals uint8  `json:"summaryValueDecimals"`
}

// Summary computes ERC-8004 getSummary over the committed state.
func (l *Ledger) Summary(req SummaryRequest) (Summary, error) { return summary(l.store, req) }

func summary(st Store, req SummaryRequest) (Summary, error) {
	clients := req.ClientAddresses
	if len(clients) == 0 {
		items, n := listRange(st, keyFeedbackClients(req.AgentID), 0, 1025)
		if n > 1024 {
			return Summary{}, fmt.Errorf("agent %d has %d clients, more than 1024: name the clients", req.AgentID, n)
		}
		for _, it := range items {
			clients = append(clients, it)
		}
	}
	if len(clients) > 1024 {
		return Summary{}, fmt.Errorf("%d client addresses, limit 1024", len(clients))
	}
	var entries uint64
	sum := new(big.Int)
	var count uint64
	var maxDec uint8
	for _, c := range clients {
		var last uint64
		get(st, keyFeedbackLast(req.AgentID, c), &last)
		if entries += last; entries > maxSummaryItems {
			return Summary{}, fmt.Errorf("more than %d feedback entries: name fewer clients", maxSummaryItems)
		}
		for i := uint64(1); i <= last; i++ {
			var f Feedback
			if !get(st, keyFeedback(req.AgentID, c, i), &f) || f.IsRevoked {
				continue
			}
			if (req.Tag1 != "" && f.Tag1 != req.Tag1) || (req.Tag2 != "" && f.Tag2 != req.Tag2) {
				continue
			}
			v, err := f.Value.Big()
			if err != nil {
				continue // values are validated on entry
			}
			v.Mul(v, pow10(18-int(f.ValueDecimals)))
			sum.Add(sum, v)
			count++
			maxDec = max(maxDec, f.ValueDecimals)
		}
	}
	if count == 0 {
		return Summary{SummaryValue: "0"}, nil
	}
	mean := new(big.Int).Quo(sum, new(big.Int).SetUint64(count))
	mean.Quo(mean, pow10(18-int(maxDec)))
	return Summary{Count: count, SummaryValue: Int128(mean.String()), SummaryValueDecimals: maxDec}, nil
}

func pow10(n int) *big.Int { return new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(n)), nil) }

// ValidationSummaryRequest selects validations of an agent; empty
// ValidatorAddresses means every validator, an empty Tag any tag.
type ValidationSummaryRequest struct {
	AgentID            uint64    `json:"agentId"`
	ValidatorAddresses []Address `json:"validatorAddresses"`
	Tag                string    `json:"tag"`
}

// ValidationSummary is the count of matching responses and their mean
// response (integer division).
type ValidationSummary struct {
	Count       uint64 `json:"count"`
	AvgResponse uint8  `json:"avgResponse"`
}

// ValidationSummary computes the Validation registry's getSummary; an
// agent with more than maxSummaryItems validation requests is refused.
func (l *Ledger) ValidationSummary(req ValidationSummaryRequest) (ValidationSummary, error) {
	return validationSummary(l.store, req)
}

func validationSummary(st Store, req ValidationSummaryRequest) (ValidationSummary, error) {
	// As summary's clients: up to 10,000 requests compared with an
	// unbounded list of addresses was seconds of a node's CPU a query.
	if len(req.ValidatorAddresses) > 1024 {
		return ValidationSummary{}, fmt.Errorf("%d validator addresses, limit 1024", len(req.ValidatorAddresses))
	}
	named := make(map[Address]bool, len(req.ValidatorAddresses))
	for _, a := range req.ValidatorAddresses {
		named[a] = true
	}
	hs, n := listRange(st, keyAgentValidations(req.AgentID), 0, maxSummaryItems)
	if n > maxSummaryItems {
		return ValidationSummary{}, fmt.Errorf("agent %d has %d validation requests, more than %d", req.AgentID, n, maxSummaryItems)
	}
	var count, sum uint64
	for _, h := range hs {
		h := Hash(h)
		var v Validation
		if !get(st, keyValidation(h), &v) || !v.HasResponse || (req.Tag != "" && v.Tag != req.Tag) {
			continue
		}
		if len(named) > 0 && !named[v.ValidatorAddress] {
			continue
		}
		count++
		sum += uint64(v.Response)
	}
	if count == 0 {
		return ValidationSummary{}, nil
	}
	return ValidationSummary{Count: count, AvgResponse: uint8(sum / count)}, nil
}
