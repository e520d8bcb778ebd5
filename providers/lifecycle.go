package providers

import (
	"encoding/json"
	"errors"
	"fmt"

	"gopkg.in/yaml.v3"

	"provision/state"
)

// FirstLook reports whether this attempt is the task's first one ever and not in
// doubt: an object its lookup finds then existed before the task tried to create
// anything, so taking it over is an adoption (set Exec.Adopted). On a later or in
// doubt attempt the object may be the task's own earlier create.
func (x *Exec) FirstLook() bool { return x != nil && x.Attempt <= 1 && !x.InDoubt }

// DecodeSpecJSON decodes a recorded spec (SpecJSON's form: plan field names, secret
// fields masked) into out, a pointer to the kind's spec type. Secret fields come
// back as the mask, never as a value: a Remover must not send them anywhere.
func DecodeSpecJSON(raw json.RawMessage, out any) error {
	if len(raw) == 0 {
		return errors.New("the state holds no spec for this task (done before specs were recorded)")
	}
	if err := yaml.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("recorded spec: %v", err)
	}
	return nil
}

// CannotDelete returns an error wrapping ErrCannotDelete that says what is left
// and what to do about it.
func CannotDelete(what, todo string) error {
	return fmt.Errorf("%s is left in place: %w; %s", what, ErrCannotDelete, todo)
}

// Missing is the FieldDiff of a done object that is gone remotely.
func Missing(what string) FieldDiff { return FieldDiff{Field: "", Want: what, Got: "(missing)"} }

// AdoptedOutput is the output an adopting task checkpoints (value "true"), so that
// a later attempt still knows its object was found existing, not created.
const AdoptedOutput = "adopted"

// Adopt records, when found, that the task took over an object that existed before
// it tried to create anything: Exec.Adopted is set and AdoptedOutput checkpointed at
// once (an attempt that then fails must not make the next one forget it). Adopt(false)
// changes nothing.
func (x *Exec) Adopt(found bool) error {
	if !found || x.Adopted {
		return nil
	}
	x.Adopted = true
	if x.PriorValue(AdoptedOutput) == "true" {
		return nil
	}
	return x.Checkpoint(state.Outputs{AdoptedOutput: state.Plain("true")})
}

// AdoptedBefore reports whether an earlier attempt of the task adopted its object.
func (x *Exec) AdoptedBefore() bool { return x.PriorValue(AdoptedOutput) == "true" }
