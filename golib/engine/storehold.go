package engine

import "github.com/k3-core/k3-core/golib/store"

// heldStore opens the store at root and holds it (store.Hold) for an
// operation that stages or adds content, or reads content it must not lose
// to a collection midway; the caller releases the hold when it is done.
func (e *Engine) heldStore(root string) (*store.Store, *store.Hold, error) {
	st, err := e.store(root)
	if err != nil {
		return nil, nil, err
	}
	hold, err := st.Hold()
	if err != nil {
		return nil, nil, err
	}
	return st, hold, nil
}
