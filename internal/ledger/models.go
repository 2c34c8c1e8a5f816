package ledger

import (
	"bytes"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"sort"
)

// Model availability. Audit openings and disputes are computed inside
// blocks with the receipt's model, so a validator lacking it stops (see
// ErrModelUnavailable). Registration is permissionless; a model becomes
// usable (Model.Active: escrows and receipts accepted) only once
// validators holding Params.ModelQuorumBps of the voting power have
// attested to holding it, so that a model nobody else holds cannot halt
// the chain.

// keyPendingModels lists, sorted, the inactive models with at least one
// attester: those whose activation is re-evaluated when voting powers
// change. (A model with no attester cannot reach a positive quorum.)
const keyPendingModels = "pendingmodels"

// maxPendingModels caps the pending list. Registration is permissionless
// and any validator with power may attest any registered model, so one
// validator registering and attesting models no other validator holds
// grew the list without bound: one value rewritten whole at each such
// attestation, and read, with every listed model's record and its
// attesters' powers, at every change of voting power (reevaluateModels),
// a cost every node paid in every such block. An attestation that would
// add a model to a full list is refused (ErrPendingModels); one that
// activates its model adds nothing and is taken. A model is pending only until the validators holding it
// attest, so hundreds at once is far above an honest backlog.
const maxPendingModels = 256

// maxPendingPerAttester caps the pending models one validator attests:
// without it one validator could fill the list by itself (256
// registrations and attestations) and hold back every other validator's
// first attestation of a new model until some activate. With it, filling
// the list takes 8 validators with voting power, and a validator under
// its quota is refused only by a full list.
const maxPendingPerAttester = 32

// quorumMet reports whether attested*10000 >= bps*total, computed in 128
// bits. With bps 0, or no voting power at all, it holds trivially.
func quorumMet(attested, total uint64, bps uint32) bool {
	ah, al := bits.Mul64(attested, 10000)
	bh, bl := bits.Mul64(total, uint64(bps))
	return ah > bh || ah == bh && al >= bl
}

// addSat adds without wrapping (the sums below cannot get near 2^64:
// each power is at most MaxPower = 2^40 and the set is small).
func addSat(a, b uint64) uint64 {
	s, c := bits.Add64(a, b, 0)
	if c != 0 {
		return math.MaxUint64
	}
	return s
}

// power returns a validator's current voting power (the power last given
// to the consensus engine; 0 for an account that is not a validator).
func (e *exec) power(a Address) uint64 {
	var v Validator
	get(e.st, keyValidator(a), &v)
	return v.Power
}

// totalPower is the sum of the current validators' voting powers.
func (e *exec) totalPower() uint64 {
	var list []Address
	get(e.st, keyValidators, &list)
	var t uint64
	for _, a := range list {
		t = addSat(t, e.power(a))
	}
	return t
}

// attestedPower is the sum of the attesters' current voting powers.
func (e *exec) attestedPower(m *Model) uint64 {
	var t uint64
	for _, a := range m.Attesters {
		t = addSat(t, e.power(a))
	}
	return t
}

// activate marks m active and emits model_active when its attesters now
// hold the quorum; it reports whether it did.
func (e *exec) activate(m *Model, total uint64) bool {
	if m.Active {
		return false
	}
	att := e.attestedPower(m)
	if !quorumMet(att, total, e.params.ModelQuorumBps) {
		return false
	}
	m.Active = true
	e.emit(EventModelActive, Attr{AttrModelID, m.ModelID.String()}, Attr{AttrAttestedPower, u64(att)}, Attr{AttrTotalPower, u64(total)}, Attr{AttrAttesters, fmt.Sprint(len(m.Attesters))})
	return true
}

func (e *exec) registerModel(m *MsgRegisterModel) error {
	if _, ok := e.st.Get(keyModel(m.ModelID)); ok {
		return fmt.Errorf("%w: model %s is registered", ErrExists, m.ModelID)
	}
	var holder Hash
	if get(e.st, keyModelName(m.Name), &holder) {
		return fmt.Errorf("%w: %q is the name of model %s", ErrNameTaken, m.Name, holder)
	}
	put(e.st, keyModelName(m.Name), m.ModelID)
	rec := Model{ModelID: m.ModelID, Name: m.Name, SpecVersion: m.SpecVersion, Registrant: e.signer, Height: e.ctx.Height, Attesters: []Address{}}
	e.emit(EventModelRegistered, Attr{AttrModelID, m.ModelID.String()}, Attr{AttrName, m.Name}, Attr{AttrSpecVersion, fmt.Sprint(m.SpecVersion)}, Attr{AttrRegistrant, e.signer.String()})
	// Active at once when the rule is off (or, trivially, on a chain with
	// no voting power).
	e.activate(&rec, e.totalPower())
	put(e.st, keyModel(m.ModelID), rec)
	return nil
}

// attestModel records that the signer, a validator with voting power,
// holds the model, and activates the model when the attesters reach the
// quorum. A validator may attest an active model too (the record then
// shows who holds it), once.
func (e *exec) attestModel(m *MsgAttestModel) error {
	var rec Model
	if !get(e.st, keyModel(m.ModelID), &rec) {
		return fmt.Errorf("%w: model %s is not registered", ErrNotFound, m.ModelID)
	}
	if e.power(e.signer) == 0 {
		return fmt.Errorf("%w: %s is not a validator with voting power", ErrUnauthorized, e.signer)
	}
	i := sort.Search(len(rec.Attesters), func(i int) bool { return bytes.Compare(rec.Attesters[i][:], e.signer[:]) >= 0 })
	if i < len(rec.Attesters) && rec.Attesters[i] == e.signer {
		return fmt.Errorf("%w: %s already attested model %s", ErrExists, e.signer, m.ModelID)
	}
	rec.Attesters = append(rec.Attesters, Address{})
	copy(rec.Attesters[i+1:], rec.Attesters[i:])
	rec.Attesters[i] = e.signer
	total := e.totalPower()
	var pending []Hash
	if !rec.Active && !quorumMet(e.attestedPower(&rec), total, e.params.ModelQuorumBps) {
		// The model stays inactive: it is, or becomes, pending.
		pending = e.pendingModels()
		if n := e.pendingAttestedBy(pending, e.signer); n >= maxPendingPerAttester {
			return fmt.Errorf("%w: %s attests %d pending models (inactive with an attester), at most %d: model %s would be one more", ErrPendingModels, e.signer, n, maxPendingPerAttester, m.ModelID)
		}
		if !slices.Contains(pending, m.ModelID) && len(pending) >= maxPendingModels {
			return fmt.Errorf("%w: %d models are pending (inactive with an attester), at most %d: model %s would be one more", ErrPendingModels, len(pending), maxPendingModels, m.ModelID)
		}
	}
	e.emit(EventModelAttested, Attr{AttrModelID, m.ModelID.String()}, Attr{AttrValidator, e.signer.String()})
	wasActive := rec.Active
	e.activate(&rec, total)
	put(e.st, keyModel(m.ModelID), rec)
	if !wasActive {
		if !rec.Active {
			e.setPending(pending, m.ModelID, true)
		} else {
			e.setPending(e.pendingModels(), m.ModelID, false)
		}
	}
	return nil
}

// pendingAttestedBy counts the models of the pending list that a
// attests (at most maxPendingModels records read).
func (e *exec) pendingAttestedBy(pending []Hash, a Address) int {
	n := 0
	for _, id := range pending {
		var rec Model
		if !get(e.st, keyModel(id), &rec) {
			continue
		}
		i := sort.Search(len(rec.Attesters), func(i int) bool { return bytes.Compare(rec.Attesters[i][:], a[:]) >= 0 })
		if i < len(rec.Attesters) && rec.Attesters[i] == a {
			n++
		}
	}
	return n
}

// pendingModels reads the pending list.
func (e *exec) pendingModels() []Hash {
	var list []Hash
	get(e.st, keyPendingModels, &list)
	return list
}

// setPending adds id to, or removes it from, the sorted pending list
// (list, as read).
func (e *exec) setPending(list []Hash, id Hash, pending bool) {
	i := sort.Search(len(list), func(i int) bool { return bytes.Compare(list[i][:], id[:]) >= 0 })
	found := i < len(list) && list[i] == id
	switch {
	case pending && !found:
		list = append(list, Hash{})
		copy(list[i+1:], list[i:])
		list[i] = id
	case !pending && found:
		list = append(list[:i], list[i+1:]...)
	default:
		return
	}
	e.putPending(list)
}

func (e *exec) putPending(list []Hash) {
	if len(list) == 0 {
		e.st.Delete(keyPendingModels)
		return
	}
	put(e.st, keyPendingModels, list)
}

// reevaluateModels activates the pending models whose attesters hold the
// quorum under the current voting powers (called after the powers
// changed), in model id order.
func (e *exec) reevaluateModels() {
	var list []Hash
	if !get(e.st, keyPendingModels, &list) {
		return
	}
	total := e.totalPower()
	kept := list[:0]
	for _, id := range list {
		var rec Model
		if !get(e.st, keyModel(id), &rec) {
			continue
		}
		if e.activate(&rec, total) {
			put(e.st, keyModel(id), rec)
			continue
		}
		if !rec.Active {
			kept = append(kept, id)
		}
	}
	e.putPending(kept)
}

// activeModel returns a model the chain runs: registered, and active
// unless the availability rule is off (Params.ModelQuorumBps 0).
func (e *exec) activeModel(id Hash) (Model, error) {
	var rec Model
	if !get(e.st, keyModel(id), &rec) {
		return rec, fmt.Errorf("%w: model %s is not registered", ErrNotFound, id)
	}
	if !rec.Active && e.params.ModelQuorumBps != 0 {
		return rec, fmt.Errorf("%w: model %s is registered but validators holding %d/10000 of the voting power have not attested to holding it (attestModel)",
			ErrModelInactive, id, e.params.ModelQuorumBps)
	}
	return rec, nil
}
