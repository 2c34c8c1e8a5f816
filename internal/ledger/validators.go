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

func (e *exec) setValidator(m *MsgSetValidator) error {
	var list []Address
	get(e.st, keyValidators, &list)
	i := sort.Search(len(list), func(i int) bool { return bytes.Compare(list[i][:], e.signer[:]) >= 0 })
	known := i < len(list) && list[i] == e.signer
	var v Validator
	get(e.st, keyValidator(e.signer), &v)
	if m.Active && !known {
		if len(list) >= int(e.params.MaxValidators) {
			return fmt.Errorf("%w: the validator set is full (%d)", ErrWrongState, e.params.MaxValidators)
		}
		list = append(list, Address{})
		copy(list[i+1:], list[i:])
		list[i] = e.signer
		put(e.st, keyValidators, list)
	}
	if !m.Active && !known {
		return fmt.Errorf("%w: %s is not a validator", ErrWrongState, e.signer)
	}
	v.Active = m.Active
	put(e.st, keyValidator(e.signer), v)
	e.emit("set_validator", "account", e.signer.String(), "active", fmt.Sprint(m.Active))
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
		if recs[i].Active && s.JailedUntil == 0 {
			p = min(s.Bonded/e.params.PowerUnit, MaxPower)
		}
		total += p
		if p != recs[i].Power {
			ups = append(ups, ValidatorUpdate{PubKey: a, Power: int64(p)})
		}
	}
	if len(ups) == 0 {
		return nil
	}
	if total == 0 {
		e.emit("validator_updates_refused", "reason", "no voting power would remain")
		return nil
	}
	for _, u := range ups {
		var v Validator
		get(e.st, keyValidator(u.PubKey), &v)
		v.Power = uint64(u.Power)
		put(e.st, keyValidator(u.PubKey), v)
		e.emit("validator_update", "account", u.PubKey.String(), "power", fmt.Sprint(u.Power))
	}
	// Pending models are judged against the new powers.
	e.reevaluateModels()
	return ups
}
