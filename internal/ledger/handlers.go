package ledger

import (
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"math/bits"

	"github.com/verdictnet/verdict/internal/dispute"
)

// handle executes e.tx's message; the envelope (fee, nonce) is already applied.
func (e *exec) handle() error {
	if e.tx.Msg != nil {
		return e.tx.Msg.handle(e)
	}
	return fmt.Errorf("%w: empty message", ErrDecode)
}

func (m *MsgSend) handle(e *exec) error               { return e.send(m) }
func (m *MsgRegisterModel) handle(e *exec) error      { return e.registerModel(m) }
func (m *MsgRegisterAgent) handle(e *exec) error      { return e.registerAgent(m) }
func (m *MsgSetAgentURI) handle(e *exec) error        { return e.setAgentURI(m) }
func (m *MsgSetMetadata) handle(e *exec) error        { return e.setMetadata(m) }
func (m *MsgSetAgentWallet) handle(e *exec) error     { return e.setAgentWallet(m) }
func (m *MsgTransferFrom) handle(e *exec) error       { return e.transferFrom(m) }
func (m *MsgGiveFeedback) handle(e *exec) error       { return e.giveFeedback(m) }
func (m *MsgRevokeFeedback) handle(e *exec) error     { return e.revokeFeedback(m) }
func (m *MsgAppendResponse) handle(e *exec) error     { return e.appendResponse(m) }
func (m *MsgValidationRequest) handle(e *exec) error  { return e.validationRequest(m) }
func (m *MsgValidationResponse) handle(e *exec) error { return e.validationResponse(m) }
func (m *MsgBond) handle(e *exec) error               { return e.bond(m) }
func (m *MsgUnbond) handle(e *exec) error             { return e.unbond(m) }
func (*MsgUnjail) handle(e *exec) error               { return e.unjail() }
func (m *MsgSetValidator) handle(e *exec) error       { return e.setValidator(m) }
func (m *MsgOpenEscrow) handle(e *exec) error         { return e.openEscrow(m) }
func (m *MsgPublishReceipt) handle(e *exec) error     { return e.publishReceipt(m) }
func (m *MsgPostOpenings) handle(e *exec) error       { return e.postOpenings(m) }
func (m *MsgOpenDispute) handle(e *exec) error        { return e.openDispute(m) }
func (m *MsgDisputeMove) handle(e *exec) error        { return e.disputeMove(m) }
func (m *MsgAttestModel) handle(e *exec) error        { return e.attestModel(m) }
func (m *MsgRevealAudit) handle(e *exec) error        { return e.revealAudit(m) }

func (e *exec) send(m *MsgSend) error {
	if err := e.debit(e.signer, m.Amount); err != nil {
		return err
	}
	if err := e.credit(m.To, m.Amount); err != nil {
		return err
	}
	e.emit(EventTransfer, Attr{AttrFrom, e.signer.String()}, Attr{AttrTo, m.To.String()}, Attr{AttrAmount, u64(m.Amount)})
	return nil
}

// --- ERC-8004 Identity ---------------------------------------------------

// reservedMetadataKey can be changed only through setAgentWallet.
const reservedMetadataKey = "agentWallet"

func (e *exec) agent(id uint64) (Agent, error) {
	var a Agent
	if id == 0 || !get(e.st, keyAgent(id), &a) {
		return a, fmt.Errorf("%w: agent %d", ErrNotFound, id)
	}
	return a, nil
}

func (e *exec) ownedAgent(id uint64) (Agent, error) {
	a, err := e.agent(id)
	if err != nil {
		return a, err
	}
	if a.Owner != e.signer {
		return a, fmt.Errorf("%w: %s does not own agent %d", ErrUnauthorized, e.signer, id)
	}
	return a, nil
}

func (e *exec) registerAgent(m *MsgRegisterAgent) error {
	for _, md := range m.Metadata {
		if md.MetadataKey == reservedMetadataKey {
			return fmt.Errorf("%w: metadata key %q is reserved", ErrInvalid, reservedMetadataKey)
		}
	}
	id := e.chain.NextAgent
	e.chain.NextAgent++
	put(e.st, keyChain, e.chain)
	put(e.st, keyAgent(id), Agent{AgentID: id, Owner: e.signer, AgentURI: m.AgentURI, AgentWallet: e.signer})
	e.emit(EventRegistered, Attr{AttrAgentID, u64(id)}, Attr{AttrAgentURI, m.AgentURI}, Attr{AttrOwner, e.signer.String()})
	for _, md := range m.Metadata {
		e.st.Set(keyAgentMeta(id, md.MetadataKey), append([]byte{}, md.MetadataValue...))
		e.emit(EventMetadataSet, Attr{AttrAgentID, u64(id)}, Attr{AttrMetadataKey, md.MetadataKey})
	}
	return nil
}

func (e *exec) setAgentURI(m *MsgSetAgentURI) error {
	a, err := e.ownedAgent(m.AgentID)
	if err != nil {
		return err
	}
	a.AgentURI = m.AgentURI
	put(e.st, keyAgent(a.AgentID), a)
	e.emit(EventURIUpdated, Attr{AttrAgentID, u64(a.AgentID)}, Attr{AttrAgentURI, m.AgentURI}, Attr{AttrUpdatedBy, e.signer.String()})
	return nil
}

func (e *exec) setMetadata(m *MsgSetMetadata) error {
	if _, err := e.ownedAgent(m.AgentID); err != nil {
		return err
	}
	if m.MetadataKey == reservedMetadataKey {
		return fmt.Errorf("%w: metadata key %q is set only by setAgentWallet", ErrInvalid, reservedMetadataKey)
	}
	e.st.Set(keyAgentMeta(m.AgentID, m.MetadataKey), append([]byte{}, m.MetadataValue...))
	e.emit(EventMetadataSet, Attr{AttrAgentID, u64(m.AgentID)}, Attr{AttrMetadataKey, m.MetadataKey})
	return nil
}

func (e *exec) setAgentWallet(m *MsgSetAgentWallet) error {
	a, err := e.ownedAgent(m.AgentID)
	if err != nil {
		return err
	}
	if e.ctx.Time > m.Deadline {
		return fmt.Errorf("%w: wallet signature deadline %d is before block time %d", ErrDeadline, m.Deadline, e.ctx.Time)
	}
	if !ed25519.Verify(m.NewWallet.PublicKey(), AgentWalletMessage(e.chain.ChainID, m.AgentID, m.NewWallet, m.Deadline), m.Signature) {
		return fmt.Errorf("%w: new wallet %s did not sign for agent %d", ErrSignature, m.NewWallet, m.AgentID)
	}
	a.AgentWallet = m.NewWallet
	put(e.st, keyAgent(a.AgentID), a)
	e.emit(EventAgentWalletSet, Attr{AttrAgentID, u64(a.AgentID)}, Attr{AttrAgentWallet, m.NewWallet.String()})
	return nil
}

// transferFrom moves an agent to a new owner (ERC-721 transferFrom, by the
// owner only: there are no approvals) and clears its agentWallet, which the
// new owner must set again with the wallet's signature.
func (e *exec) transferFrom(m *MsgTransferFrom) error {
	a, err := e.ownedAgent(m.AgentID)
	if err != nil {
		return err
	}
	if m.From != a.Owner {
		return fmt.Errorf("%w: agent %d is owned by %s, not by from %s", ErrUnauthorized, m.AgentID, a.Owner, m.From)
	}
	a.Owner, a.AgentWallet = m.To, Address{}
	put(e.st, keyAgent(a.AgentID), a)
	e.emit(EventAgentTransfer, Attr{AttrFrom, m.From.String()}, Attr{AttrTo, m.To.String()}, Attr{AttrTokenID, u64(a.AgentID)})
	e.emit(EventAgentWalletSet, Attr{AttrAgentID, u64(a.AgentID)}, Attr{AttrAgentWallet, Address{}.String()})
	return nil
}

// --- ERC-8004 Reputation -------------------------------------------------

func (e *exec) giveFeedback(m *MsgGiveFeedback) error {
	a, err := e.agent(m.AgentID)
	if err != nil {
		return err
	}
	if e.signer == a.Owner || e.signer == a.AgentWallet {
		return fmt.Errorf("%w: self-feedback: %s owns or is the wallet of agent %d", ErrUnauthorized, e.signer, m.AgentID)
	}
	e.addFeedback(Feedback{
		AgentID: m.AgentID, ClientAddress: e.signer, Value: m.Value, ValueDecimals: m.ValueDecimals,
		Tag1: m.Tag1, Tag2: m.Tag2, Endpoint: m.Endpoint, FeedbackURI: m.FeedbackURI, FeedbackHash: m.FeedbackHash,
	})
	return nil
}

// addFeedback stores f under the client's next 1-based index.
func (e *exec) addFeedback(f Feedback) {
	var last uint64
	get(e.st, keyFeedbackLast(f.AgentID, f.ClientAddress), &last)
	if last == 0 { // a new client
		listPush(e.st, keyFeedbackClients(f.AgentID), f.ClientAddress[:])
	}
	f.FeedbackIndex = last + 1
	put(e.st, keyFeedbackLast(f.AgentID, f.ClientAddress), f.FeedbackIndex)
	put(e.st, keyFeedback(f.AgentID, f.ClientAddress, f.FeedbackIndex), f)
	e.emit(EventNewFeedback, Attr{AttrAgentID, u64(f.AgentID)}, Attr{AttrClientAddress, f.ClientAddress.String()}, Attr{AttrFeedbackIndex, u64(f.FeedbackIndex)}, Attr{AttrValue, string(f.Value)}, Attr{AttrValueDecimals, fmt.Sprint(f.ValueDecimals)}, Attr{AttrTag1, f.Tag1}, Attr{AttrTag2, f.Tag2}, Attr{AttrEndpoint, f.Endpoint}, Attr{AttrFeedbackURI, f.FeedbackURI}, Attr{AttrFeedbackHash, f.FeedbackHash.String()})
}

func (e *exec) revokeFeedback(m *MsgRevokeFeedback) error {
	var f Feedback
	if !get(e.st, keyFeedback(m.AgentID, e.signer, m.FeedbackIndex), &f) {
		return fmt.Errorf("%w: feedback %d of client %s for agent %d", ErrNotFound, m.FeedbackIndex, e.signer, m.AgentID)
	}
	if f.IsRevoked {
		return fmt.Errorf("%w: feedback %d is already revoked", ErrWrongState, m.FeedbackIndex)
	}
	f.IsRevoked = true
	put(e.st, keyFeedback(m.AgentID, e.signer, m.FeedbackIndex), f)
	e.emit(EventFeedbackRevoked, Attr{AttrAgentID, u64(m.AgentID)}, Attr{AttrClientAddress, e.signer.String()}, Attr{AttrFeedbackIndex, u64(m.FeedbackIndex)})
	return nil
}

func (e *exec) appendResponse(m *MsgAppendResponse) error {
	if _, ok := e.st.Get(keyFeedback(m.AgentID, m.ClientAddress, m.FeedbackIndex)); !ok {
		return fmt.Errorf("%w: feedback %d of client %s for agent %d", ErrNotFound, m.FeedbackIndex, m.ClientAddress, m.AgentID)
	}
	k := keyResponseCount(m.AgentID, m.ClientAddress, m.FeedbackIndex)
	var n uint64
	get(e.st, k, &n)
	put(e.st, k, n+1)
	e.emit(EventResponseAppended, Attr{AttrAgentID, u64(m.AgentID)}, Attr{AttrClientAddress, m.ClientAddress.String()}, Attr{AttrFeedbackIndex, u64(m.FeedbackIndex)}, Attr{AttrResponder, e.signer.String()}, Attr{AttrResponseURI, m.ResponseURI}, Attr{AttrResponseHash, m.ResponseHash.String()})
	return nil
}

// --- ERC-8004 Validation -------------------------------------------------

func (e *exec) validationRequest(m *MsgValidationRequest) error {
	if _, err := e.ownedAgent(m.AgentID); err != nil {
		return err
	}
	if _, ok := e.st.Get(keyValidation(m.RequestHash)); ok {
		return fmt.Errorf("%w: validation request %s", ErrExists, m.RequestHash)
	}
	put(e.st, keyValidation(m.RequestHash), Validation{ValidatorAddress: m.ValidatorAddress, AgentID: m.AgentID, RequestURI: m.RequestURI, RequestHash: m.RequestHash, LastUpdate: e.ctx.Height})
	listPush(e.st, keyAgentValidations(m.AgentID), m.RequestHash[:])
	listPush(e.st, keyValidatorRequests(m.ValidatorAddress), m.RequestHash[:])
	e.emit(EventValidationRequest, Attr{AttrValidatorAddress, m.ValidatorAddress.String()}, Attr{AttrAgentID, u64(m.AgentID)}, Attr{AttrRequestURI, m.RequestURI}, Attr{AttrRequestHash, m.RequestHash.String()})
	return nil
}

// A list is its length under key and item i (32 raw bytes) under
// keyListItem(key, i), so that appending writes two small values however
// long the list is (a list rewritten whole on every append made each
// append cost its length).
func listPush(st Store, key string, item []byte) {
	var n uint64
	get(st, key, &n)
	st.Set(keyListItem(key, n), append([]byte{}, item...))
	put(st, key, n+1)
}

// listRange returns up to limit items of the list from offset, and its length.
func listRange(st Store, key string, offset, limit uint64) ([][32]byte, uint64) {
	var n uint64
	get(st, key, &n)
	var out [][32]byte
	for i := offset; i < n && uint64(len(out)) < limit; i++ {
		if b, ok := st.Get(keyListItem(key, i)); ok && len(b) == 32 {
			out = append(out, [32]byte(b))
		}
	}
	return out, n
}

func (e *exec) validationResponse(m *MsgValidationResponse) error {
	var v Validation
	if !get(e.st, keyValidation(m.RequestHash), &v) {
		return fmt.Errorf("%w: validation request %s", ErrNotFound, m.RequestHash)
	}
	if v.ValidatorAddress != e.signer {
		return fmt.Errorf("%w: %s is not the validator of request %s", ErrUnauthorized, e.signer, m.RequestHash)
	}
	v.Response, v.ResponseURI, v.ResponseHash, v.Tag = m.Response, m.ResponseURI, m.ResponseHash, m.Tag
	v.HasResponse, v.LastUpdate = true, e.ctx.Height
	put(e.st, keyValidation(m.RequestHash), v)
	e.emit(EventValidationResponse, Attr{AttrValidatorAddress, e.signer.String()}, Attr{AttrAgentID, u64(v.AgentID)}, Attr{AttrRequestHash, m.RequestHash.String()}, Attr{AttrResponse, fmt.Sprint(m.Response)}, Attr{AttrResponseURI, m.ResponseURI}, Attr{AttrResponseHash, m.ResponseHash.String()}, Attr{AttrTag, m.Tag})
	return nil
}

// --- Staking -------------------------------------------------------------

func (e *exec) stake(a Address) Stake {
	var s Stake
	get(e.st, keyStake(a), &s)
	return s
}

func (e *exec) bond(m *MsgBond) error {
	if err := e.debit(e.signer, m.Amount); err != nil {
		return err
	}
	s := e.stake(e.signer)
	b, carry := bits.Add64(s.Bonded, m.Amount, 0)
	if carry != 0 {
		return fmt.Errorf("%w: stake would overflow", ErrInvalid)
	}
	s.Bonded = b
	put(e.st, keyStake(e.signer), s)
	e.emit(EventBond, Attr{AttrAccount, e.signer.String()}, Attr{AttrAmount, u64(m.Amount)}, Attr{AttrBonded, u64(s.Bonded)})
	return nil
}

// maxUnbondings is the most unbonding entries a stake holds: an unbond
// that would add one more is refused. Entries maturing at one height are
// one, and matured ones held back (the account is liable) fold into one,
// so only unbonds in more than this many blocks of one unbonding period
// meet it.
const maxUnbondings = 256

// unbond moves stake to the account's unbonding entries. Each unbond
// appended an entry and queued its release, and every later one of the
// account decoded and wrote them all again: unbonds of 1 in numbers, at
// the least fee each, cost every validator time quadratic in their number
// (about 25 s for 10,000 in one block). Now an unbond maturing at the
// height of the last entry adds to it (queued once), matured entries held
// back fold into one, and at most maxUnbondings are kept.
func (e *exec) unbond(m *MsgUnbond) error {
	s := e.stake(e.signer)
	if s.Bonded < m.Amount {
		return fmt.Errorf("%w: %s has %d bonded, cannot unbond %d", ErrStake, e.signer, s.Bonded, m.Amount)
	}
	at := e.ctx.Height + e.params.UnbondingBlocks
	s.Unbonding = foldMatured(s.Unbonding, e.ctx.Height)
	if n := len(s.Unbonding); n > 0 && s.Unbonding[n-1].Height == at {
		s.Unbonding[n-1].Amount += m.Amount // both out of the supply: no overflow
	} else {
		if n >= maxUnbondings {
			return fmt.Errorf("%w: %s has %d unbondings pending, at most %d: unbond again once some have matured", ErrStake, e.signer, n, maxUnbondings)
		}
		s.Unbonding = append(s.Unbonding, Unbonding{Amount: m.Amount, Height: at})
		e.queuePush(qUnbond, at, e.signer)
	}
	s.Bonded -= m.Amount
	put(e.st, keyStake(e.signer), s)
	e.emit(EventUnbond, Attr{AttrAccount, e.signer.String()}, Attr{AttrAmount, u64(m.Amount)}, Attr{AttrCompletes, u64(at)})
	return nil
}

func (e *exec) unjail() error {
	s := e.stake(e.signer)
	if s.JailedUntil == 0 {
		return fmt.Errorf("%w: %s is not jailed", ErrWrongState, e.signer)
	}
	if e.ctx.Height < s.JailedUntil {
		return fmt.Errorf("%w: %s is jailed until height %d", ErrWrongState, e.signer, s.JailedUntil)
	}
	s.JailedUntil = 0
	put(e.st, keyStake(e.signer), s)
	e.emit(EventUnjail, Attr{AttrAccount, e.signer.String()})
	return nil
}

// foldMatured returns us (oldest first) with its entries matured by
// height h, which come first, folded into one at the latest of their
// heights: entries held back while the account is liable, returned
// together when it no longer is (slash takes from them in order, so one
// entry of their sum is the same to it).
func foldMatured(us []Unbonding, h uint64) []Unbonding {
	n := 0
	for n < len(us) && us[n].Height <= h {
		n++
	}
	if n < 2 {
		return us
	}
	f := Unbonding{Height: us[n-1].Height}
	for _, u := range us[:n] {
		f.Amount += u.Amount // out of the supply: no overflow
	}
	return append([]Unbonding{f}, us[n:]...)
}

// slash takes bps of a's stake (bonded first, then unbonding), jails it
// when jail is set, and returns the amount taken. The caller decides where
// the amount goes.
func (e *exec) slash(a Address, bps uint32, jail bool, reason string) uint64 {
	s := e.stake(a)
	total := s.Bonded
	for _, u := range s.Unbonding {
		total += u.Amount // bonded+unbonding never exceeds the supply
	}
	amt := mulBps(total, bps)
	left := amt
	take := func(v *uint64) {
		d := min(*v, left)
		*v -= d
		left -= d
	}
	take(&s.Bonded)
	for i := range s.Unbonding {
		take(&s.Unbonding[i].Amount)
	}
	s.Slashed++
	if jail {
		s.JailedUntil = e.ctx.Height + e.params.JailBlocks + 1
	}
	put(e.st, keyStake(a), s)
	e.emit(EventSlash, Attr{AttrAccount, a.String()}, Attr{AttrAmount, u64(amt)}, Attr{AttrReason, reason}, Attr{AttrJailedUntil, u64(s.JailedUntil)})
	return amt
}

func (e *exec) burn(amt uint64, reason string) {
	e.totals.Burned += amt
	e.saveTotals()
	e.emit(EventBurn, Attr{AttrAmount, u64(amt)}, Attr{AttrReason, reason})
}

// --- Receipts ------------------------------------------------------------

func (e *exec) openEscrow(m *MsgOpenEscrow) error {
	if _, err := e.activeModel(m.ModelID); err != nil {
		return err
	}
	if m.AgentID != 0 {
		if _, err := e.agent(m.AgentID); err != nil {
			return err
		}
	}
	if m.Fee < e.params.MinEscrowFee {
		return fmt.Errorf("%w: escrow fee %d below the minimum %d", ErrFee, m.Fee, e.params.MinEscrowFee)
	}
	if err := e.debit(e.signer, m.Fee); err != nil {
		return err
	}
	id := derive("verdict/escrow/v1", e.signer[:], be64(e.tx.Nonce))
	esc := Escrow{EscrowID: id, Requester: e.signer, Worker: m.Worker, ModelID: m.ModelID, Fee: m.Fee, Request: m.Request, AuditCommit: m.AuditCommit, AgentID: m.AgentID, PricePerToken: m.PricePerToken, Expires: e.ctx.Height + e.params.EscrowTimeout}
	put(e.st, keyEscrow(id), esc)
	e.queuePush(qEscrow, esc.Expires, id)
	e.emit(EventEscrowOpened, Attr{AttrEscrowID, id.String()}, Attr{AttrRequester, e.signer.String()}, Attr{AttrWorker, m.Worker.String()}, Attr{AttrModelID, m.ModelID.String()}, Attr{AttrFee, u64(m.Fee)}, Attr{AttrExpires, u64(esc.Expires)})
	return nil
}

// EscrowID returns the id of the escrow that a MsgOpenEscrow signed by
// requester with nonce creates.
func EscrowID(requester Address, nonce uint64) Hash {
	return derive("verdict/escrow/v1", requester[:], be64(nonce))
}

func (e *exec) publishReceipt(m *MsgPublishReceipt) error {
	var esc Escrow
	if !get(e.st, keyEscrow(m.EscrowID), &esc) {
		return fmt.Errorf("%w: escrow %s", ErrNotFound, m.EscrowID)
	}
	if esc.Worker != e.signer {
		return fmt.Errorf("%w: escrow %s is for worker %s", ErrUnauthorized, m.EscrowID, esc.Worker)
	}
	if !esc.ReceiptID.IsZero() {
		return fmt.Errorf("%w: escrow %s already has receipt %s", ErrExists, m.EscrowID, esc.ReceiptID)
	}
	if _, err := e.activeModel(esc.ModelID); err != nil {
		return err
	}
	s := e.stake(e.signer)
	if s.Bonded < e.params.MinWorkerStake {
		return fmt.Errorf("%w: worker %s has %d bonded, needs %d", ErrStake, e.signer, s.Bonded, e.params.MinWorkerStake)
	}
	if s.JailedUntil != 0 {
		return fmt.Errorf("%w: worker %s is jailed", ErrStake, e.signer)
	}
	if e.l.hooks.Receipts == nil {
		return fmt.Errorf("%w: this node has no receipt verifier", ErrCheck)
	}
	info, err := e.l.verifyReceipt(m.Receipt)
	if err != nil {
		return fmt.Errorf("%w: receipt: %v", ErrCheck, err)
	}
	if info.Worker != e.signer {
		return fmt.Errorf("%w: receipt is signed by %s, not by the publisher %s", ErrUnauthorized, info.Worker, e.signer)
	}
	if info.ModelID != esc.ModelID {
		return fmt.Errorf("%w: receipt is for model %s, escrow for %s", ErrInvalid, info.ModelID, esc.ModelID)
	}
	request := info.Request
	if m.RequestSteps != 0 {
		// The generation ended early: the receipt's steps are those fed,
		// the request's those asked for.
		if info.RequestAt == nil || m.RequestSteps < info.Steps {
			return fmt.Errorf("%w: requestSteps %d: the receipt has %d steps", ErrInvalid, m.RequestSteps, info.Steps)
		}
		request = info.RequestAt(m.RequestSteps)
	}
	if request != esc.Request {
		return fmt.Errorf("%w: receipt answers request %s, escrow %s pays for request %s", ErrInvalid, request, esc.EscrowID, esc.Request)
	}
	if _, ok := e.st.Get(keyReceipt(info.ID)); ok {
		return fmt.Errorf("%w: receipt %s is already published", ErrExists, info.ID)
	}
	esc.ReceiptID = info.ID
	if esc.PricePerToken != 0 {
		// "upto": the receipt costs its tokens at the escrow's price, at
		// most the fee; the rest goes back to the requester now.
		due := esc.Fee
		if info.Tokens <= esc.Fee/esc.PricePerToken {
			due = esc.PricePerToken * info.Tokens
		}
		if back := esc.Fee - due; back > 0 {
			esc.Fee = due
			_ = e.credit(esc.Requester, back) // cannot overflow: it came out of the supply
			e.emit(EventEscrowSettled, Attr{AttrEscrowID, esc.EscrowID.String()}, Attr{AttrRequester, esc.Requester.String()}, Attr{AttrFee, u64(due)}, Attr{AttrRefund, u64(back)})
		}
	}
	put(e.st, keyEscrow(esc.EscrowID), esc)
	s.Live++ // the stake stays slashable until this receipt settles
	put(e.st, keyStake(e.signer), s)
	r := ReceiptRecord{ReceiptID: info.ID, EscrowID: esc.EscrowID, Worker: e.signer, ModelID: info.ModelID, Height: e.ctx.Height,
		WindowEnd: e.ctx.Height + e.params.ChallengeWindow, Status: StatusPublished}
	put(e.st, keyReceipt(info.ID), r)
	e.st.Set(keyReceiptData(info.ID), append([]byte{}, m.Receipt...))
	e.queuePush(qAudit, e.ctx.Height+1, info.ID)
	e.queuePush(qFinal, r.WindowEnd, info.ID)
	e.emit(EventReceiptPublished, Attr{AttrReceiptID, info.ID.String()}, Attr{AttrEscrowID, esc.EscrowID.String()}, Attr{AttrWorker, e.signer.String()}, Attr{AttrModelID, info.ModelID.String()}, Attr{AttrWindowEnd, u64(r.WindowEnd)})
	return nil
}

func (e *exec) receipt(id Hash) (ReceiptRecord, error) {
	var r ReceiptRecord
	if !get(e.st, keyReceipt(id), &r) {
		return r, fmt.Errorf("%w: receipt %s", ErrNotFound, id)
	}
	return r, nil
}

// --- Audits --------------------------------------------------------------

func (e *exec) postOpenings(m *MsgPostOpenings) error {
	var a Audit
	if !get(e.st, keyAudit(m.ReceiptID), &a) {
		return fmt.Errorf("%w: no audit of receipt %s", ErrNotFound, m.ReceiptID)
	}
	r, err := e.receipt(m.ReceiptID)
	if err != nil {
		return err
	}
	if r.Worker != e.signer {
		return fmt.Errorf("%w: only worker %s opens receipt %s", ErrUnauthorized, r.Worker, m.ReceiptID)
	}
	if a.Status != AuditPending {
		return fmt.Errorf("%w: audit of %s is %s", ErrWrongState, m.ReceiptID, a.Status)
	}
	if e.ctx.Height > a.Deadline {
		return fmt.Errorf("%w: openings for %s were due by height %d", ErrDeadline, m.ReceiptID, a.Deadline)
	}
	if e.l.hooks.Openings == nil {
		return fmt.Errorf("%w: this node has no opening checker", ErrCheck)
	}
	if e.check {
		// The mempool takes the openings without their proofs, which the
		// block checks: only the receipt's worker may send them and they
		// decide only its own audit (failing ones slash it in the block,
		// as they would after passing here), while checking them here
		// recomputed cells at CheckTx, at every recheck after a block and
		// at every fee estimate too. A node that could not check them in
		// the block (it lacks the model) refuses them, as CheckOpenings
		// would make it.
		if h := e.l.hooks.Models; h != nil && !h.Holds(r.ModelID) {
			return fmt.Errorf("%w: openings of receipt %s: model %s: %v", ErrCheck, m.ReceiptID, r.ModelID, ErrModelUnavailable)
		}
		a.Status = AuditPassed
		e.setAudit(a)
		return nil
	}
	data, _ := e.st.Get(keyReceiptData(m.ReceiptID))
	if err := e.l.hooks.Openings.CheckOpenings(data, a.Seed, a.Cells, m.Openings); err != nil {
		if e.unavailable(err) {
			return fmt.Errorf("%w: openings: %v", ErrCheck, err)
		}
		a.Status = AuditFailed
		r = e.setAudit(a)
		e.emit(EventAuditFailed, Attr{AttrReceiptID, m.ReceiptID.String()}, Attr{AttrError, err.Error()})
		// As for a missed opening: a receipt a lost dispute slashed
		// already is not slashed (and jailed) a second time for it.
		if r.Status == StatusPublished || r.Status == StatusChallenged {
			e.slashReceipt(r, e.params.SlashAuditBps, "failed opening")
		}
		return nil
	}
	a.Status = AuditPassed
	e.setAudit(a)
	e.emit(EventAuditPassed, Attr{AttrReceiptID, m.ReceiptID.String()})
	return nil
}

// revealAudit takes the requester's audit secret for a receipt whose
// escrow committed to it, and decides the audit by it and the beacon (the
// hash of the block after the receipt's): selected when the first 8 bytes
// (big-endian) of derive("verdict/audit/reveal/v2", secret, beacon,
// receipt id) mod 10000 are below auditRateBps. Neither the requester (who
// fixed the secret before the beacon existed) nor the proposer of that
// block (who does not know the secret) can choose the outcome alone.
func (e *exec) revealAudit(m *MsgRevealAudit) error {
	r, err := e.receipt(m.ReceiptID)
	if err != nil {
		return err
	}
	var esc Escrow
	if !get(e.st, keyEscrow(r.EscrowID), &esc) || esc.AuditCommit.IsZero() {
		return fmt.Errorf("%w: the escrow of receipt %s committed to no audit secret", ErrWrongState, m.ReceiptID)
	}
	// Anyone may send the secret: only the requester knew it, so whoever
	// has it was given it by the requester (the gateway's worker reveals
	// for the accounts it holds, paying the fee itself).
	if Hash(sha256.Sum256(m.Secret)) != esc.AuditCommit {
		return fmt.Errorf("%w: the secret does not match the escrow's audit commitment", ErrInvalid)
	}
	if due := r.Height + 1 + e.params.RevealWindow; e.ctx.Height > due {
		return fmt.Errorf("%w: the audit secret of %s was due by height %d", ErrDeadline, m.ReceiptID, due)
	}
	if r.Status != StatusPublished && r.Status != StatusChallenged {
		return fmt.Errorf("%w: receipt %s is %s", ErrWrongState, m.ReceiptID, r.Status)
	}
	if _, ok := e.st.Get(keyRevealed(m.ReceiptID)); ok || r.Audited {
		return fmt.Errorf("%w: the audit of %s is already decided", ErrExists, m.ReceiptID)
	}
	var beacon Hash
	if !get(e.st, keyBeacon(m.ReceiptID), &beacon) {
		return fmt.Errorf("%w: the audit secret of %s is revealed after the block that follows its publication (height %d)", ErrWrongState, m.ReceiptID, r.Height+1)
	}
	put(e.st, keyRevealed(m.ReceiptID), true)
	e.emit(EventAuditRevealed, Attr{AttrReceiptID, m.ReceiptID.String()})
	e.maybeAudit(r, derive("verdict/audit/reveal/v2", m.Secret, beacon[:], m.ReceiptID[:]), e.params.AuditRateBps)
	return nil
}

// setAudit stores an audit and mirrors its status into the receipt's
// record, which it returns.
func (e *exec) setAudit(a Audit) ReceiptRecord {
	put(e.st, keyAudit(a.ReceiptID), a)
	var r ReceiptRecord
	if get(e.st, keyReceipt(a.ReceiptID), &r) {
		r.Audit = a.Status
		put(e.st, keyReceipt(a.ReceiptID), r)
	}
	return r
}

// slashReceipt slashes and jails the receipt's worker (burning the amount),
// marks the receipt slashed and refunds the requester.
func (e *exec) slashReceipt(r ReceiptRecord, bps uint32, reason string) {
	amt := e.slash(r.Worker, bps, true, reason)
	e.burn(amt, reason)
	e.settleReceipt(r, StatusSlashed)
	e.refund(r.EscrowID, "receipt slashed")
}

// settleReceipt stores r with its final status (final or slashed). The
// first time a receipt settles, its worker has one receipt fewer in its
// window, which may release the worker's matured unbondings.
func (e *exec) settleReceipt(r ReceiptRecord, status string) {
	live := r.Status == StatusPublished || r.Status == StatusChallenged
	r.Status = status
	put(e.st, keyReceipt(r.ReceiptID), r)
	if live {
		s := e.stake(r.Worker)
		s.Live--
		put(e.st, keyStake(r.Worker), s)
		e.releaseUnbonding(r.Worker)
	}
}

// releaseUnbonding returns a's matured unbondings (height reached) to its
// balance, unless the account is still liable (a receipt in its window or
// an open dispute): then they stay in its stake, slashable, until the
// last one settles.
func (e *exec) releaseUnbonding(a Address) {
	s := e.stake(a)
	if len(s.Unbonding) == 0 {
		return
	}
	h := e.ctx.Height
	if s.liable() {
		for _, u := range s.Unbonding {
			if u.Height <= h {
				e.emit(EventUnbondHeld, Attr{AttrAccount, a.String()}, Attr{AttrLive, u64(s.Live)}, Attr{AttrDisputes, u64(s.Disputes)})
				break
			}
		}
		return
	}
	var back uint64
	kept := s.Unbonding[:0]
	for _, u := range s.Unbonding {
		if u.Height <= h {
			back += u.Amount
		} else {
			kept = append(kept, u)
		}
	}
	if len(kept) == len(s.Unbonding) {
		return // none matured
	}
	if len(kept) == 0 {
		kept = nil
	}
	// Matured entries go, even those a slash emptied (they stayed in the
	// stake for good when nothing came back).
	s.Unbonding = kept
	put(e.st, keyStake(a), s)
	if back == 0 {
		return
	}
	_ = e.credit(a, back) // cannot overflow: the stake came out of the supply
	e.emit(EventUnbondComplete, Attr{AttrAccount, a.String()}, Attr{AttrAmount, u64(back)})
}

// refund returns an escrow's fee to its requester and deletes the escrow.
func (e *exec) refund(id Hash, reason string) {
	var esc Escrow
	if !get(e.st, keyEscrow(id), &esc) {
		return
	}
	_ = e.credit(esc.Requester, esc.Fee) // cannot overflow: the fee came out of the supply
	e.st.Delete(keyEscrow(id))
	e.emit(EventEscrowRefunded, Attr{AttrEscrowID, id.String()}, Attr{AttrRequester, esc.Requester.String()}, Attr{AttrFee, u64(esc.Fee)}, Attr{AttrReason, reason})
}

// --- Disputes ------------------------------------------------------------

func (e *exec) openDispute(m *MsgOpenDispute) error {
	r, err := e.receipt(m.ReceiptID)
	if err != nil {
		return err
	}
	// Several disputes may run at once: an open dispute (perhaps a
	// sybil's, stalling to lose after the window) locks nobody out.
	if r.Status != StatusPublished && r.Status != StatusChallenged {
		return fmt.Errorf("%w: receipt %s is %s", ErrWrongState, m.ReceiptID, r.Status)
	}
	if e.ctx.Height >= r.WindowEnd {
		return fmt.Errorf("%w: challenge window of %s closed at height %d", ErrDeadline, m.ReceiptID, r.WindowEnd)
	}
	if e.signer == r.Worker {
		return fmt.Errorf("%w: a worker cannot challenge its own receipt", ErrUnauthorized)
	}
	// Each open dispute of the challenger is backed by minVerifierStake
	// of its own.
	s := e.stake(e.signer)
	if s.Bonded/(s.Disputes+1) < e.params.MinVerifierStake || s.JailedUntil != 0 {
		return fmt.Errorf("%w: challenger %s has %d bonded (jailed until %d) and %d open disputes, needs %d per dispute", ErrStake, e.signer, s.Bonded, s.JailedUntil, s.Disputes, e.params.MinVerifierStake)
	}
	if e.l.hooks.Disputes == nil {
		return fmt.Errorf("%w: this node has no dispute game", ErrCheck)
	}
	data, _ := e.st.Get(keyReceiptData(m.ReceiptID))
	game, err := e.l.hooks.Disputes.Start(data, m.Commitment, e.ctx.Height, e.params.MoveWindow)
	if err != nil {
		e.unavailable(err)
		return fmt.Errorf("%w: dispute: %v", ErrCheck, err)
	}
	id := derive("verdict/dispute/v1", m.ReceiptID[:], e.signer[:], be64(e.tx.Nonce))
	d := Dispute{DisputeID: id, ReceiptID: m.ReceiptID, Worker: r.Worker, Challenger: e.signer, Game: game, Status: DisputeOpen}
	r.Status, r.DisputeID = StatusChallenged, id
	r.Disputes++
	put(e.st, keyReceipt(r.ReceiptID), r)
	e.addDisputes(r.Worker, 1)
	e.addDisputes(e.signer, 1)
	e.emit(EventDisputeOpened, Attr{AttrDisputeID, id.String()}, Attr{AttrReceiptID, m.ReceiptID.String()}, Attr{AttrChallenger, e.signer.String()}, Attr{AttrWorker, r.Worker.String()})
	return e.advanceDispute(d)
}

// advanceDispute stores d after its game changed: it settles a finished
// game, or queues a timeout check for the block after the new deadline.
func (e *exec) advanceDispute(d Dispute) error {
	st, err := e.l.hooks.Disputes.Status(d.Game)
	if err != nil {
		e.unavailable(err)
		return fmt.Errorf("%w: dispute status: %v", ErrCheck, err)
	}
	if st.Done {
		e.settleDispute(d, st)
		return nil
	}
	if st.Deadline < e.ctx.Height {
		return fmt.Errorf("%w: dispute game deadline %d is in the past", ErrCheck, st.Deadline)
	}
	if st.Deadline != d.Deadline {
		d.Deadline = st.Deadline
		e.queuePush(qMove, d.Deadline+1, d.DisputeID)
	}
	put(e.st, keyDispute(d.DisputeID), d)
	return nil
}

// voidDispute settles d, whose game cannot go on past its deadline (its
// timeout failed, or left the game undecided with its deadline behind:
// a transcript full at disputegame.MaxEntries), as void: nobody is
// punished, and the receipt goes on as if the dispute had not been. Left
// open, nothing would ever settle it: its parties' open disputes, which
// hold back their matured unbondings, and the receipt, challenged, never
// paid nor refunded, would stay so for good.
func (e *exec) voidDispute(d Dispute) {
	e.settleDispute(d, DisputeStatus{Done: true, Void: dispute.FaultGameStalled, Reason: voidReason})
}

// voidReason is the words of a dispute voidDispute settles (its
// dispute_settled event's reason; the record keeps FaultGameStalled).
const voidReason = "the dispute game could not go on past its deadline"

// addDisputes changes the count of open disputes a is a party to; when
// it falls, a's matured unbondings may be released.
func (e *exec) addDisputes(a Address, d int) {
	s := e.stake(a)
	if d > 0 {
		s.Disputes++
	} else {
		s.Disputes--
	}
	put(e.st, keyStake(a), s)
	if d < 0 {
		e.releaseUnbonding(a)
	}
}

func (e *exec) disputeMove(m *MsgDisputeMove) error {
	var d Dispute
	if !get(e.st, keyDispute(m.DisputeID), &d) {
		return fmt.Errorf("%w: dispute %s", ErrNotFound, m.DisputeID)
	}
	if d.Status != DisputeOpen {
		return fmt.Errorf("%w: dispute %s is decided (%s)", ErrWrongState, m.DisputeID, d.Status)
	}
	from := SideNone
	switch e.signer {
	case d.Worker:
		from = SideWorker
	case d.Challenger:
		from = SideChallenger
	}
	if from == SideNone {
		return fmt.Errorf("%w: %s is not a party to dispute %s", ErrUnauthorized, e.signer, m.DisputeID)
	}
	if e.ctx.Height > d.Deadline {
		return fmt.Errorf("%w: answers in dispute %s were due by height %d", ErrDeadline, m.DisputeID, d.Deadline)
	}
	// Unlike postOpenings, the mempool plays the move too (at CheckTx and
	// at every recheck until a block takes it): a move the game refuses
	// then never reaches a block, where it would cost every node a replay
	// of the transcript for the fee of a failed transaction. What that
	// costs the mempool is bounded: only the two parties may move, the
	// check state leaves a decided game at its first step, and a move
	// the game takes goes into the next block and pays its fee.
	next, err := e.l.hooks.Disputes.Step(d.Game, from, m.Message, e.ctx.Height)
	if err != nil {
		e.unavailable(err)
		return fmt.Errorf("%w: dispute move: %v", ErrCheck, err)
	}
	d.Game, d.Moves = next, d.Moves+1
	e.emit(EventDisputeMove, Attr{AttrDisputeID, m.DisputeID.String()}, Attr{AttrFrom, from.String()}, Attr{AttrMove, u64(d.Moves)})
	return e.advanceDispute(d)
}

// settleDispute slashes the loser or losers (a worker's slash pays the
// challenger who beat it its share, the rest is burned; a challenger's
// slash is burned whole, so that a worker gains nothing from a sybil that
// challenges it and loses) and settles the receipt: slashed and refunded
// when the worker lost, back to published (and final if its window has
// passed) once no other dispute of it is open.
func (e *exec) settleDispute(d Dispute, st DisputeStatus) {
	workerLost, challengerLost := st.Lost[0], st.Lost[1]
	switch {
	case workerLost && challengerLost:
		d.Status = DisputeBothLost
	case workerLost:
		d.Status = DisputeWorkerLost
	case challengerLost:
		d.Status = DisputeChallengerLost
	default:
		d.Status = DisputeVoid
	}
	// Only the codes go into state, each where it applies: a loser's
	// fault, a void game's cause.
	d.WorkerFault, d.ChallengerFault, d.VoidFault = "", "", ""
	if workerLost {
		d.WorkerFault = st.Faults[0]
	}
	if challengerLost {
		d.ChallengerFault = st.Faults[1]
	}
	if d.Status == DisputeVoid {
		d.VoidFault = st.Void
	}
	put(e.st, keyDispute(d.DisputeID), d)
	e.emit(EventDisputeSettled, Attr{AttrDisputeID, d.DisputeID.String()}, Attr{AttrStatus, d.Status},
		Attr{AttrWorkerFault, string(d.WorkerFault)}, Attr{AttrChallengerFault, string(d.ChallengerFault)}, Attr{AttrVoidFault, string(d.VoidFault)},
		Attr{AttrReason, st.Reason})
	r, err := e.receipt(d.ReceiptID)
	if err != nil {
		return
	}
	punish := func(loser, winner Address, jail bool) {
		amt := e.slash(loser, e.params.SlashDisputeBps, jail, "dispute lost")
		var share uint64
		if !winner.IsZero() {
			share = mulBps(amt, e.params.WinnerShareBps)
			_ = e.credit(winner, share) // cannot overflow: the share came out of the supply
		}
		e.burn(amt-share, "dispute lost")
	}
	switch d.Status {
	case DisputeBothLost:
		punish(d.Worker, Address{}, true)
		punish(d.Challenger, Address{}, false)
	case DisputeWorkerLost:
		punish(d.Worker, d.Challenger, true)
	case DisputeChallengerLost:
		punish(d.Challenger, Address{}, false)
	}
	e.addDisputes(d.Worker, -1)
	e.addDisputes(d.Challenger, -1)
	r.Disputes--
	put(e.st, keyReceipt(r.ReceiptID), r)
	if r.Status != StatusChallenged {
		return // settled meanwhile (slashed by its audit or another dispute): the stakes above are all that changes
	}
	if workerLost {
		e.settleReceipt(r, StatusSlashed)
		e.refund(r.EscrowID, "dispute lost by worker")
		return
	}
	if r.Disputes > 0 {
		return // still challenged by others
	}
	r.Status = StatusPublished
	put(e.st, keyReceipt(r.ReceiptID), r)
	if e.ctx.Height >= r.WindowEnd {
		e.finalize(r)
	}
}
