package gateway

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/verdictnet/verdict/internal/ledger"
)

// FacilitatorPath is where the x402 facilitator endpoints are served
// (FacilitatorPath + "/verify", "/settle", "/supported"): the URL another
// x402 resource server gives its HTTPFacilitatorClient to settle on
// Verdict's ledger.
const FacilitatorPath = "/x402"

// VerifyRequest is the body of /verify and /settle (@x402/core's).
type VerifyRequest struct {
	X402Version         int                 `json:"x402Version"`
	PaymentPayload      json.RawMessage     `json:"paymentPayload"`
	PaymentRequirements PaymentRequirements `json:"paymentRequirements"`
}

// VerifyResponse is the answer of /verify.
type VerifyResponse struct {
	IsValid        bool   `json:"isValid"`
	InvalidReason  string `json:"invalidReason,omitempty"`
	InvalidMessage string `json:"invalidMessage,omitempty"`
	Payer          string `json:"payer,omitempty"`
}

// SupportedKind and SupportedResponse are the answer of /supported.
type SupportedKind struct {
	X402Version int    `json:"x402Version"`
	Scheme      string `json:"scheme"`
	Network     string `json:"network"`
}

// SupportedResponse lists what the facilitator settles. Signers is empty:
// the payer signs its own escrow; the facilitator only submits it.
type SupportedResponse struct {
	Kinds      []SupportedKind     `json:"kinds"`
	Extensions []string            `json:"extensions"`
	Signers    map[string][]string `json:"signers"`
}

func (s *Server) facilitatorRoutes() {
	s.handle("GET "+FacilitatorPath+"/supported", "x402_supported", s.supported)
	s.handle("POST "+FacilitatorPath+"/verify", "x402_verify", func(w http.ResponseWriter, r *http.Request) {
		tx, _, err := s.facilitatorVerify(r)
		if err != nil {
			var xe *x402Error
			if !errors.As(err, &xe) {
				writeError(w, backendError(err, ""))
				return
			}
			writeJSON(w, http.StatusOK, VerifyResponse{InvalidReason: string(xe.Reason), InvalidMessage: xe.Msg, Payer: payerOf(tx)})
			return
		}
		writeJSON(w, http.StatusOK, VerifyResponse{IsValid: true, Payer: tx.Signer.String()})
	})
	s.handle("POST "+FacilitatorPath+"/settle", "x402_settle", func(w http.ResponseWriter, r *http.Request) {
		tx, network, err := s.facilitatorVerify(r)
		if err == nil {
			res, serr := s.o.X402.submit(r.Context(), tx)
			if serr == nil {
				writeJSON(w, http.StatusOK, settled(tx, res, network))
				return
			}
			err = serr
		}
		var xe *x402Error
		if !errors.As(err, &xe) {
			writeError(w, backendError(err, ""))
			return
		}
		writeJSON(w, http.StatusOK, SettleResponse{ErrorReason: string(xe.Reason), Network: network, Payer: payerOf(tx)})
	})
}

func payerOf(tx *ledger.Tx) string {
	if tx == nil {
		return ""
	}
	return tx.Signer.String()
}

func (s *Server) supported(w http.ResponseWriter, r *http.Request) {
	chainID, err := s.o.X402.Ledger.ChainID(r.Context())
	if err != nil {
		writeError(w, backendError(fmt.Errorf("x402: ledger: %w", err), ""))
		return
	}
	network := CAIP2Network(chainID)
	writeJSON(w, http.StatusOK, SupportedResponse{Kinds: []SupportedKind{{X402Version, SchemeExact, network}, {X402Version, SchemeUpto, network}},
		Extensions: []string{}, Signers: map[string][]string{}})
}

// facilitatorVerify checks a payment for another resource server: the
// payer's signed openEscrow for the requirements' payTo, model and
// requestHash, of at least the amount, with the payer's next nonce and
// the funds, before the requirements' deadline.
func (s *Server) facilitatorVerify(r *http.Request) (*ledger.Tx, string, error) {
	x := s.o.X402
	ctx := r.Context()
	chainID, err := x.Ledger.ChainID(ctx)
	if err != nil {
		return nil, "", fmt.Errorf("x402: ledger: %w", err)
	}
	network := CAIP2Network(chainID)
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, 4*MaxPaymentHeaderBytes))
	if err != nil {
		return nil, network, refuse(ReasonInvalidPayload, "reading the request: %v", err)
	}
	var vr VerifyRequest
	if err := json.Unmarshal(body, &vr); err != nil || len(vr.PaymentPayload) == 0 {
		return nil, network, refuse(ReasonInvalidPayload, "the body is not {x402Version, paymentPayload, paymentRequirements}")
	}
	// The payload travels as JSON here; decodePayment takes the header form.
	p, tx, err := decodePayment(base64.StdEncoding.EncodeToString(vr.PaymentPayload))
	if err != nil {
		return nil, network, err
	}
	return tx, network, s.checkFacilitated(ctx, p, tx, vr.PaymentRequirements, chainID)
}

func (s *Server) checkFacilitated(ctx context.Context, p *PaymentPayload, tx *ledger.Tx, req PaymentRequirements, chainID string) error {
	x := s.o.X402
	network := CAIP2Network(chainID)
	if req.Scheme != SchemeExact && req.Scheme != SchemeUpto || p.Accepted.Scheme != req.Scheme {
		return refuse(ReasonInvalidScheme, "scheme %q (payload %q): this facilitator settles %q and %q", req.Scheme, p.Accepted.Scheme, SchemeExact, SchemeUpto)
	}
	if req.Network != network || p.Accepted.Network != network || tx.ChainID != chainID {
		return refuse(ReasonInvalidNetwork, "network %q, transaction for chain %q: this facilitator settles on %s", req.Network, tx.ChainID, network)
	}
	if req.Extra.Deadline != 0 && x.now().Unix() > req.Extra.Deadline {
		return refuse(ReasonExpired, "the requirements expired")
	}
	m, ok := tx.Msg.(*ledger.MsgOpenEscrow)
	if !ok || m == nil {
		return refuse(ReasonInvalidPayload, "the transaction is %q, not openEscrow", tx.Msg.Kind())
	}
	payTo, err1 := ledger.ParseAddress(req.PayTo)
	model, err2 := ledger.ParseHash(req.Extra.ModelID)
	rh, err3 := ledger.ParseHash(req.Extra.RequestHash)
	amount, err4 := strconv.ParseUint(req.Amount, 10, 64)
	if bad := badFields([]string{"payTo", "extra.modelId", "extra.requestHash", "amount"}, err1, err2, err3, err4); bad != "" {
		return refuse(ReasonInvalidPayload, "requirements: %s", bad)
	}
	if m.Worker != payTo || m.ModelID != model || m.Request != rh {
		return refuse(ReasonRequestMismatch, "the escrow (worker %s, model %s, request %s) does not match the requirements", m.Worker, m.ModelID, m.Request)
	}
	var price uint64
	if req.Scheme == SchemeUpto {
		var err error
		if price, err = strconv.ParseUint(req.Extra.PricePerToken, 10, 64); err != nil || price == 0 {
			return refuse(ReasonInvalidPayload, "upto requirements need extra.pricePerToken, a positive integer (got %q)", req.Extra.PricePerToken)
		}
	}
	if err := checkScheme(req.Scheme, m, price); err != nil {
		return err
	}
	return x.checkFunds(ctx, tx, amount)
}

// badFields names each field whose error is not nil with its error, on
// one line: errors.Join would put each on a line of its own, in a refusal
// a caller reads as one message.
func badFields(names []string, errs ...error) string {
	var out []string
	for i, err := range errs {
		if err != nil {
			out = append(out, names[i]+": "+err.Error())
		}
	}
	return strings.Join(out, "; ")
}
