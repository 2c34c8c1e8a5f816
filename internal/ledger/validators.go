package ledger

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"sort"
)

const keyValidators = "validators"

func keyValidator(a Address) string { return "validator/" + a.String() }

// MaxPower caps one validator's voting power (CometBFT caps the total at
// MaxInt64/8; 1000 validators at this cap stay below it).
const MaxPower = 1 << 40

// Validator is a consensus validator: its account key is its consensus key.
type Validator struct {
	Active bool   `json:"active"` // wants to validate
	Power  uint64 `json:"power"`  // voting power last given to CometBFT
	// Left is the height at which it stopped being a candidate
	// (withdrawn or evicted); the entry is removed once its power is 0
	// and evidenceMaxAgeBlocks have passed since (evidence of its
	// misbehaviour may still arrive until then).
	Left uint64 `json:"left,omitempty"`
}

// ValidatorUpdate is a change of one validator's voting power (0 removes
// it) for the consensus engine.
type ValidatorUpdate struct {
	PubKey Address
	Power  int64
}

// GenesisValidator is a validator CometBFT's genesis names.
type GenesisValidator struct {
	PubKey Address
	Power  int64
}

// SetValidators records the genesis validators' ed25519 keys (also their
// accounts, which receive the fees of the blocks they propose) and powers.
func (l *Ledger) SetValidators(vals []GenesisValidator) error {
	var list []Address
	for _, v := range vals {
		if v.Power <= 0 || v.Power > MaxPower {
			return fmt.Errorf("genesis validator %s: power %d out of range", v.PubKey, v.Power)
		}
		list = append(list, v.PubKey)
		put(l.store, keyValidator(v.PubKey), Validator{Active: true, Power: uint64(v.Power)})
	}
	sort.Slice(list, func(i, j int) bool { return bytes.Compare(list[i][:], list[j][:]) < 0 })
	put(l.store, keyValidators, list)
	return nil
}

// ProposerAccount maps a CometBFT validator address (the first 20 bytes of
// SHA-256 of the ed25519 public key) to the validator's account; the zero
// address when it is not a known validator.
func (l *Ledger) ProposerAccount(consAddr []byte) Address {
	var vals []Address
	get(l.store, keyValidators, &vals)
	for _, v := range vals {
		h := sha256.Sum256(v[:])
		if len(consAddr) == 20 && bytes.Equal(h[:20], consAddr) {
			return v
		}
	}
	return Address{}
}

// setValidator makes the signer a validator candidate, or withdraws it.
// A candidate needs minValidatorStake bonded and must not be jailed. At
// most maxValidators entries are active candidates: when that many are,
// a newcomer with more bonded stake than the poorest evicts it (the
// poorest by bonded stake, the greater address among equals); otherwise
// it is refused. The list itself (candidates and entries waiting to be
// removed) holds at most twice maxValidators.
func (e *exec) setValidator(m *MsgSetValidator) error {
	var list []Address
	get(e.st, keyValidators, &list)
	i := sort.Search(len(list), func(i int) bool { return bytes.Compare(list[i][:], e.signer[:]) >= 0 })
	known := i < len(list) && list[i] == e.signer
	var v Validator
	get(e.st, keyValidator(e.signer), &v)
	if !m.Active {
		if !known {
			return fmt.Errorf("%w: %s is not a validator", ErrWrongState, e.signer)
		}
		if v.Active {
			v.Active, v.Left = false, e.ctx.Height
		}
		put(e.st, keyValidator(e.signer), v)
		e.emit(EventSetValidator, Attr{AttrAccount, e.signer.String()}, Attr{AttrActive, "false"})
		return nil
	}
	s := e.stake(e.signer)
	if s.Bonded < e.params.MinValidatorStake || s.JailedUntil != 0 {
		return fmt.Errorf("%w: a validator candidate needs %d bonded and no jail; %s has %d (jailed until %d)", ErrStake, e.params.MinValidatorStake, e.signer, s.Bonded, s.JailedUntil)
	}
	if !v.Active {
		var active uint32
		var poorest Address
		var poorestStake uint64
		for _, a := range list {
			var w Validator
			get(e.st, keyValidator(a), &w)
			if !w.Active {
				continue
			}
			active++
			if b := e.stake(a).Bonded; active == 1 || b < poorestStake || b == poorestStake && bytes.Compare(a[:], poorest[:]) > 0 {
				poorest, poorestStake = a, b
			}
		}
		if active >= e.params.MaxValidators {
			if s.Bonded <= poorestStake {
				return fmt.Errorf("%w: the validator set is full (%d) and %s's bond %d does not exceed the smallest, %d", ErrWrongState, e.params.MaxValidators, e.signer, s.Bonded, poorestStake)
			}
			var w Validator
			get(e.st, keyValidator(poorest), &w)
			w.Active, w.Left = false, e.ctx.Height
			put(e.st, keyValidator(poorest), w)
			e.emit(EventValidatorEvicted, Attr{AttrAccount, poorest.String()}, Attr{AttrBonded, u64(poorestStake)}, Attr{AttrBy, e.signer.String()})
		}
	}
	if !known {
		if len(list) >= 2*int(e.params.MaxValidators) {
			return fmt.Errorf("%w: the validator list is full (%d entries, withdrawn ones leave evidenceMaxAgeBlocks after their power ends)", ErrWrongState, len(list))
		}
		list = append(list, Address{})
		copy(list[i+1:], list[i:])
		list[i] = e.signer
		put(e.st, keyValidators, list)
	}
	v.Active, v.Left = true, 0
	put(e.st, keyValidator(e.signer), v)
	e.emit(EventSetValidator, Attr{AttrAccount, e.signer.String()}, Attr{AttrActive, "true"})
	return nil
}

// validatorUpdates recomputes every validator's power from its stake
// (bonded / powerUnit, zero when inactive or jailed) and returns the
// changes. Changes that would leave no voting power are not applied.
func (e *exec) validatorUpdates() []ValidatorUpdate {
	var list []Address
	get(e.st, keyValidators, &list)
	var ups []ValidatorUpdate
	var total uint64
	recs := make([]Validator, len(list))
	for i, a := range list {
		get(e.st, keyValidator(a), &recs[i])
		var p uint64
		s := e.stake(a)
		if recs[i].Active && s.JailedUntil == 0 && s.Bonded >= e.params.MinValidatorStake {
			p = min(s.Bonded/e.params.PowerUnit, MaxPower)
		}
		total += p
		if p != recs[i].Power {
			ups = append(ups, ValidatorUpdate{PubKey: a, Power: int64(p)})
		}
	}
	if len(ups) == 0 {
		e.removeLeft(list, recs)
		return nil
	}
	if total == 0 {
		e.emit(EventValidatorUpdatesRefused, Attr{AttrReason, "no voting power would remain"})
		return nil
	}
	for _, u := range ups {
		var v Validator
		get(e.st, keyValidator(u.PubKey), &v)
		v.Power = uint64(u.Power)
		put(e.st, keyValidator(u.PubKey), v)
		e.emit(EventValidatorUpdate, Attr{AttrAccount, u.PubKey.String()}, Attr{AttrPower, fmt.Sprint(u.Power)})
	}
	// Pending models are judged against the new powers.
	e.reevaluateModels()
	e.removeLeft(list, recs) // recs hold the powers before this block's updates
	return ups
}

// removeLeft drops the entries that are no longer candidates, have no
// power, and left more than evidenceMaxAgeBlocks ago.
func (e *exec) removeLeft(list []Address, recs []Validator) {
	kept := list[:0:0]
	for i, a := range list {
		r := recs[i]
		if !r.Active && r.Power == 0 && e.ctx.Height > r.Left+e.params.EvidenceMaxAgeBlocks {
			e.st.Delete(keyValidator(a))
			e.emit(EventValidatorRemoved, Attr{AttrAccount, a.String()})
			continue
		}
		kept = append(kept, a)
	}
	if len(kept) != len(list) {
		put(e.st, keyValidators, kept)
	}
}
