package state

import (
	"encoding/json"
	"fmt"
	"time"
)

// recordV1 is the stored form of a Record (JSON, versioned).
type recordV1 struct {
	V        int                `json:"v"`
	Hash     []byte             `json:"h,omitempty"`
	Status   Status             `json:"s"`
	Attempts int                `json:"a,omitempty"`
	Started  int64              `json:"t0,omitempty"`
	Finished int64              `json:"t1,omitempty"`
	Err      string             `json:"e,omitempty"`
	Outputs  map[string]storedV `json:"o,omitempty"`
	Dropped  bool               `json:"d,omitempty"`
}

// storedV is one output: clear value, or sealed bytes for a secret.
type storedV struct {
	V      string `json:"v,omitempty"`
	Sealed []byte `json:"x,omitempty"`
}

func (s *Store) encode(r *Record) ([]byte, error) {
	st := recordV1{V: 1, Status: r.Status, Attempts: r.Attempts, Err: r.LastError, Dropped: r.SecretsDropped}
	if r.Hash != ([32]byte{}) {
		st.Hash = r.Hash[:]
	}
	if !r.StartedAt.IsZero() {
		st.Started = r.StartedAt.UnixNano()
	}
	if !r.FinishedAt.IsZero() {
		st.Finished = r.FinishedAt.UnixNano()
	}
	if len(r.Outputs) > 0 {
		st.Outputs = make(map[string]storedV, len(r.Outputs))
		for k, o := range r.Outputs {
			if !o.Secret {
				st.Outputs[k] = storedV{V: o.Value}
				continue
			}
			if s.aead == nil {
				st.Dropped = true
				continue
			}
			sealed, err := seal(s.aead, []byte(o.Value), []byte(r.ID+"\x00"+k))
			if err != nil {
				return nil, fmt.Errorf("encrypt output %s of %s: %w", k, r.ID, err)
			}
			st.Outputs[k] = storedV{Sealed: sealed}
		}
	}
	return json.Marshal(st)
}

// decode parses a stored record; garbage is an ErrCorrupt error naming the task.
func (s *Store) decode(id string, b []byte) (*Record, error) {
	return decodeRecord(id, b, s)
}

func decodeRecord(id string, b []byte, s *Store) (*Record, error) {
	var st recordV1
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("state record %q: %v: %w", id, err, ErrCorrupt)
	}
	if st.V != 1 {
		return nil, fmt.Errorf("state record %q: unknown record version %d: %w", id, st.V, ErrCorrupt)
	}
	if st.Status > Failed {
		return nil, fmt.Errorf("state record %q: unknown status %d: %w", id, st.Status, ErrCorrupt)
	}
	if len(st.Hash) != 0 && len(st.Hash) != 32 {
		return nil, fmt.Errorf("state record %q: hash of %d bytes: %w", id, len(st.Hash), ErrCorrupt)
	}
	r := &Record{ID: id, Status: st.Status, Attempts: st.Attempts, LastError: st.Err, SecretsDropped: st.Dropped}
	copy(r.Hash[:], st.Hash)
	if st.Started != 0 {
		r.StartedAt = time.Unix(0, st.Started)
	}
	if st.Finished != 0 {
		r.FinishedAt = time.Unix(0, st.Finished)
	}
	if len(st.Outputs) > 0 {
		r.Outputs = make(Outputs, len(st.Outputs))
		for k, v := range st.Outputs {
			if v.Sealed == nil {
				r.Outputs[k] = Output{Value: v.V}
				continue
			}
			if s == nil || s.aead == nil {
				r.SecretsDropped = true
				continue
			}
			plain, err := open(s.aead, v.Sealed, []byte(id+"\x00"+k))
			if err != nil {
				return nil, fmt.Errorf("state record %q: output %s does not decrypt with this key: %w", id, k, ErrWrongKey)
			}
			r.Outputs[k] = Output{Value: string(plain), Secret: true}
		}
	}
	return r, nil
}
